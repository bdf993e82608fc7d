//! State shared by every mutex handle of one engine, and the mutex's part in the engine.

use std::sync::Arc;

use tokio::sync::watch;

use super::backend::MutexBackend;
use super::redb::RedbMutex;
use super::tables;
use crate::clock::Clock;
use crate::error::Result;
use crate::primitive::{Primitive, Work};
use crate::store::{SchemaTable, Store, TxCtx};
use crate::timer::Timer;
use crate::wakeups::Wakeups;

#[derive(Debug)]
pub(crate) struct MutexCore {
    pub(crate) backend: MutexBackend,
    /// The acquirers waiting on each mutex, woken by its release.
    pub(crate) released: Arc<Wakeups<String>>,
    pub(crate) clock: Arc<dyn Clock>,
    /// Fires when the engine stops: a waiting `acquire` returns [`Error::Closed`](crate::Error::Closed).
    pub(crate) stop: watch::Receiver<bool>,
}

impl MutexCore {
    /// Every lease live now.
    pub(crate) async fn holders(&self) -> Result<Vec<super::lease::MutexLease>> {
        use super::storage::MutexStorage;
        self.backend.holders(self.clock.now_ms()).await
    }

    /// Mutexes in a PostgreSQL schema; `explicit_clock`: times come from `clock` (tests),
    /// not from the database.
    #[cfg(feature = "postgres")]
    pub(crate) fn postgres(
        pg: crate::postgres::Postgres,
        node: i64,
        clock: Arc<dyn Clock>,
        explicit_clock: bool,
        stop: watch::Receiver<bool>,
    ) -> Self {
        let released = Arc::new(Wakeups::default());
        let backend_clock = explicit_clock.then(|| clock.clone());
        MutexCore {
            backend: MutexBackend::Postgres(Box::new(super::postgres::PgMutex::new(
                pg,
                node,
                backend_clock,
                released.clone(),
            ))),
            released,
            clock,
            stop,
        }
    }

    pub(crate) fn new(store: Arc<Store>, stop: watch::Receiver<bool>) -> Self {
        let released = Arc::new(Wakeups::default());
        let clock = store.clock().clone();
        MutexCore {
            backend: MutexBackend::Redb(RedbMutex::new(store, released.clone())),
            released,
            clock,
            stop,
        }
    }
}

/// A lease ends by its deadline alone: nothing to recover, nothing timed.
impl Primitive for MutexCore {
    fn name(&self) -> &'static str {
        "mutex"
    }

    fn tables(&self) -> &'static [&'static dyn SchemaTable] {
        tables::TABLES
    }

    fn recover(self: Arc<Self>, _ctx: &mut TxCtx<'_>, _epoch: u64) -> Result<()> {
        Ok(())
    }

    fn timer(&self) -> Option<&Timer> {
        None
    }

    fn pass(self: Arc<Self>) -> Work<Result<Option<u64>>> {
        Box::pin(async { Ok(None) })
    }
}
