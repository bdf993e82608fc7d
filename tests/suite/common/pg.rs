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
        // Its engines' connections are named after the schema, so that the teardown can end
        // them (an engine not shut down may hold locks the schema's drop would wait for).
        let sep = if url.contains('?') { '&' } else { '?' };
        let url = format!("{url}{sep}application_name={schema}");
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
                            .execute(
                                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                                 WHERE pid <> pg_backend_pid()
                                   AND (application_name = $1 OR application_name LIKE $1 || ' %')",
                                &[&schema],
                            )
                            .await;
                        let _ = client
                            .batch_execute(&format!(
                                "SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS {schema} CASCADE"
                            ))
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

impl PgSchema {
    /// Runs `sql` on this schema, on a connection of its own.
    pub async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> u64 {
        let client = self.client().await;
        client.execute(sql, params).await.expect("test statement")
    }

    /// A connection of its own on this schema.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .expect("connect for a test statement");
        tokio::spawn(connection);
        client
            .batch_execute(&format!("SET search_path TO {}", self.schema))
            .await
            .expect("search_path");
        client
    }
}

/// Where a test's engine keeps its state: a file in a temp folder, or a fresh PostgreSQL
/// schema. The same test body runs on both (see `in_both_places!`).
pub enum Place {
    File {
        _dir: tempfile::TempDir,
        path: std::path::PathBuf,
    },
    Postgres(PgSchema),
    /// An engine in memory (`EngineOptions::open_in_memory`): nothing survives a reopen.
    Memory,
}

impl Place {
    pub fn file() -> Place {
        let (_dir, path) = super::temp_file();
        Place::File { _dir, path }
    }

    /// `None` (after printing why) when no server is configured.
    pub fn postgres() -> Option<Place> {
        PgSchema::new().map(Place::Postgres)
    }

    /// Another place of the same kind, empty.
    pub fn fresh(&self) -> Place {
        match self {
            Place::File { .. } => Place::file(),
            Place::Postgres(_) => Place::postgres().expect("configured"),
            Place::Memory => Place::Memory,
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Place::Postgres(_))
    }

    /// The file (panics on PostgreSQL).
    pub fn path(&self) -> &std::path::Path {
        match self {
            Place::File { path, .. } => path,
            Place::Postgres(_) | Place::Memory => panic!("a file-only step elsewhere"),
        }
    }

    /// The schema (panics on a file).
    pub fn schema(&self) -> &PgSchema {
        match self {
            Place::Postgres(schema) => schema,
            Place::File { .. } | Place::Memory => panic!("a PostgreSQL-only step elsewhere"),
        }
    }

    /// An engine here with `options`.
    pub async fn open(&self, options: EngineOptions) -> Engine {
        match self {
            Place::File { path, .. } => options.open(path).await.expect("open"),
            Place::Postgres(s) => options
                .postgres_schema(&s.schema)
                .postgres_pool_size(4)
                .connect(&s.url)
                .await
                .expect("connect"),
            Place::Memory => options.open_in_memory().await.expect("open in memory"),
        }
    }

    /// An engine here on a manual clock starting at `at`.
    pub async fn open_at(&self, at: u64) -> (Engine, ManualClock) {
        let clock = ManualClock::new(at);
        let engine = self.open(EngineOptions::new().clock(clock.clone())).await;
        (engine, clock)
    }
}

/// Runs each named `async fn name(place: Place)` twice: on a file and on a PostgreSQL schema,
/// each on the current-thread runtime (a spawned task runs up to its first wait when the test
/// yields).
#[macro_export]
macro_rules! in_both_places {
    ($($name:ident),* $(,)?) => {
        mod file {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::common::pg::Place::file()).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(place) = $crate::common::pg::Place::postgres() else { return };
                    super::$name(place).await
                }
            )*
        }
    };
}

/// Runs each named `async fn name(place: Place)` once more, on an engine in memory: the
/// behaviour tests that need no reopen (nothing survives one in memory).
#[macro_export]
macro_rules! in_memory_too {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::common::pg::Place::Memory).await
                }
            )*
        }
    };
}
