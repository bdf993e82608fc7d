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

#[cfg(test)]
mod tests {
    use std::sync::mpsc::Sender;
    use std::time::Duration;

    use tokio::sync::oneshot;

    use super::*;
    use crate::Error;
    use crate::store::TxCtx;
    use crate::store::faults::FaultInjector;
    use crate::store::wal::Wal;
    use crate::store::writer::{Done, TypedOp};

    /// Hands the sync thread a batch of one op, committed as number `visible`; returns the
    /// op's answer: `Ok(visible)` once durable.
    fn hand_over(
        to_syncer: &Sender<Done>,
        handed_off: &AtomicUsize,
        visible: u64,
    ) -> oneshot::Receiver<crate::Result<u64>> {
        let (reply, answer) = oneshot::channel();
        let op = TypedOp {
            f: move |_: &mut TxCtx<'_>| Ok(visible),
            result: Some(Ok(visible)),
            reply,
            span: tracing::Span::none(),
        };
        handed_off.fetch_add(1, Ordering::AcqRel);
        to_syncer
            .send(Done {
                visible,
                hooks: Vec::new(),
                ops: vec![(Box::new(op), None)],
            })
            .unwrap();
        answer
    }

    fn answer(a: oneshot::Receiver<crate::Result<u64>>) -> crate::Result<u64> {
        a.blocking_recv().expect("every batch is answered")
    }

    #[test]
    fn one_sync_covers_the_batches_handed_over_before_it_and_its_failure_fails_them_all() {
        let dir = tempfile::tempdir().unwrap();
        let faults = FaultInjector::new();
        let (wal, _) = Wal::open(&dir.path().join("a.jobfile"), Some(faults.clone())).unwrap();
        let (to_syncer, batches) = std::sync::mpsc::channel();
        let handed_off = Arc::new(AtomicUsize::new(0));
        let shared = Arc::new(StoreShared::default());
        let syncs = || faults.calls_seen().1;

        // Three batches waiting when the thread starts: one sync answers all three.
        let first: Vec<_> = (1..=3)
            .map(|v| hand_over(&to_syncer, &handed_off, v))
            .collect();
        let syncer = Syncer {
            log: wal.sync_handle(),
            batches,
            handed_off: handed_off.clone(),
            shared: shared.clone(),
        };
        let thread = std::thread::spawn(move || syncer.run());
        for (v, a) in (1..=3).zip(first) {
            assert_eq!(answer(a).unwrap(), v);
        }
        assert_eq!(syncs(), 1);
        assert_eq!(shared.durable_now.load(Ordering::SeqCst), 3);

        // Batch 4's sync succeeds; 5 and 6, handed over while it runs, share the next, which
        // fails: both fail, and the store is poisoned.
        faults.slow_syncs(Duration::from_millis(500));
        faults.fail_syncs_after(1);
        let fourth = hand_over(&to_syncer, &handed_off, 4);
        while syncs() < 2 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let shared_sync: Vec<_> = (5..=6)
            .map(|v| hand_over(&to_syncer, &handed_off, v))
            .collect();
        assert_eq!(answer(fourth).unwrap(), 4);
        for a in shared_sync {
            let e = answer(a).unwrap_err();
            assert!(
                matches!(&e, Error::Poisoned { cause } if cause.contains("injected sync failure")),
                "{e}"
            );
        }
        assert_eq!(syncs(), 3, "5 and 6 shared one sync");
        assert_eq!(shared.log_syncs.load(Ordering::SeqCst), 2);
        assert_eq!(shared.durable_now.load(Ordering::SeqCst), 4);
        assert!(shared.poisoned().is_some());

        // Once poisoned, a batch handed over fails without a sync.
        faults.heal();
        let late = hand_over(&to_syncer, &handed_off, 7);
        assert!(matches!(answer(late), Err(Error::Poisoned { .. })));
        assert_eq!(syncs(), 3);

        drop(to_syncer);
        thread.join().unwrap();
        assert_eq!(handed_off.load(Ordering::SeqCst), 0);
    }
}
