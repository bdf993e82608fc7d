//! Durable typed jobs: submit, workers, retries with backoff, leases and heartbeats, memoized
//! steps, progress, per-job event streams, join and cancel.
//!
//! A job is `queued` (maybe delayed or backing off), then `running`, then `completed`,
//! `failed`, `cancelled` or `timed_out`. Terminal states never change (a failed job can only
//! be retried by hand, from the dead-letter view in [`Jobs`]).

pub(crate) mod backend;
mod backoff;
mod batch;
pub(crate) mod core;
mod ctx;
pub(crate) mod drain;
mod durations;
pub(crate) mod effects;
mod error;
mod events;
mod handle;
mod info;
mod list;
mod metrics;
pub(crate) mod ops;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
pub(crate) mod record;
pub(crate) mod redb;
mod rules;
mod signal;
mod spec;
mod storage;
mod submit;
pub(crate) mod tables;
pub(crate) mod transition;
mod view;
mod worker;

pub use backoff::Backoff;
pub use batch::{Batch, BatchBuilder, BatchInfo, BatchOutcome};
pub use ctx::JobCtx;
pub use drain::Drained;
pub use durations::AttemptDurations;
pub use error::{JobError, JobFailure};
pub use events::{JobEventStream, JobEvents};
pub use handle::{JobHandle, SubmittedJob};
pub use info::{
    CancelOutcome, Dependency, Items, JobCounts, JobEvent, JobEventKind, JobInfo, JobPage,
    JobState, Outcome, Progress, Submitted,
};
pub use list::ListJobs;
pub use metrics::{JobMetric, JobMetrics, MetricCallback};
#[cfg(feature = "testing")]
pub(crate) mod testing;
pub use signal::StopReason;
pub use spec::JobSpec;
pub use submit::Submit;
pub use view::Jobs;
