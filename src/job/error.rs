//! What a handler returns when an attempt fails, and what is kept of a failure.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The error a job handler returns. Retryable by default: the job runs again while it has
/// attempts left. [`JobError::permanent`] fails the job at once.
///
/// ```
/// use jobfile::JobError;
/// let e = JobError::permanent("card declined").code("DECLINED");
/// assert!(!e.is_retryable());
/// assert_eq!(e.code_str(), "DECLINED");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobError {
    message: String,
    code: String,
    retryable: bool,
}

impl JobError {
    /// A failure worth retrying (code `ERROR`).
    pub fn retryable(message: impl Into<String>) -> Self {
        JobError {
            message: message.into(),
            code: "ERROR".into(),
            retryable: true,
        }
    }

    /// A failure no retry can fix (code `ERROR`): the job fails at once.
    pub fn permanent(message: impl Into<String>) -> Self {
        JobError {
            message: message.into(),
            code: "ERROR".into(),
            retryable: false,
        }
    }

    /// Sets the machine-readable code kept with the failure.
    pub fn code(mut self, code: impl Into<String>) -> Self {
        self.code = code.into();
        self
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The code.
    pub fn code_str(&self) -> &str {
        &self.code
    }

    /// Whether the job may run again after this failure.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// Not a [`std::error::Error`] itself, so that `?` inside a handler or a step turns any error
/// into a `JobError` (retryable, code `ERROR`) through the conversion below, as `anyhow` does.
impl AsRef<str> for JobError {
    fn as_ref(&self) -> &str {
        &self.message
    }
}

/// `Err` with code `code` (permanent) if `what`, `len` bytes encoded, is over the definition's
/// result limit ([`JobSpec::result_limit`](crate::JobSpec::result_limit)).
pub(crate) fn check_result_size(
    len: usize,
    limit: usize,
    what: &str,
    code: &str,
) -> Result<(), JobError> {
    if len <= limit {
        return Ok(());
    }
    Err(JobError::permanent(format!(
        "{what} is {len} bytes encoded, over the definition's result limit of {limit} bytes (JobSpec::result_limit)"
    ))
    .code(code))
}

/// Any error inside a handler or a step is a retryable failure, so `?` works on an
/// `io::Error`, a `serde_json::Error` or an application's own error type without `map_err`:
/// code `ENGINE` for jobfile's own [`Error`](crate::Error) (a failed step commit, a closed
/// engine), `ERROR` for any other. The message is the error's, with its sources after `: `.
impl<E> From<E> for JobError
where
    E: std::error::Error + Send + Sync + 'static,
{
    fn from(e: E) -> Self {
        let mut message = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            let text = s.to_string();
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            source = s.source();
        }
        match (&e as &dyn std::any::Any).downcast_ref::<crate::Error>() {
            // The attempt lost its job: retrying it cannot help, and what it returns is dropped.
            Some(crate::Error::NotHolder { .. }) => JobError::permanent(message).code("LOST"),
            Some(_) => JobError::retryable(message).code("ENGINE"),
            None => JobError::retryable(message).code("ERROR"),
        }
    }
}

/// A failure as recorded on a job: what went wrong, its code, and in which attempt.
///
/// Codes set by jobfile: `PANIC` (the handler panicked), `TIMEOUT` (no heartbeat within the
/// lease, or past the attempt timeout), `CRASH_LOOP` (the process died while running it more
/// often than the crash budget allows), `INPUT_DECODE` (the stored input no longer fits the
/// handler's input type), `DUPLICATE_STEP`, `STEP_DECODE`, `OUTPUT_TOO_LARGE`,
/// `STEP_TOO_LARGE`, `NOT_A_DEPENDENCY`, `DEPENDENCY_GONE`, `DEPENDENCY_DECODE`. Handlers
/// choose their own codes; the default is `ERROR`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JobFailure {
    /// The machine-readable code.
    pub code: String,
    /// The message.
    pub message: String,
    /// The attempt that failed.
    pub attempt: u32,
}

impl fmt::Display for JobFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (attempt {}): {}",
            self.code, self.attempt, self.message
        )
    }
}
