//! A job definition's options, with the defaults of the spec.

use std::time::Duration;

use super::backoff::Backoff;
use crate::error::{Error, Result};

/// A job definition: its name and options. Every option has the documented default.
///
/// ```
/// use std::time::Duration;
/// use jobfile::{Backoff, JobSpec};
/// let spec = JobSpec::new("resize")
///     .max_attempts(5)
///     .backoff(Backoff::exponential(Duration::from_millis(200), Duration::from_secs(30)).jitter(0.2))
///     .concurrency(4);
/// assert_eq!(spec.name(), "resize");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct JobSpec {
    pub(crate) name: String,
    pub(crate) max_attempts: u32,
    pub(crate) backoff: Backoff,
    pub(crate) lease: Duration,
    pub(crate) timeout: Option<Duration>,
    pub(crate) concurrency: usize,
    pub(crate) priority: i32,
    pub(crate) retention: Duration,
    pub(crate) crash_budget: u32,
    pub(crate) payload_limit: usize,
    pub(crate) result_limit: usize,
    pub(crate) rate_limit: Option<(u64, Duration)>,
}

impl JobSpec {
    /// A definition named `name` with the defaults: 1 attempt, no backoff, a 30 s lease, no
    /// attempt timeout, concurrency 1, priority 0, 7 days of retention, a crash budget of 3,
    /// and inputs, outputs and step results of at most 1 MiB each.
    pub fn new(name: impl Into<String>) -> Self {
        JobSpec {
            name: name.into(),
            max_attempts: 1,
            backoff: Backoff::None,
            lease: Duration::from_secs(30),
            timeout: None,
            concurrency: 1,
            priority: 0,
            retention: Duration::from_secs(7 * 24 * 3600),
            crash_budget: 3,
            payload_limit: 1024 * 1024,
            result_limit: 1024 * 1024,
            rate_limit: None,
        }
    }

    /// The definition name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Attempts before a retryable failure fails the job for good (at least 1). Default 1.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n;
        self
    }

    /// The wait before each retry. Default [`Backoff::none`].
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// How long an attempt may go without finishing or heartbeating before it times out.
    /// Default 30 s.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// A hard cap on one attempt, extended by each heartbeat like the lease. Default none.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Handlers of this definition running at once in this process (at least 1). Default 1.
    /// The engine's global cap ([`EngineOptions::max_running_jobs`](crate::EngineOptions::max_running_jobs))
    /// also applies.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }

    /// Priority of its jobs: higher runs first, FIFO within a priority. Default 0.
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// How long a job is kept after reaching a terminal state (record, events, steps and
    /// idempotency key). Default 7 days.
    pub fn retention(mut self, keep: Duration) -> Self {
        self.retention = keep;
        self
    }

    /// Recoveries after the process running a job died, before the job fails with
    /// `CRASH_LOOP`. Default 3.
    pub fn crash_budget(mut self, n: u32) -> Self {
        self.crash_budget = n;
        self
    }

    /// The largest encoded input (plus meta) accepted by submit, in bytes. Default 1 MiB.
    pub fn payload_limit(mut self, bytes: usize) -> Self {
        self.payload_limit = bytes;
        self
    }

    /// The largest encoded output of the handler, and of each step's result, in bytes.
    /// Default 1 MiB. A larger output fails the attempt for good with code
    /// `OUTPUT_TOO_LARGE`; a larger step result fails the step with code `STEP_TOO_LARGE`
    /// (a permanent error; nothing is stored).
    pub fn result_limit(mut self, bytes: usize) -> Self {
        self.result_limit = bytes;
        self
    }

    /// Starts at most `n` attempts of this definition per `per`, counted like
    /// [`RateLimit`](crate::RateLimit)'s sliding window and enforced when workers claim jobs
    /// (so it applies to the workers of the engines that register this spec): jobs beyond it
    /// stay queued, and the workers claim again at the exact instant the window has room,
    /// woken by a timer, not by polling. The window's counts live in the file (or the
    /// PostgreSQL schema, shared by every node), so a restart does not reset them. Default:
    /// no limit.
    pub fn rate_limit(mut self, n: u64, per: Duration) -> Self {
        self.rate_limit = Some((n, per));
        self
    }

    /// The start limit as the sliding window counts it.
    pub(crate) fn start_window(&self) -> Option<crate::ratelimit::window::Window> {
        self.rate_limit
            .map(|(limit, per)| crate::ratelimit::window::Window {
                limit,
                window_ms: crate::clock::millis(per),
            })
    }

    pub(crate) fn validate(&self) -> Result<()> {
        validate_name(&self.name)?;
        if let Some((n, per)) = self.rate_limit {
            if n == 0 {
                return Err(Error::invalid(
                    "job rate limit",
                    "must allow at least 1 start",
                ));
            }
            if crate::clock::millis(per) == 0 {
                return Err(Error::invalid(
                    "job rate limit window",
                    "must be at least 1 ms",
                ));
            }
        }
        if self.concurrency == 0 {
            return Err(Error::invalid("concurrency", "must be at least 1"));
        }
        validate_attempts(self.max_attempts)?;
        validate_lease(self.lease, self.timeout)?;
        self.backoff.validate()
    }
}

pub(crate) fn validate_name(name: &str) -> Result<()> {
    crate::error::check_name("job name", name)
}

pub(crate) fn validate_attempts(n: u32) -> Result<()> {
    if n == 0 {
        return Err(Error::invalid("max_attempts", "must be at least 1"));
    }
    Ok(())
}

pub(crate) fn validate_lease(lease: Duration, timeout: Option<Duration>) -> Result<()> {
    crate::error::check_ttl("lease", lease)?;
    match timeout {
        Some(t) => crate::error::check_ttl("timeout", t),
        None => Ok(()),
    }
}
