//! State shared by the topics of one engine, and the topic's part in the engine.

use std::sync::Arc;

use tokio::sync::watch;

use super::backend::TopicBackend;
use super::redb::RedbTopic;
use super::storage::TopicStorage;
use super::tables;
use crate::clock::Clock;
use crate::error::Result;
use crate::primitive::{Primitive, Work};
use crate::store::{SchemaTable, Store, TxCtx};
use crate::timer::Timer;
use crate::wakeups::Followers;

#[derive(Debug)]
pub(crate) struct TopicCore {
    pub(crate) backend: TopicBackend,
    /// Each topic's subscribers and group members, woken by publishes.
    pub(crate) followers: Arc<Followers<String>>,
    pub(crate) clock: Arc<dyn Clock>,
    /// Fires when the engine stops: subscriptions and waiting members end with
    /// [`Error::Closed`](crate::Error::Closed).
    pub(crate) stop: watch::Receiver<bool>,
}

impl TopicCore {
    /// Every topic with its groups.
    pub(crate) async fn topics(&self) -> Result<Vec<super::info::TopicSummary>> {
        use super::storage::TopicStorage;
        self.backend.topics().await
    }

    /// The topics of a PostgreSQL schema, as node `node`.
    #[cfg(feature = "postgres")]
    pub(crate) fn postgres(
        pg: crate::postgres::Postgres,
        node: i64,
        clock: Arc<dyn Clock>,
        explicit_clock: bool,
        stop: watch::Receiver<bool>,
    ) -> Self {
        let followers = Arc::new(Followers::default());
        let backend_clock = explicit_clock.then(|| clock.clone());
        TopicCore {
            backend: TopicBackend::Postgres(Box::new(super::postgres::PgTopic::new(
                pg,
                node,
                backend_clock,
                followers.clone(),
            ))),
            followers,
            clock,
            stop,
        }
    }

    /// Wakes this process's subscribers and members of `topic` (another node published).
    #[cfg(feature = "postgres")]
    pub(crate) fn published_elsewhere(&self, topic: &str) {
        self.followers.bump(topic);
    }

    /// Wakes every subscriber and member of this process, to look again.
    #[cfg(feature = "postgres")]
    pub(crate) fn wake_all_followers(&self) {
        for topic in self.followers.keys() {
            self.followers.bump(&topic);
        }
    }

    pub(crate) fn new(store: Arc<Store>, stop: watch::Receiver<bool>) -> Self {
        let followers = Arc::new(Followers::default());
        let clock = store.clock().clone();
        TopicCore {
            backend: TopicBackend::Redb(RedbTopic::new(store, followers.clone())),
            followers,
            clock,
            stop,
        }
    }
}

impl Primitive for TopicCore {
    fn name(&self) -> &'static str {
        "topic"
    }

    fn tables(&self) -> &'static [&'static dyn SchemaTable] {
        tables::TABLES
    }

    fn recover(self: Arc<Self>, ctx: &mut TxCtx<'_>, _epoch: u64) -> Result<()> {
        match &self.backend {
            TopicBackend::Redb(b) => b.recover(ctx),
            #[cfg(feature = "postgres")]
            TopicBackend::Postgres(_) => Ok(()),
        }
    }

    fn timer(&self) -> Option<&Timer> {
        match &self.backend {
            TopicBackend::Redb(b) => Some(&b.timer),
            #[cfg(feature = "postgres")]
            TopicBackend::Postgres(b) => Some(&b.timer),
        }
    }

    /// On PostgreSQL, what this node holds goes to the other nodes at once (on a file, the
    /// next process to open it ends every lease).
    fn drain(self: Arc<Self>, _until: tokio::time::Instant) -> Work<()> {
        Box::pin(async move {
            #[cfg(feature = "postgres")]
            if let TopicBackend::Postgres(b) = &self.backend {
                match b.hand_back().await {
                    Ok(0) | Err(crate::Error::Closed) => {}
                    Ok(n) => tracing::info!(n, "topic deliveries handed back at shutdown"),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not hand back topic deliveries at shutdown")
                    }
                }
            }
        })
    }

    fn pass(self: Arc<Self>) -> Work<Result<Option<u64>>> {
        Box::pin(async move { self.backend.sweep().await })
    }
}
