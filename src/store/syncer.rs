//! The log's own thread: it writes the records the writer hands it, makes them durable, and
//! only then answers the batches' callers, in commit order. While it waits on the disk, the
//! writer already applies the next batches; records that arrive meanwhile share the next sync.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Instant;

use super::wal::Wal;
use super::writer::ErasedOp;
use super::{Durability, StoreShared};
use crate::error::Error;

/// What a batch leaves to do once it is durable: its hooks (in order), then its callers'
/// answers (`Some` for an op that failed).
#[derive(Default)]
pub(crate) struct Done {
    pub(crate) hooks: Vec<Box<dyn FnOnce() + Send>>,
    pub(crate) ops: Vec<(Box<dyn ErasedOp>, Option<Error>)>,
}

impl Done {
    fn finish(self) {
        self.hooks.into_iter().for_each(|h| h());
        for (op, failure) in self.ops {
            op.finish(failure);
        }
    }

    fn fail(self, cause: &str) {
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
    pub(crate) wal: Wal,
    pub(crate) rx: Receiver<LogMsg>,
    pub(crate) shared: Arc<StoreShared>,
    pub(crate) durability: Durability,
}

impl Syncer {
    pub(crate) fn run(mut self) {
        let mut unsynced_since: Option<Instant> = None;
        let mut bytes = Vec::new();
        let mut pending: Vec<Done> = Vec::new();
        let mut closing = false;
        while !closing {
            let first = match (self.durability, unsynced_since) {
                (Durability::Relaxed { flush_every }, Some(since)) => {
                    match self
                        .rx
                        .recv_timeout(flush_every.saturating_sub(since.elapsed()))
                    {
                        Ok(msg) => msg,
                        Err(RecvTimeoutError::Timeout) => {
                            if let Err(e) = self.sync() {
                                self.poison(&e);
                            }
                            unsynced_since = None;
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                _ => match self.rx.recv() {
                    Ok(msg) => msg,
                    Err(_) => break,
                },
            };
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
                        // The checkpoint holds all of it: nothing pending needs the log.
                        bytes.clear();
                        pending.drain(..).for_each(Done::finish);
                        self.wal.restart();
                        unsynced_since = None;
                    }
                    LogMsg::Close => closing = true,
                }
                if taken < MAX_PASS && !closing {
                    next = self.rx.try_recv().ok();
                }
            }
            if !bytes.is_empty() {
                let written = self.write(&bytes, &mut unsynced_since);
                bytes.clear();
                if let Err(e) = written {
                    self.poison(&e);
                }
            }
            match self.shared.poisoned() {
                None => pending.drain(..).for_each(Done::finish),
                Some(cause) => pending.drain(..).for_each(|d| d.fail(&cause)),
            }
        }
        if unsynced_since.is_some()
            && let Err(e) = self.sync()
        {
            self.poison(&e);
        }
    }

    fn write(&mut self, bytes: &[u8], unsynced_since: &mut Option<Instant>) -> std::io::Result<()> {
        if self.shared.poisoned().is_some() {
            return Ok(());
        }
        self.wal.append(bytes)?;
        match self.durability {
            Durability::Immediate => self.sync(),
            Durability::Relaxed { .. } => {
                unsynced_since.get_or_insert_with(Instant::now);
                Ok(())
            }
        }
    }

    fn sync(&self) -> std::io::Result<()> {
        self.wal.sync()?;
        self.shared.log_syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn poison(&self, e: &std::io::Error) {
        let cause = format!(
            "writing the write-ahead log {} failed: {e}",
            self.wal.path().display()
        );
        tracing::error!(error = %cause, "the engine is now poisoned");
        self.shared.poison(cause);
    }
}
