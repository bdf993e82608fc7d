//! Job counters: a snapshot, and events pushed to an optional callback.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

use super::durations::Durations;

/// Something that happened to a job, as reported to a metrics callback
/// ([`EngineOptions::on_job_metric`](crate::EngineOptions::on_job_metric)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobMetric {
    /// A new job was stored (a deduplicated submit is not counted).
    Submitted {
        /// The definition name.
        name: String,
    },
    /// An attempt started.
    Started {
        /// The definition name.
        name: String,
        /// The attempt number.
        attempt: u32,
    },
    /// A job completed.
    Completed {
        /// The definition name.
        name: String,
        /// The attempt that completed it.
        attempt: u32,
        /// How long that attempt ran, in ms.
        run_ms: u64,
    },
    /// A failed attempt will be retried.
    Retried {
        /// The definition name.
        name: String,
        /// The attempt that failed.
        attempt: u32,
        /// Its failure code.
        code: String,
        /// How long that attempt ran, in ms.
        run_ms: u64,
    },
    /// A job failed for good.
    Failed {
        /// The definition name.
        name: String,
        /// The last attempt.
        attempt: u32,
        /// Its failure code.
        code: String,
        /// How long that attempt ran, in ms (until its process died, for `CRASH_LOOP`: 0).
        run_ms: u64,
    },
    /// A job was cancelled.
    Cancelled {
        /// The definition name.
        name: String,
    },
    /// A job timed out for good.
    TimedOut {
        /// The definition name.
        name: String,
        /// The last attempt.
        attempt: u32,
        /// How long that attempt ran, in ms.
        run_ms: u64,
    },
    /// A job left running by a dead process was put back in line.
    Recovered {
        /// The definition name.
        name: String,
    },
}

impl JobMetric {
    /// The name of the counter this event adds to in the file.
    pub(crate) fn counter_name(&self) -> &'static str {
        match self {
            JobMetric::Submitted { .. } => SUBMITTED,
            JobMetric::Started { .. } => STARTED,
            JobMetric::Completed { .. } => COMPLETED,
            JobMetric::Failed { .. } => FAILED,
            JobMetric::Retried { .. } => RETRIED,
            JobMetric::Cancelled { .. } => CANCELLED,
            JobMetric::TimedOut { .. } => TIMED_OUT,
            JobMetric::Recovered { .. } => RECOVERED,
        }
    }
}

const SUBMITTED: &str = "count:jobs_submitted";
const STARTED: &str = "count:jobs_started";
const COMPLETED: &str = "count:jobs_completed";
const FAILED: &str = "count:jobs_failed";
const RETRIED: &str = "count:jobs_retried";
const CANCELLED: &str = "count:jobs_cancelled";
const TIMED_OUT: &str = "count:jobs_timed_out";
const RECOVERED: &str = "count:jobs_recovered";

/// Job counters over the life of the file, and the jobs queued and running now. They are
/// stored in the file and updated in the same commit as the change they count, so a snapshot
/// always agrees with the jobs it describes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JobMetrics {
    /// New jobs stored.
    pub submitted: u64,
    /// Attempts started.
    pub started: u64,
    /// Jobs completed.
    pub completed: u64,
    /// Jobs failed for good.
    pub failed: u64,
    /// Failed attempts scheduled for a retry.
    pub retried: u64,
    /// Jobs cancelled.
    pub cancelled: u64,
    /// Jobs timed out for good.
    pub timed_out: u64,
    /// Jobs recovered after the process running them died.
    pub recovered: u64,
    /// Attempts running now.
    pub running_now: u64,
    /// Jobs queued now (ready, delayed or waiting for a backoff).
    pub queued_now: u64,
}

impl JobMetrics {
    /// Reads the snapshot with `get`, which returns a stored counter's value.
    pub(crate) fn read(
        mut get: impl FnMut(&str) -> crate::Result<u64>,
        running: &str,
        queued: &str,
    ) -> crate::Result<Self> {
        Ok(JobMetrics {
            submitted: get(SUBMITTED)?,
            started: get(STARTED)?,
            completed: get(COMPLETED)?,
            failed: get(FAILED)?,
            retried: get(RETRIED)?,
            cancelled: get(CANCELLED)?,
            timed_out: get(TIMED_OUT)?,
            recovered: get(RECOVERED)?,
            running_now: get(running)?,
            queued_now: get(queued)?,
        })
    }
}

/// The callback type of [`EngineOptions::on_job_metric`](crate::EngineOptions::on_job_metric).
pub type MetricCallback = Arc<dyn Fn(&JobMetric) + Send + Sync>;

/// Hands metric events to the callback, if there is one.
pub(crate) struct Reporter {
    callback: Option<MetricCallback>,
    /// Attempt durations, fed by the same events.
    pub(crate) durations: Durations,
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reporter").finish_non_exhaustive()
    }
}

impl Reporter {
    pub(crate) fn new(callback: Option<MetricCallback>) -> Self {
        Reporter {
            callback,
            durations: Durations::default(),
        }
    }

    pub(crate) fn report(&self, event: &JobMetric) {
        self.durations.observe(event);
        if let Some(cb) = &self.callback {
            // A panicking callback must not take the engine down with it.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cb(event)));
        }
    }
}
