//! Job counters: a snapshot, and events pushed to an optional callback.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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
    },
    /// A job failed for good.
    Failed {
        /// The definition name.
        name: String,
        /// The last attempt.
        attempt: u32,
        /// Its failure code.
        code: String,
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
    },
    /// A job left running by a dead process was put back in line.
    Recovered {
        /// The definition name.
        name: String,
    },
}

/// Job counters since this engine opened, plus the jobs queued and running now (read from the
/// file, so they include jobs from earlier runs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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

/// The callback type of [`EngineOptions::on_job_metric`](crate::EngineOptions::on_job_metric).
pub type MetricCallback = Arc<dyn Fn(&JobMetric) + Send + Sync>;

#[derive(Default)]
pub(crate) struct Counters {
    submitted: AtomicU64,
    started: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
    cancelled: AtomicU64,
    timed_out: AtomicU64,
    recovered: AtomicU64,
    callback: Option<MetricCallback>,
}

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counters").finish_non_exhaustive()
    }
}

impl Counters {
    pub(crate) fn new(callback: Option<MetricCallback>) -> Self {
        Counters {
            callback,
            ..Counters::default()
        }
    }

    pub(crate) fn record(&self, event: &JobMetric) {
        let counter = match event {
            JobMetric::Submitted { .. } => &self.submitted,
            JobMetric::Started { .. } => &self.started,
            JobMetric::Completed { .. } => &self.completed,
            JobMetric::Failed { .. } => &self.failed,
            JobMetric::Retried { .. } => &self.retried,
            JobMetric::Cancelled { .. } => &self.cancelled,
            JobMetric::TimedOut { .. } => &self.timed_out,
            JobMetric::Recovered { .. } => &self.recovered,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if let Some(cb) = &self.callback {
            // A panicking callback must not take the engine down with it.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cb(event)));
        }
    }

    pub(crate) fn snapshot(&self, running_now: u64, queued_now: u64) -> JobMetrics {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        JobMetrics {
            submitted: get(&self.submitted),
            started: get(&self.started),
            completed: get(&self.completed),
            failed: get(&self.failed),
            retried: get(&self.retried),
            cancelled: get(&self.cancelled),
            timed_out: get(&self.timed_out),
            recovered: get(&self.recovered),
            running_now,
            queued_now,
        }
    }
}
