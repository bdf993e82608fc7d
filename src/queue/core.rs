//! State shared by every queue handle of one engine: the storage, the receivers' wake-ups,
//! the stop signal; and the queue's part in the engine.

use std::sync::Arc;

use tokio::sync::watch;

use super::backend::QueueBackend;
use super::redb::RedbQueue;
use super::storage::QueueStorage;
use super::tables;
use crate::clock::Clock;
use crate::error::Result;
use crate::primitive::{Primitive, Work};
use crate::store::{SchemaTable, Store, TxCtx};
use crate::timer::Timer;
use crate::wakeups::Wakeups;

#[derive(Debug)]
pub(crate) struct QueueCore {
    pub(crate) backend: QueueBackend,
    /// The receivers waiting on each queue.
    pub(crate) receivers: Arc<Wakeups<String>>,
    pub(crate) clock: Arc<dyn Clock>,
    /// Fires when the engine stops: waiting receivers return [`Error::Closed`](crate::Error::Closed).
    pub(crate) stop: watch::Receiver<bool>,
}

impl QueueCore {
    /// Every queue that holds messages, with its counts.
    pub(crate) async fn queues(&self) -> Result<Vec<super::info::QueueSummary>> {
        use super::storage::QueueStorage;
        self.backend.queues().await
    }

    /// The queues of a PostgreSQL schema, as node `node`.
    #[cfg(feature = "postgres")]
    pub(crate) fn postgres(
        pg: crate::postgres::Postgres,
        node: i64,
        clock: Arc<dyn Clock>,
        explicit_clock: bool,
        stop: watch::Receiver<bool>,
    ) -> Self {
        let receivers = Arc::new(Wakeups::default());
        let backend_clock = explicit_clock.then(|| clock.clone());
        QueueCore {
            backend: QueueBackend::Postgres(Box::new(super::postgres::PgQueue::new(
                pg,
                node,
                backend_clock,
                receivers.clone(),
            ))),
            receivers,
            clock,
            stop,
        }
    }

    /// Wakes this process's receivers of `queue` (another node made messages ready).
    #[cfg(feature = "postgres")]
    pub(crate) fn wake_receivers(&self, queue: &str) {
        self.receivers.wake_all(queue);
        self.receivers.wake(queue, 1);
    }

    /// Wakes a receiver of each queue waited on here that has ready messages (the poll
    /// besides notifications).
    #[cfg(feature = "postgres")]
    pub(crate) async fn wake_for_ready(&self) -> Result<()> {
        match &self.backend {
            QueueBackend::Postgres(b) => b.wake_for_ready().await,
            QueueBackend::Redb(_) => Ok(()),
        }
    }

    /// Wakes every receiver of this process, to look again.
    #[cfg(feature = "postgres")]
    pub(crate) fn wake_all_receivers(&self) {
        for queue in self.receivers.keys() {
            self.wake_receivers(&queue);
        }
    }

    /// The queues of the file `store` holds.
    pub(crate) fn new(store: Arc<Store>, stop: watch::Receiver<bool>) -> Self {
        let receivers = Arc::new(Wakeups::default());
        let clock = store.clock().clone();
        QueueCore {
            backend: QueueBackend::Redb(RedbQueue::new(store, receivers.clone())),
            receivers,
            clock,
            stop,
        }
    }
}

impl Primitive for QueueCore {
    fn name(&self) -> &'static str {
        "queue"
    }

    fn tables(&self) -> &'static [&'static dyn SchemaTable] {
        tables::TABLES
    }

    fn recover(self: Arc<Self>, ctx: &mut TxCtx<'_>, epoch: u64) -> Result<()> {
        match &self.backend {
            QueueBackend::Redb(b) => b.recover(ctx, epoch),
            #[cfg(feature = "postgres")]
            QueueBackend::Postgres(_) => Ok(()),
        }
    }

    fn timer(&self) -> Option<&Timer> {
        match &self.backend {
            QueueBackend::Redb(b) => Some(&b.timer),
            #[cfg(feature = "postgres")]
            QueueBackend::Postgres(b) => Some(&b.timer),
        }
    }

    /// On PostgreSQL, what this node holds goes to the other nodes at once (on a file, the
    /// next process to open it ends every lease).
    fn drain(self: Arc<Self>, _until: tokio::time::Instant) -> Work<()> {
        Box::pin(async move {
            #[cfg(feature = "postgres")]
            if let QueueBackend::Postgres(b) = &self.backend {
                match b.hand_back().await {
                    Ok(0) | Err(crate::Error::Closed) => {}
                    Ok(n) => tracing::info!(n, "queue messages handed back at shutdown"),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not hand back queue messages at shutdown")
                    }
                }
            }
        })
    }

    fn pass(self: Arc<Self>) -> Work<Result<Option<u64>>> {
        Box::pin(async move { self.backend.maintain().await })
    }
}
