//! The queue's timed work: one task sleeps until the earliest lease deadline, delayed message
//! or dead-letter purge, then runs one maintenance op and wakes receivers of queues that gained
//! ready messages. Ops that create a new deadline lower the timer after their commit.

use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, watch};

use super::QueueCore;
use super::ops;

/// The earliest instant at which maintenance has work.
#[derive(Debug)]
pub(crate) struct Timer {
    next: Mutex<u64>,
    changed: Notify,
}

impl Timer {
    pub(crate) fn new(next: u64) -> Self {
        Timer {
            next: Mutex::new(next),
            changed: Notify::new(),
        }
    }

    /// Makes sure maintenance runs no later than `at`.
    pub(crate) fn lower(&self, at: u64) {
        if let Ok(mut next) = self.next.lock()
            && at < *next
        {
            *next = at;
            self.changed.notify_one();
        }
    }

    fn take_if_due(&self, now: u64) -> bool {
        match self.next.lock() {
            Ok(mut next) if *next <= now => {
                *next = u64::MAX;
                true
            }
            _ => false,
        }
    }

    fn current(&self) -> u64 {
        self.next.lock().map(|n| *n).unwrap_or(0)
    }
}

/// Maintenance messages handled per op; more remaining makes the next pass run at once.
const PASS_LIMIT: usize = 1_000;

pub(crate) async fn run(core: Arc<QueueCore>, mut stop: watch::Receiver<bool>) {
    let clock = core.store.clock().clone();
    loop {
        let changed = core.timer.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let deadline = core.timer.current();
        let sleep = async {
            if deadline == u64::MAX {
                std::future::pending::<()>().await;
            } else {
                clock.sleep_until(deadline).await;
            }
        };
        tokio::select! {
            _ = sleep => {}
            _ = &mut changed => continue,
            _ = stop.changed() => return,
        }
        if !core.timer.take_if_due(clock.now_ms()) {
            continue;
        }
        let result = pass(&core).await;
        match result {
            Ok(Some(next)) => core.timer.lower(next),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "queue maintenance failed");
                if matches!(e, crate::Error::Closed | crate::Error::Poisoned { .. }) {
                    return;
                }
                // Try again at the next tick of the clock.
                core.timer.lower(clock.now_ms().saturating_add(1_000));
            }
        }
    }
}

/// One maintenance op: does what is due and wakes receivers after the commit. Returns the next
/// deadline.
pub(crate) async fn pass(core: &Arc<QueueCore>) -> crate::Result<Option<u64>> {
    let core2 = core.clone();
    core.store
        .write(move |ctx| {
            let done = ops::maintain(ctx, PASS_LIMIT)?;
            let core = core2.clone();
            let ready = done.ready.clone();
            ctx.after_commit(move || {
                for (queue, n) in ready {
                    core.wake(&queue, n);
                }
            });
            Ok(done.next_deadline)
        })
        .await
}
