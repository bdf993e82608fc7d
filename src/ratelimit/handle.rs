//! [`RateLimit`]: the handle to one named rate limiter.

use std::sync::Arc;
use std::time::Duration;

use super::core::RateLimitCore;
use super::key::identifier_key;
use super::storage::RateLimitStorage;
use super::window::{RateLimitCheck, Window};
use crate::clock::millis;
use crate::error::{Error, Result, check_name};

/// A named sliding-window rate limiter of the file: at most `limit` checks per `window` for
/// each identifier (a user id, an IP address, an API key). Get one from
/// [`Engine::rate_limit`](crate::Engine::rate_limit); cheap to clone.
///
/// A check counts the current window's checks plus the previous window's, weighted by how
/// much of the previous window the sliding window still covers (windows are aligned to
/// multiples of their length). Every check is counted, including refused ones, so a caller
/// that keeps trying while limited stays limited. Counts are durable in the file (a restart
/// does not reset them) and are dropped once they no longer matter, two windows after the
/// identifier's last check. Identifiers over 64 bytes are stored as their SHA-256.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> jobfile::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// use std::time::Duration;
/// let engine = jobfile::Engine::open(dir.path().join("app.jobfile")).await?;
/// let logins = engine.rate_limit("login", 5, Duration::from_secs(60))?;
/// let check = logins.check("user:42").await?;
/// assert!(!check.limited);
/// assert_eq!(check.remaining, 4);
/// # engine.shutdown(Duration::from_secs(1)).await?; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RateLimit {
    name: Arc<str>,
    window: Window,
    core: Arc<RateLimitCore>,
}

impl RateLimit {
    pub(crate) fn new(
        core: Arc<RateLimitCore>,
        name: &str,
        limit: u64,
        window: Duration,
    ) -> Result<Self> {
        check_name("rate limit name", name)?;
        if limit == 0 {
            return Err(Error::invalid("rate limit", "must allow at least 1 check"));
        }
        let window_ms = millis(window);
        if window_ms == 0 {
            return Err(Error::invalid("rate limit window", "must be at least 1 ms"));
        }
        Ok(RateLimit {
            name: name.into(),
            window: Window { limit, window_ms },
            core,
        })
    }

    /// The limiter's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Checks allowed per window.
    pub fn limit(&self) -> u64 {
        self.window.limit
    }

    /// The window's length (whole milliseconds).
    pub fn window(&self) -> Duration {
        Duration::from_millis(self.window.window_ms)
    }

    /// Counts one check for `identifier` and says whether it was over the limit, how many
    /// more would pass now, and when. Durable when it returns: checks from many tasks share
    /// the group commit.
    pub async fn check(&self, identifier: &str) -> Result<RateLimitCheck> {
        let key = identifier_key(identifier);
        self.core.backend.check(&self.name, &key, self.window).await
    }

    /// [`check`](Self::check), with a limited check as [`Error::RateLimited`] (carrying when
    /// a check passes again), for code that returns early with `?`.
    pub async fn check_or_err(&self, identifier: &str) -> Result<RateLimitCheck> {
        let check = self.check(identifier).await?;
        if check.limited {
            return Err(Error::RateLimited {
                name: self.name.to_string(),
                retry_in_ms: millis(check.retry_in),
            });
        }
        Ok(check)
    }

    /// Forgets `identifier`'s counts: its next check starts a fresh window. Returns whether it
    /// had any.
    pub async fn reset(&self, identifier: &str) -> Result<bool> {
        let key = identifier_key(identifier);
        self.core.backend.reset(&self.name, &key).await
    }
}
