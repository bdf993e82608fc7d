//! The log's sync thread, for fsync'd commits under load: the writer writes each batch's record
//! itself and asks this thread to make the log durable, then applies the next batch while the
//! disk works. A finished sync comes back to the writer as a message in its own queue
//! ([`Msg::Synced`]), and the writer answers, in commit order, every batch the sync covered.
//! Requests that arrive during a sync share the next one.
//!
//! Only the sync moves here: the batches' hooks and answers stay on the writer, so what a batch
//! allocated is freed on the thread that allocated it, and this thread's work per sync is one
//! system call.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender};

use super::StoreShared;
use super::wal::SyncHandle;
use super::writer::Msg;

/// The sync thread: takes the highest record number asked for, syncs, and tells the writer
/// every record up to it is durable (or, poisoning the store, that the sync failed).
pub(crate) struct Syncer {
    pub(crate) log: SyncHandle,
    pub(crate) requests: Receiver<u64>,
    pub(crate) writer: Sender<Msg>,
    pub(crate) shared: Arc<StoreShared>,
}

impl Syncer {
    pub(crate) fn run(self) {
        while let Ok(mut upto) = self.requests.recv() {
            while let Ok(later) = self.requests.try_recv() {
                upto = upto.max(later);
            }
            let started = std::time::Instant::now();
            let synced = match self.log.sync() {
                Ok(()) => true,
                Err(e) => {
                    self.shared.poison(self.log.failure(&e));
                    false
                }
            };
            let took = started.elapsed();
            let done = Msg::Synced { upto, synced, took };
            if self.writer.send(done).is_err() {
                break;
            }
        }
    }
}
