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
        }
    }

    fn timer(&self) -> Option<&Timer> {
        match &self.backend {
            QueueBackend::Redb(b) => Some(&b.timer),
        }
    }

    fn pass(self: Arc<Self>) -> Work<Result<Option<u64>>> {
        Box::pin(async move { self.backend.maintain().await })
    }
}
