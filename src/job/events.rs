//! Each job's event stream: read from an offset, or followed live as a [`Stream`].

use std::sync::Arc;

use super::core::JobCore;
use super::error::JobFailure;
use super::record::EventKindV1;
use super::storage::JobStorage;
use crate::error::Result;
use crate::feed::{self, Feed};

/// One entry of a job's event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobEvent {
    /// Its position in the job's stream, from 0.
    pub seq: u32,
    /// When it happened (ms since the epoch).
    pub at_ms: u64,
    /// What happened.
    pub kind: JobEventKind,
}

/// What happened to a job.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobEventKind {
    /// The job was stored.
    Submitted,
    /// An attempt started, under the leadership `epoch`.
    Started {
        /// The attempt number, from 1.
        attempt: u32,
        /// The leadership that ran it.
        epoch: u64,
    },
    /// A step committed its result.
    StepCompleted {
        /// The step id.
        step: String,
    },
    /// The handler reported progress.
    Progress {
        /// 0 to 100.
        percent: u8,
        /// The stage name.
        stage: String,
    },
    /// The handler sent a heartbeat.
    Heartbeat,
    /// An attempt failed and the job will run again at `next_at_ms` (also emitted when a failed
    /// job is retried by hand).
    RetryScheduled {
        /// When the next attempt may start.
        next_at_ms: u64,
        /// The failure.
        error: JobFailure,
    },
    /// The job was put back in line after the process running it died, or handed back at
    /// shutdown.
    Recovered {
        /// What happened.
        reason: String,
    },
    /// The job completed.
    Completed,
    /// The job failed for good.
    Failed {
        /// The last failure.
        error: JobFailure,
    },
    /// The job timed out for good (its last attempt missed its lease or passed its timeout).
    TimedOut {
        /// The last failure, code `TIMEOUT`.
        error: JobFailure,
    },
    /// The job was cancelled.
    Cancelled {
        /// The reason given.
        reason: String,
    },
}

impl JobEventKind {
    /// The event's stable name: `submitted`, `started`, `step_completed`, `progress`,
    /// `heartbeat`, `retry_scheduled`, `recovered`, `completed`, `failed`, `timed_out`,
    /// `cancelled`.
    pub fn name(&self) -> &'static str {
        match self {
            JobEventKind::Submitted => "submitted",
            JobEventKind::Started { .. } => "started",
            JobEventKind::StepCompleted { .. } => "step_completed",
            JobEventKind::Progress { .. } => "progress",
            JobEventKind::Heartbeat => "heartbeat",
            JobEventKind::RetryScheduled { .. } => "retry_scheduled",
            JobEventKind::Recovered { .. } => "recovered",
            JobEventKind::Completed => "completed",
            JobEventKind::Failed { .. } => "failed",
            JobEventKind::TimedOut { .. } => "timed_out",
            JobEventKind::Cancelled { .. } => "cancelled",
        }
    }

    /// True for the events that end a job: `completed`, `failed`, `timed_out`, `cancelled`.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            JobEventKind::Completed
                | JobEventKind::Failed { .. }
                | JobEventKind::TimedOut { .. }
                | JobEventKind::Cancelled { .. }
        )
    }
}

impl From<EventKindV1> for JobEventKind {
    fn from(k: EventKindV1) -> Self {
        match k {
            EventKindV1::Submitted => JobEventKind::Submitted,
            EventKindV1::Started { attempt, epoch } => JobEventKind::Started { attempt, epoch },
            EventKindV1::StepCompleted { step } => JobEventKind::StepCompleted { step },
            EventKindV1::Progress { percent, stage } => JobEventKind::Progress { percent, stage },
            EventKindV1::Heartbeat => JobEventKind::Heartbeat,
            EventKindV1::RetryScheduled { next_at, error } => JobEventKind::RetryScheduled {
                next_at_ms: next_at,
                error: error.into(),
            },
            EventKindV1::Recovered { reason } => JobEventKind::Recovered { reason },
            EventKindV1::Completed => JobEventKind::Completed,
            EventKindV1::Failed { error } => JobEventKind::Failed {
                error: error.into(),
            },
            EventKindV1::TimedOut { error } => JobEventKind::TimedOut {
                error: error.into(),
            },
            EventKindV1::Cancelled { reason } => JobEventKind::Cancelled { reason },
        }
    }
}

/// A job's event stream. Get one from [`Jobs::events`](crate::Jobs::events).
#[derive(Debug, Clone)]
pub struct JobEvents {
    core: Arc<JobCore>,
    id: u64,
}

impl JobEvents {
    pub(crate) fn new(core: Arc<JobCore>, id: u64) -> Self {
        JobEvents { core, id }
    }

    /// Up to `limit` events from position `from` on (replay).
    ///
    /// Errors: [`Error::UnknownJob`] if the job does not exist (or was pruned).
    pub async fn read(&self, from: u32, limit: usize) -> Result<Vec<JobEvent>> {
        self.core.backend.events(self.id, from, limit).await
    }

    /// Every event from position `from` on, then live ones as they are committed, ending
    /// after the job's terminal event. Woken by the commits, never by polling. The first item
    /// is an [`Error::UnknownJob`] if the job does not exist.
    pub fn follow(&self, from: u32) -> JobEventStream {
        let core = self.core.clone();
        let id = self.id;
        let source = feed::Source {
            read: move |from: u64, limit| {
                let core = core.clone();
                let from = u32::try_from(from).unwrap_or(u32::MAX);
                async move { core.backend.events(id, from, limit).await }
            },
            after: |e: &JobEvent| u64::from(e.seq) + 1,
            last: |e: &JobEvent| e.kind.is_terminal(),
        };
        let changes = self.core.watch(id);
        feed::spawn(u64::from(from), source, changes, self.core.stop.clone())
    }
}

/// A live feed of a job's events; see [`JobEvents::follow`].
pub type JobEventStream = Feed<JobEvent>;
