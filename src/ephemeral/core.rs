//! State shared by the sets of one engine, and the ephemeral set's part in the engine.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::backend::EphemeralBackend;
use super::redb::RedbEphemeral;
use super::storage::EphemeralStorage;
use super::tables;
use crate::clock::{Clock, millis};
use crate::error::Result;
use crate::primitive::{Primitive, Work};
use crate::store::{SchemaTable, Store, TxCtx};
use crate::timer::Timer;
use crate::wakeups::Followers;

#[derive(Debug)]
pub(crate) struct EphemeralCore {
    pub(crate) backend: EphemeralBackend,
    /// Each set's followers.
    pub(crate) followers: Arc<Followers<String>>,
    pub(crate) clock: Arc<dyn Clock>,
    /// Fires when the engine stops: followers end with [`Error::Closed`](crate::Error::Closed).
    pub(crate) stop: watch::Receiver<bool>,
}

impl EphemeralCore {
    /// Every set with its counts.
    pub(crate) async fn sets(&self) -> Result<Vec<super::info::SetSummary>> {
        use super::storage::EphemeralStorage;
        self.backend.sets().await
    }

    /// The sets of a PostgreSQL schema, as node `node`.
    #[cfg(feature = "postgres")]
    pub(crate) fn postgres(
        pg: crate::postgres::Postgres,
        node: i64,
        clock: Arc<dyn Clock>,
        explicit_clock: bool,
        change_retention: Duration,
        stop: watch::Receiver<bool>,
    ) -> Self {
        let followers = Arc::new(Followers::default());
        let backend_clock = explicit_clock.then(|| clock.clone());
        EphemeralCore {
            backend: EphemeralBackend::Postgres(Box::new(super::postgres::PgEphemeral::new(
                pg,
                node,
                backend_clock,
                followers.clone(),
                millis(change_retention),
            ))),
            followers,
            clock,
            stop,
        }
    }

    /// Wakes this process's followers of `set` (another node changed it).
    #[cfg(feature = "postgres")]
    pub(crate) fn changed_elsewhere(&self, set: &str) {
        self.followers.bump(set);
    }

    /// Wakes every follower of this process, to look again.
    #[cfg(feature = "postgres")]
    pub(crate) fn wake_all_followers(&self) {
        for set in self.followers.keys() {
            self.followers.bump(&set);
        }
    }

    pub(crate) fn new(
        store: Arc<Store>,
        change_retention: Duration,
        stop: watch::Receiver<bool>,
    ) -> Self {
        let followers = Arc::new(Followers::default());
        let clock = store.clock().clone();
        let redb = RedbEphemeral::new(store, followers.clone(), millis(change_retention));
        EphemeralCore {
            backend: EphemeralBackend::Redb(redb),
            followers,
            clock,
            stop,
        }
    }
}

impl Primitive for EphemeralCore {
    fn name(&self) -> &'static str {
        "ephemeral"
    }

    fn tables(&self) -> &'static [&'static dyn SchemaTable] {
        tables::TABLES
    }

    fn recover(self: Arc<Self>, ctx: &mut TxCtx<'_>, _epoch: u64) -> Result<()> {
        match &self.backend {
            EphemeralBackend::Redb(b) => b.recover(ctx),
            #[cfg(feature = "postgres")]
            EphemeralBackend::Postgres(_) => Ok(()),
        }
    }

    fn timer(&self) -> Option<&Timer> {
        match &self.backend {
            EphemeralBackend::Redb(b) => Some(&b.timer),
            #[cfg(feature = "postgres")]
            EphemeralBackend::Postgres(b) => Some(&b.timer),
        }
    }

    fn pass(self: Arc<Self>) -> Work<Result<Option<u64>>> {
        Box::pin(async move { self.backend.sweep().await })
    }
}
