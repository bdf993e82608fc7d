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

    /// [`Clock::now_ms`], read together with the milliseconds that passed while this process
    /// ran (from any origin): a monotonic count that a wall-clock step does not move and that
    /// stands still while the machine sleeps. The scheduler compares the two to tell time
    /// that passed from a jump (slots that came due inside a jump are misfires). The default
    /// gives `now_ms` twice, which never shows a jump.
    fn now_with_elapsed_ms(&self) -> (u64, u64) {
        let now = self.now_ms();
        (now, now)
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
        Box::pin(sleep_in_slices(|| SystemClock.now_ms(), deadline_ms))
    }

    fn now_with_elapsed_ms(&self) -> (u64, u64) {
        static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        let origin = *ORIGIN.get_or_init(std::time::Instant::now);
        (self.now_ms(), millis(origin.elapsed()))
    }
}

/// The longest a [`SystemClock`] sleep goes without reading the wall clock again.
const MAX_SLEEP_SLICE_MS: u64 = 1_000;

/// Waits until `now()` reaches `deadline_ms`. Timers run on the monotonic clock, which a step
/// of the wall clock does not move: sleep in slices of at most a second and read the wall
/// clock after each, so a deadline that a step brought closer is met within a second.
async fn sleep_in_slices(now: impl Fn() -> u64, deadline_ms: u64) {
    loop {
        let now = now();
        if now >= deadline_ms {
            return;
        }
        let wait = (deadline_ms - now).min(MAX_SLEEP_SLICE_MS);
        tokio::time::sleep(Duration::from_millis(wait)).await;
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
    /// The wall clock, and the time that passed (advances and forward sets, not jumps; see
    /// [`Clock::now_with_elapsed_ms`]), changed together.
    now: Arc<watch::Sender<(u64, u64)>>,
}

impl ManualClock {
    /// A manual clock standing at `start_ms` (milliseconds since the Unix epoch).
    pub fn new(start_ms: u64) -> Self {
        let (tx, _) = watch::channel((start_ms, 0));
        ManualClock { now: Arc::new(tx) }
    }

    /// Moves the clock forward by `by`: time passes while the engine runs.
    pub fn advance(&self, by: Duration) {
        let by = millis(by);
        self.now.send_modify(|(now, elapsed)| {
            *now = now.saturating_add(by);
            *elapsed = elapsed.saturating_add(by);
        });
    }

    /// Sets the clock to `ms`; a move forward is time passing, as with
    /// [`advance`](Self::advance). Moving backwards is allowed (to test clock steps) but
    /// sleepers only wake when their deadline is reached.
    pub fn set(&self, ms: u64) {
        self.now.send_modify(|(now, elapsed)| {
            *elapsed = elapsed.saturating_add(ms.saturating_sub(*now));
            *now = ms;
        });
    }

    /// Steps the wall clock forward by `by` without time passing for the engine: what a
    /// machine waking from sleep, or an NTP step, looks like. Slots of the scheduler that
    /// came due inside the jump are misfires.
    pub fn jump(&self, by: Duration) {
        let by = millis(by);
        self.now
            .send_modify(|(now, _)| *now = now.saturating_add(by));
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now.borrow().0
    }

    fn now_with_elapsed_ms(&self) -> (u64, u64) {
        *self.now.borrow()
    }

    fn sleep_until(&self, deadline_ms: u64) -> Sleep {
        let mut rx = self.now.subscribe();
        Box::pin(async move {
            // The sender lives as long as the clock; if it is gone, never wake.
            if rx.wait_for(|(now, _)| *now >= deadline_ms).await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}

/// Converts a duration to whole milliseconds, saturating.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A wall clock that reads tokio's (paused) time plus a step the test sets.
    fn stepped_wall(step: Arc<AtomicU64>) -> impl Fn() -> u64 {
        let origin = tokio::time::Instant::now();
        move || millis(origin.elapsed()) + step.load(Ordering::SeqCst)
    }

    #[tokio::test(start_paused = true)]
    async fn a_forward_step_of_the_wall_clock_ends_a_sleep_within_a_second() {
        let step = Arc::new(AtomicU64::new(0));
        let started = tokio::time::Instant::now();
        let sleep = tokio::spawn(sleep_in_slices(stepped_wall(step.clone()), 60_000));
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        assert!(!sleep.is_finished());
        // The wall clock steps 50 s forward: 7.5 s of the minute remain.
        step.store(50_000, Ordering::SeqCst);
        sleep.await.expect("sleep");
        assert_eq!(millis(started.elapsed()), 10_000);
    }

    #[tokio::test(start_paused = true)]
    async fn a_backward_step_of_the_wall_clock_does_not_end_a_sleep_early() {
        let step = Arc::new(AtomicU64::new(30_000));
        let started = tokio::time::Instant::now();
        let sleep = tokio::spawn(sleep_in_slices(stepped_wall(step.clone()), 40_000));
        tokio::time::sleep(Duration::from_millis(5_000)).await;
        step.store(0, Ordering::SeqCst);
        sleep.await.expect("sleep");
        assert_eq!(millis(started.elapsed()), 40_000);
    }
}

/// `ms` (Unix milliseconds) as `2026-11-30 11:02:13 UTC`, for messages read by people.
pub(crate) fn utc_text(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a civil date (the proleptic Gregorian calendar).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod utc_text_tests {
    use super::utc_text;

    #[test]
    fn formats_known_instants() {
        assert_eq!(utc_text(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_text(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc_text(1_796_036_533_999), "2026-11-30 11:02:13 UTC");
        assert_eq!(utc_text(4_107_542_399_000), "2100-02-28 23:59:59 UTC");
    }
}
