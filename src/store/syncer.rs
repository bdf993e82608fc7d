//! The log's sync thread, for fsync'd commits under load: the writer writes each batch's record
//! itself and hands the batch here, then applies the next batch while the disk works. This
//! thread takes every batch handed over since its last sync, syncs once (a sync covers every
//! record written before it began, and each batch's record was written before the batch was
//! handed over), then answers them in commit order: their hooks, then their callers. Batches
//! handed over during a sync share the next one.
//!
//! Answering here rather than back on the writer takes a hop off every caller's wait: the
//! writer need not finish the batch in hand before the durable one is answered.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Receiver;

use super::StoreShared;
use super::wal::SyncHandle;
use super::writer::{Done, mark_store_thread, settle};

/// The sync thread: syncs the log for the batches handed to it and answers them, or, the store
/// poisoned (by a failed sync here or a failure on the writer), fails them.
pub(crate) struct Syncer {
    pub(crate) log: SyncHandle,
    pub(crate) batches: Receiver<Done>,
    /// Batches handed over and not yet answered; counted up by the writer, down here.
    pub(crate) handed_off: Arc<AtomicUsize>,
    pub(crate) shared: Arc<StoreShared>,
}

impl Syncer {
    pub(crate) fn run(self) {
        mark_store_thread(&self.shared);
        let mut batches = Vec::new();
        // Ends when the writer has ended (and dropped its sender) and everything is answered.
        while let Ok(first) = self.batches.recv() {
            batches.push(first);
            batches.extend(self.batches.try_iter());
            let durable = match self.shared.poisoned() {
                Some(cause) => Err(cause),
                None => match self.log.sync() {
                    Ok(()) => {
                        self.shared.log_syncs.fetch_add(1, Ordering::Relaxed);
                        Ok(())
                    }
                    Err(e) => Err(self.log.failure(&e)),
                },
            };
            let answered = batches.len();
            let visible = batches.iter().map(|d| d.visible).max().unwrap_or(0);
            settle(&self.shared, visible, batches.drain(..), durable);
            self.handed_off.fetch_sub(answered, Ordering::AcqRel);
        }
    }
}
