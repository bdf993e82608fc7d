//! One background timer per primitive: a task sleeps on the [`Clock`] until the earliest instant
//! at which its primitive has timed work (a lease deadline, a delayed item coming due, a
//! retention purge), runs one pass, and sleeps again. Ops that create an earlier deadline lower
//! the timer after their commit, so nothing polls.

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, watch};

use crate::clock::Clock;
use crate::error::{Error, Result};

/// The earliest instant (ms) at which a pass has work; `u64::MAX` for none.
#[derive(Debug)]
pub(crate) struct Timer {
    next: Mutex<u64>,
    changed: Notify,
}

impl Timer {
    pub(crate) fn new(next: Option<u64>) -> Self {
        Timer {
            next: Mutex::new(next.unwrap_or(u64::MAX)),
            changed: Notify::new(),
        }
    }

    /// Makes sure a pass runs no later than `at`.
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

/// Runs `pass` whenever the timer comes due, until `stop` fires or the store closes. A pass
/// returns the next instant it has work at; a failed pass is retried a second later.
pub(crate) async fn run<F, Fut>(
    what: &'static str,
    timer: &Timer,
    clock: Arc<dyn Clock>,
    mut stop: watch::Receiver<bool>,
    mut pass: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<u64>>>,
{
    loop {
        let changed = timer.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let deadline = timer.current();
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
        if !timer.take_if_due(clock.now_ms()) {
            continue;
        }
        match pass().await {
            Ok(Some(next)) => timer.lower(next),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "{what} maintenance failed");
                if matches!(e, Error::Closed | Error::Poisoned { .. }) {
                    return;
                }
                timer.lower(clock.now_ms().saturating_add(1_000));
            }
        }
    }
}
