//! Time. Every time-dependent decision (delays, leases, expiry) reads a [`Clock`], so tests can
//! drive time by hand with [`ManualClock`] instead of sleeping.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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

    /// Milliseconds that passed while this process ran, from any origin: a monotonic count
    /// that a wall-clock step does not move, and that stands still while the machine sleeps.
    /// The scheduler compares it with [`Clock::now_ms`] to tell time that passed from a jump
    /// (slots that came due across a jump are misfires). The default, `now_ms`, never shows
    /// a jump.
    fn elapsed_ms(&self) -> u64 {
        self.now_ms()
    }
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
        Box::pin(async move {
            // Timers run on the monotonic clock, which a step of the wall clock does not
            // move: sleep in slices of at most a second and re-read the wall clock after
            // each, so a deadline that a step brought closer is met within a second.
            loop {
                let now = SystemClock.now_ms();
                if now >= deadline_ms {
                    return;
                }
                let wait = (deadline_ms - now).min(MAX_SLEEP_SLICE_MS);
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
        })
    }

    fn elapsed_ms(&self) -> u64 {
        static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        let origin = *ORIGIN.get_or_init(std::time::Instant::now);
        u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// The longest a [`SystemClock`] sleep goes without reading the wall clock again.
const MAX_SLEEP_SLICE_MS: u64 = 1_000;

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
    /// Time that passed (advances and forward sets, not jumps); see [`Clock::elapsed_ms`].
    elapsed: Arc<AtomicU64>,
}

impl ManualClock {
    /// A manual clock standing at `start_ms` (milliseconds since the Unix epoch).
    pub fn new(start_ms: u64) -> Self {
        let (tx, _) = watch::channel(start_ms);
        ManualClock {
            now: Arc::new(tx),
            elapsed: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Moves the clock forward by `by`: time passes while the engine runs.
    pub fn advance(&self, by: Duration) {
        let by = millis(by);
        self.elapsed.fetch_add(by, Ordering::SeqCst);
        self.now.send_modify(|t| *t = t.saturating_add(by));
    }

    /// Sets the clock to `ms`; a move forward is time passing, as with
    /// [`advance`](Self::advance). Moving backwards is allowed (to test clock steps) but
    /// sleepers only wake when their deadline is reached.
    pub fn set(&self, ms: u64) {
        let before = self.now.send_replace(ms);
        self.elapsed
            .fetch_add(ms.saturating_sub(before), Ordering::SeqCst);
    }

    /// Steps the wall clock forward by `by` without time passing for the engine: what a
    /// machine waking from sleep, or an NTP step, looks like. Slots of the scheduler that
    /// came due inside the jump are misfires.
    pub fn jump(&self, by: Duration) {
        let by = millis(by);
        self.now.send_modify(|t| *t = t.saturating_add(by));
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        *self.now.borrow()
    }

    fn elapsed_ms(&self) -> u64 {
        self.elapsed.load(Ordering::SeqCst)
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
