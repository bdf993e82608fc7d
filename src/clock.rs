//! Time. Every time-dependent decision (delays, leases, expiry) reads a [`Clock`], so tests can
//! drive time by hand with [`ManualClock`] instead of sleeping.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

/// A boxed future returned by [`Clock::sleep_until`].
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A source of wall-clock time in UTC milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// The current time in milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;

    /// A future that completes once [`Clock::now_ms`] has reached `deadline_ms`.
    fn sleep_until(&self, deadline_ms: u64) -> Sleep;
}

/// The system clock, sleeping with tokio timers.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    fn sleep_until(&self, deadline_ms: u64) -> Sleep {
        let wait = deadline_ms.saturating_sub(self.now_ms());
        Box::pin(async move {
            // Re-check after waking: the wall clock may have been adjusted meanwhile.
            tokio::time::sleep(Duration::from_millis(wait)).await;
            let clock = SystemClock;
            let mut now = clock.now_ms();
            while now < deadline_ms {
                tokio::time::sleep(Duration::from_millis(deadline_ms - now)).await;
                now = clock.now_ms();
            }
        })
    }
}

/// A clock that only moves when told to. Sleepers wake as soon as [`ManualClock::advance`] or
/// [`ManualClock::set`] carries the time past their deadline.
///
/// ```
/// use jobfile::{Clock, ManualClock};
/// use std::time::Duration;
/// let clock = ManualClock::new(1_000);
/// clock.advance(Duration::from_secs(2));
/// assert_eq!(clock.now_ms(), 3_000);
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<watch::Sender<u64>>,
}

impl ManualClock {
    /// A manual clock standing at `start_ms` (milliseconds since the Unix epoch).
    pub fn new(start_ms: u64) -> Self {
        let (tx, _) = watch::channel(start_ms);
        ManualClock { now: Arc::new(tx) }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = by.as_millis() as u64;
        self.now.send_modify(|t| *t = t.saturating_add(by));
    }

    /// Sets the clock to `ms`. Moving backwards is allowed (to test clock steps) but sleepers
    /// only wake when their deadline is reached.
    pub fn set(&self, ms: u64) {
        self.now.send_replace(ms);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        *self.now.borrow()
    }

    fn sleep_until(&self, deadline_ms: u64) -> Sleep {
        let mut rx = self.now.subscribe();
        Box::pin(async move {
            // The sender lives as long as the clock; if it is gone, never wake.
            if rx.wait_for(|now| *now >= deadline_ms).await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}

/// Converts a duration to whole milliseconds, saturating.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
