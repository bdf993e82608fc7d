//! The log's own thread, for fsync'd commits: it writes the records the writer hands it, makes
//! them durable, and only then answers the batches' callers, in commit order. While it waits on the disk, the
//! writer already applies the next batches; records that arrive meanwhile share the next sync.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};

use super::StoreShared;
use super::wal::Wal;
use super::writer::{ErasedOp, lock, log_failure};
use crate::error::Error;

/// What a batch leaves to do once it is durable: its hooks (in order), then its callers'
/// answers (`Some` for an op that failed).
#[derive(Default)]
pub(crate) struct Done {
    /// The batch's number among the commits readers may see (0: it committed nothing).
    pub(crate) visible: u64,
    pub(crate) hooks: Vec<Box<dyn FnOnce() + Send>>,
    pub(crate) ops: Vec<(Box<dyn ErasedOp>, Option<Error>)>,
}

impl Done {
    pub(crate) fn finish(self) {
        self.hooks.into_iter().for_each(|h| h());
        for (op, failure) in self.ops {
            op.finish(failure);
        }
    }

    pub(crate) fn fail(self, cause: &str) {
        for (op, _) in self.ops {
            op.finish(Some(Error::Poisoned {
                cause: cause.to_string(),
            }));
        }
    }
}

pub(crate) enum LogMsg {
    /// A batch's framed record, and what to do once it is durable.
    Append(Vec<u8>, Done),
    /// A batch that wrote nothing (or whose ops failed): answered after everything before it.
    Answer(Done),
    /// A checkpoint made everything before it durable: answer it all, start the log over.
    Restart,
    /// Everything sent is answered; end.
    Close,
}

/// How many messages one pass takes before it writes.
const MAX_PASS: usize = 4_096;

pub(crate) struct Syncer {
    /// Shared with the writer, which writes to it itself when nothing is in hand here.
    pub(crate) wal: Arc<Mutex<Wal>>,
    pub(crate) rx: Receiver<LogMsg>,
    pub(crate) shared: Arc<StoreShared>,
    /// Messages the writer sent that are not yet carried out.
    pub(crate) in_hand: Arc<AtomicUsize>,
}

impl Syncer {
    pub(crate) fn run(self) {
        let mut bytes = Vec::new();
        let mut pending: Vec<Done> = Vec::new();
        let mut closing = false;
        while !closing {
            let Ok(first) = self.rx.recv() else { break };
            let mut next = Some(first);
            let mut taken = 0;
            while let Some(msg) = next.take() {
                taken += 1;
                match msg {
                    LogMsg::Append(record, done) => {
                        bytes.extend_from_slice(&record);
                        pending.push(done);
                    }
                    LogMsg::Answer(done) => pending.push(done),
                    LogMsg::Restart => {
                        // The checkpoint holds all of it (and the writer marked it durable):
                        // nothing pending needs the log.
                        bytes.clear();
                        pending.drain(..).for_each(Done::finish);
                        lock(&self.wal).restart();
                    }
                    LogMsg::Close => closing = true,
                }
                if taken < MAX_PASS && !closing {
                    next = self.rx.try_recv().ok();
                }
            }
            if !bytes.is_empty() && self.shared.poisoned().is_none() {
                let mut wal = lock(&self.wal);
                let written = wal.append(&bytes).and_then(|()| wal.sync());
                match written {
                    Ok(()) => {
                        self.shared.log_syncs.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        let cause = log_failure(&wal, &e);
                        self.shared.poison(cause);
                    }
                }
            }
            bytes.clear();
            match self.shared.poisoned() {
                None => {
                    if let Some(upto) = pending.iter().map(|d| d.visible).max() {
                        self.shared.mark_durable(upto);
                    }
                    pending.drain(..).for_each(Done::finish)
                }
                Some(cause) => pending.drain(..).for_each(|d| d.fail(&cause)),
            }
            self.in_hand.fetch_sub(taken, Ordering::SeqCst);
        }
    }
}
