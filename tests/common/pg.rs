//! PostgreSQL test fixtures: a fresh schema per test on the server `JOBFILE_TEST_PG` names,
//! dropped when the test ends. Without the variable the tests print one line and skip
//! (`.ci/run` sets it, so there they never skip).

use std::sync::atomic::{AtomicU32, Ordering};

use jobfile::{Engine, EngineOptions, ManualClock};

use super::T0;

/// A schema no other test uses.
pub struct PgSchema {
    pub url: String,
    pub schema: String,
}

impl PgSchema {
    /// `None` (after printing why) when no server is configured.
    pub fn new() -> Option<PgSchema> {
        static N: AtomicU32 = AtomicU32::new(0);
        let Ok(url) = std::env::var("JOBFILE_TEST_PG") else {
            println!(
                "skipped: set JOBFILE_TEST_PG to a PostgreSQL URL to run the PostgreSQL tests"
            );
            return None;
        };
        let schema = format!(
            "jobfile_it{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        Some(PgSchema { url, schema })
    }

    /// Options on this schema, nodes judged by the default liveness.
    pub fn options(&self) -> EngineOptions {
        EngineOptions::new()
            .postgres_schema(&self.schema)
            .postgres_pool_size(4)
    }

    /// An engine on this schema driven by a manual clock starting at [`T0`].
    pub async fn open_manual(&self) -> (Engine, ManualClock) {
        let clock = ManualClock::new(T0);
        let engine = self
            .options()
            .clock(clock.clone())
            .connect(&self.url)
            .await
            .expect("connect");
        (engine, clock)
    }

    /// An engine on this schema on the database clock.
    pub async fn connect(&self) -> Engine {
        self.options().connect(&self.url).await.expect("connect")
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let (url, schema) = (self.url.clone(), self.schema.clone());
        // On a runtime of its own: the test's may be shutting down.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    if let Ok((client, connection)) =
                        tokio_postgres::connect(&url, tokio_postgres::NoTls).await
                    {
                        tokio::spawn(connection);
                        let _ = client
                            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                            .await;
                    }
                })
        })
        .join();
    }
}

/// Defines each test twice, on a file and on a PostgreSQL schema, with the same body: `engine`
/// and `clock` (a manual clock at [`T0`]) are in scope.
#[macro_export]
macro_rules! on_both_backends {
    ($(async fn $name:ident($engine:ident, $clock:ident) $body:block)*) => {
        mod file {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (_dir, path) = $crate::common::temp_file();
                    #[allow(unused_variables)]
                    let ($engine, $clock) = $crate::common::open_manual(&path).await;
                    $body
                }
            )*
        }
        mod postgres {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(schema) = $crate::common::pg::PgSchema::new() else { return };
                    #[allow(unused_variables)]
                    let ($engine, $clock) = schema.open_manual().await;
                    $body
                }
            )*
        }
    };
}
