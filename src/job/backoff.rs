//! How long a failed attempt waits before the next one.

use std::time::Duration;

use crate::clock::millis;
use crate::error::{Error, Result};

/// The wait between a failed attempt and the next one. Default: [`Backoff::none`].
///
/// The delay after attempt `n` (counting from 1) is:
/// - `none`: 0, the retry is ready at once;
/// - `fixed(base)`: `base`;
/// - `exponential(base, max)`: `min(max, base·2^(n-1))`, then moved by up to `± jitter` of
///   itself (a fraction between 0 and 1, default 0), so that retries of many jobs spread out.
///
/// ```
/// use std::time::Duration;
/// use jobfile::Backoff;
/// let b = Backoff::exponential(Duration::from_millis(200), Duration::from_secs(30)).jitter(0.2);
/// let third = b.delay_after(3, 42);
/// assert!(third >= Duration::from_millis(640) && third <= Duration::from_millis(960));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub enum Backoff {
    /// Retry at once.
    #[default]
    None,
    /// Wait the same time after every failed attempt.
    Fixed {
        /// The wait.
        base: Duration,
    },
    /// Double the wait after every failed attempt, up to `max`, with optional jitter.
    Exponential {
        /// The wait after the first failed attempt.
        base: Duration,
        /// The longest wait.
        max: Duration,
        /// The fraction (0 to 1) by which each wait may be moved up or down at random.
        jitter: f64,
    },
}

impl Backoff {
    /// No wait: a retry is ready at once.
    pub fn none() -> Self {
        Backoff::None
    }

    /// The same wait after every failed attempt.
    pub fn fixed(base: Duration) -> Self {
        Backoff::Fixed { base }
    }

    /// `base`, `2·base`, `4·base`, … capped at `max`; no jitter until [`Backoff::jitter`] adds it.
    pub fn exponential(base: Duration, max: Duration) -> Self {
        Backoff::Exponential {
            base,
            max,
            jitter: 0.0,
        }
    }

    /// Sets the jitter fraction of an exponential backoff (0 to 1; checked when the definition
    /// is registered or the job submitted). Has no effect on the other kinds.
    pub fn jitter(self, fraction: f64) -> Self {
        match self {
            Backoff::Exponential { base, max, .. } => Backoff::Exponential {
                base,
                max,
                jitter: fraction,
            },
            other => other,
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if let Backoff::Exponential { jitter, .. } = self
            && !(0.0..=1.0).contains(jitter)
        {
            return Err(Error::invalid(
                "backoff",
                format!("jitter must be between 0 and 1, got {jitter}"),
            ));
        }
        Ok(())
    }

    /// The wait after failed attempt `attempt` (from 1). `seed` picks the jitter: the same seed
    /// gives the same wait, so a job's retries are reproducible in tests.
    pub fn delay_after(&self, attempt: u32, seed: u64) -> Duration {
        Duration::from_millis(self.delay_ms(attempt, seed))
    }

    pub(crate) fn delay_ms(&self, attempt: u32, seed: u64) -> u64 {
        match *self {
            Backoff::None => 0,
            Backoff::Fixed { base } => millis(base),
            Backoff::Exponential { base, max, jitter } => {
                let doublings = attempt.saturating_sub(1).min(63);
                let raw = millis(base).saturating_mul(1u64 << doublings);
                let capped = raw.min(millis(max)) as f64;
                crate::jitter::jittered_ms(capped, jitter, seed)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_doubles_caps_and_jitters_within_bounds() {
        let ms = Duration::from_millis;
        let b = Backoff::exponential(ms(100), ms(1_000));
        let plain: Vec<u64> = (1..=6).map(|n| b.delay_ms(n, 7)).collect();
        assert_eq!(plain, vec![100, 200, 400, 800, 1_000, 1_000]);
        let j = b.jitter(0.25);
        let mut seen_low = false;
        let mut seen_high = false;
        for seed in 0..2_000 {
            let d = j.delay_ms(3, seed);
            assert!((300..=500).contains(&d), "{d}");
            seen_low |= d < 330;
            seen_high |= d > 470;
        }
        assert!(seen_low && seen_high, "jitter should spread over its range");
        assert_eq!(Backoff::fixed(ms(250)).delay_ms(9, 1), 250);
        assert_eq!(Backoff::none().delay_ms(3, 1), 0);
        assert!(
            Backoff::exponential(ms(1), ms(2))
                .jitter(1.5)
                .validate()
                .is_err()
        );
    }
}
