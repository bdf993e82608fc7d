//! The retry helper: run an async operation until it succeeds, waiting longer after each
//! failure. Needs no engine; waits with tokio's timer (so tests can pause time).

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::clock::millis;

/// How [`retry`] waits and when it gives up. Defaults: 8 attempts, 100 ms after the first
/// failure, doubling (factor 2) up to 2 s, each wait moved by up to ±20% (jitter 0.2), and
/// every error retryable.
///
/// ```
/// use std::time::Duration;
/// use jobfile::RetryPolicy;
/// let p = RetryPolicy::<std::io::Error>::default().attempts(3).jitter(0.0);
/// assert_eq!(p.delay_after(1, 0), Duration::from_millis(100));
/// assert_eq!(p.delay_after(2, 0), Duration::from_millis(200));
/// ```
pub struct RetryPolicy<E> {
    attempts: u32,
    min_delay: Duration,
    max_delay: Duration,
    factor: f64,
    jitter: f64,
    retryable: Arc<dyn Fn(&E) -> bool + Send + Sync>,
}

impl<E> Clone for RetryPolicy<E> {
    fn clone(&self) -> Self {
        RetryPolicy {
            attempts: self.attempts,
            min_delay: self.min_delay,
            max_delay: self.max_delay,
            factor: self.factor,
            jitter: self.jitter,
            retryable: self.retryable.clone(),
        }
    }
}

impl<E> fmt::Debug for RetryPolicy<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("attempts", &self.attempts)
            .field("min_delay", &self.min_delay)
            .field("max_delay", &self.max_delay)
            .field("factor", &self.factor)
            .field("jitter", &self.jitter)
            .finish_non_exhaustive()
    }
}

impl<E> Default for RetryPolicy<E> {
    fn default() -> Self {
        RetryPolicy {
            attempts: 8,
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
            factor: 2.0,
            jitter: 0.2,
            retryable: Arc::new(|_| true),
        }
    }
}

impl<E> RetryPolicy<E> {
    /// Attempts in all, the first included (at least 1). Default 8.
    pub fn attempts(mut self, n: u32) -> Self {
        self.attempts = n.max(1);
        self
    }

    /// The wait after the first failure. Default 100 ms.
    pub fn min_delay(mut self, d: Duration) -> Self {
        self.min_delay = d;
        self
    }

    /// The longest wait. Default 2 s.
    pub fn max_delay(mut self, d: Duration) -> Self {
        self.max_delay = d;
        self
    }

    /// How much each wait grows over the last (at least 1). Default 2.
    pub fn factor(mut self, factor: f64) -> Self {
        self.factor = if factor.is_finite() {
            factor.max(1.0)
        } else {
            1.0
        };
        self
    }

    /// The fraction (0 to 1) by which each wait may move up or down at random. Default 0.2.
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = if fraction.is_finite() {
            fraction.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self
    }

    /// Decides which errors are worth another attempt; any other ends the retry at once.
    /// Default: every error.
    pub fn retry_if(mut self, retryable: impl Fn(&E) -> bool + Send + Sync + 'static) -> Self {
        self.retryable = Arc::new(retryable);
        self
    }

    /// The wait after failure number `failures` (from 1): `min(max_delay, min_delay ·
    /// factor^(failures-1))`, then moved by up to `± jitter` of itself as chosen by `seed`.
    pub fn delay_after(&self, failures: u32, seed: u64) -> Duration {
        let grown = millis(self.min_delay) as f64
            * self
                .factor
                .powi(i32::try_from(failures.saturating_sub(1)).unwrap_or(i32::MAX));
        let capped = grown.min(millis(self.max_delay) as f64);
        Duration::from_millis(crate::jitter::jittered_ms(capped, self.jitter, seed))
    }
}

/// Why [`retry`] stopped without a success.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryError<E> {
    /// Attempts ran out, or the error was not retryable: the last error, and how many attempts
    /// were made.
    GaveUp {
        /// The last attempt's error.
        error: E,
        /// Attempts made.
        attempts: u32,
    },
    /// The cancel future completed first; the last error, if an attempt had failed.
    Cancelled {
        /// The error of the last failed attempt, if any.
        last: Option<E>,
        /// Attempts started.
        attempts: u32,
    },
}

impl<E: fmt::Display> fmt::Display for RetryError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetryError::GaveUp { error, attempts } => {
                write!(f, "gave up after {attempts} attempts: {error}")
            }
            RetryError::Cancelled {
                last: Some(e),
                attempts,
            } => {
                write!(f, "cancelled after {attempts} attempts; last error: {e}")
            }
            RetryError::Cancelled {
                last: None,
                attempts,
            } => {
                write!(f, "cancelled after {attempts} attempts")
            }
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for RetryError<E> {}

impl<E> RetryError<E> {
    /// The last error, if an attempt failed.
    pub fn into_last_error(self) -> Option<E> {
        match self {
            RetryError::GaveUp { error, .. } => Some(error),
            RetryError::Cancelled { last, .. } => last,
        }
    }
}

/// Runs `op` (given the attempt number, from 1) until it succeeds, the policy gives up, or
/// the error is not retryable. Returns the success, or the last error.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// use jobfile::{retry, RetryPolicy};
/// let policy = RetryPolicy::default().attempts(5);
/// let answer = retry(&policy, |attempt| async move {
///     if attempt < 3 { Err("not yet") } else { Ok(attempt * 10) }
/// }).await;
/// assert_eq!(answer, Ok(30));
/// # }
/// ```
pub async fn retry<T, E, F, Fut>(policy: &RetryPolicy<E>, op: F) -> Result<T, RetryError<E>>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    retry_until(policy, op, std::future::pending()).await
}

/// Like [`retry`], but stops as soon as `cancel` completes, whether an attempt or a wait is in
/// progress, with [`RetryError::Cancelled`].
pub async fn retry_until<T, E, F, Fut, C>(
    policy: &RetryPolicy<E>,
    mut op: F,
    cancel: C,
) -> Result<T, RetryError<E>>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    C: Future<Output = ()>,
{
    static SEEDS: AtomicU64 = AtomicU64::new(0x5EED);
    let seed = SEEDS.fetch_add(0x9E37_79B9, Ordering::Relaxed);
    tokio::pin!(cancel);
    let mut last = None;
    let mut attempt = 0;
    loop {
        // A cancel already done starts no further attempt, and counts none.
        let cancelled =
            std::future::poll_fn(|cx| std::task::Poll::Ready(cancel.as_mut().poll(cx).is_ready()))
                .await;
        if cancelled {
            return Err(RetryError::Cancelled {
                last,
                attempts: attempt,
            });
        }
        attempt += 1;
        let outcome = tokio::select! {
            biased;
            _ = &mut cancel => return Err(RetryError::Cancelled { last, attempts: attempt }),
            outcome = op(attempt) => outcome,
        };
        let error = match outcome {
            Ok(value) => return Ok(value),
            Err(e) => e,
        };
        if attempt >= policy.attempts || !(policy.retryable)(&error) {
            return Err(RetryError::GaveUp {
                error,
                attempts: attempt,
            });
        }
        let wait = policy.delay_after(attempt, seed ^ u64::from(attempt));
        last = Some(error);
        tokio::select! {
            biased;
            _ = &mut cancel => return Err(RetryError::Cancelled { last, attempts: attempt }),
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
