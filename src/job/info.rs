//! The values a caller sees of a job: its state, its stored form for inspection, how it ended.
//! Built from the stored record; nothing here touches storage.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::error::JobFailure;
use super::record::EventKindV1;
use super::record::{JobStateV1, JobV1};
use crate::error::{Error, Result};

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Submitted to run after other jobs ([`Submit::after`](crate::Submit::after)), some of
    /// which have not ended yet.
    Waiting,
    /// Waiting to run (maybe delayed, or backing off after a failed attempt).
    Queued,
    /// An attempt is running.
    Running,
    /// Finished with an output.
    Completed,
    /// Failed for good.
    Failed,
    /// Cancelled.
    Cancelled,
    /// Its last attempt missed its lease or passed its timeout.
    TimedOut,
}

impl JobState {
    /// The public state of a stored state.
    pub(crate) fn of(state: &JobStateV1) -> JobState {
        match state {
            JobStateV1::Queued { .. } => JobState::Queued,
            JobStateV1::Running { .. } => JobState::Running,
            JobStateV1::Completed { .. } => JobState::Completed,
            JobStateV1::Failed { .. } => JobState::Failed,
            JobStateV1::Cancelled { .. } => JobState::Cancelled,
            JobStateV1::TimedOut { .. } => JobState::TimedOut,
            JobStateV1::Waiting { .. } => JobState::Waiting,
        }
    }

    /// The state's stable name: `waiting`, `queued`, `running`, `completed`, `failed`,
    /// `cancelled`, `timed_out`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Waiting => "waiting",
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
            JobState::TimedOut => "timed_out",
        }
    }

    /// The state named `name` (as [`as_str`](JobState::as_str) gives it).
    pub(crate) fn from_name(name: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Every state, in the order of a job's life.
    pub const ALL: [JobState; 7] = [
        JobState::Waiting,
        JobState::Queued,
        JobState::Running,
        JobState::Completed,
        JobState::Failed,
        JobState::Cancelled,
        JobState::TimedOut,
    ];

    /// True for `completed`, `failed`, `cancelled` and `timed_out`.
    pub fn is_terminal(self) -> bool {
        !matches!(
            self,
            JobState::Waiting | JobState::Queued | JobState::Running
        )
    }

    pub(crate) fn finished_code(self) -> Option<u8> {
        match self {
            JobState::Completed => Some(2),
            JobState::Failed => Some(3),
            JobState::Cancelled => Some(4),
            JobState::TimedOut => Some(5),
            JobState::Waiting | JobState::Queued | JobState::Running => None,
        }
    }

    pub(crate) fn from_finished_code(code: u8) -> JobState {
        match code {
            2 => JobState::Completed,
            3 => JobState::Failed,
            4 => JobState::Cancelled,
            _ => JobState::TimedOut,
        }
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

pub(crate) fn state_name(state: &JobStateV1) -> &'static str {
    JobState::of(state).as_str()
}

/// The latest progress a handler reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Progress {
    /// 0 to 100.
    pub percent: u8,
    /// The stage name.
    pub stage: String,
    /// The count behind it, when reported with
    /// [`JobCtx::progress_items`](crate::JobCtx::progress_items); serialized as `done` and
    /// `total` beside `percent`.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Items>,
}

/// Progress counted in items: `done` of `total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Items {
    /// Items done.
    pub done: u64,
    /// Items in all.
    pub total: u64,
}

impl Items {
    /// `done` of `total`.
    pub fn new(done: u64, total: u64) -> Self {
        Items { done, total }
    }
}

/// How many jobs of one definition the file holds in each state; see
/// [`Jobs::counts`](crate::Jobs::counts).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JobCounts {
    /// The definition name.
    pub name: String,
    /// Waiting for the jobs they run after.
    #[serde(default)]
    pub waiting: u64,
    /// Waiting to run (now or later).
    pub queued: u64,
    /// Running now.
    pub running: u64,
    /// Completed and not yet pruned.
    pub completed: u64,
    /// Failed and not yet pruned (the dead-letter view).
    pub failed: u64,
    /// Cancelled and not yet pruned.
    pub cancelled: u64,
    /// Timed out and not yet pruned.
    pub timed_out: u64,
    /// Paused ([`Jobs::pause`](crate::Jobs::pause)): none of its jobs start.
    #[serde(default)]
    pub paused: bool,
}

impl JobCounts {
    /// Adds `n` jobs in `state`.
    pub(crate) fn add(&mut self, state: JobState, n: u64) {
        let slot = match state {
            JobState::Waiting => &mut self.waiting,
            JobState::Queued => &mut self.queued,
            JobState::Running => &mut self.running,
            JobState::Completed => &mut self.completed,
            JobState::Failed => &mut self.failed,
            JobState::Cancelled => &mut self.cancelled,
            JobState::TimedOut => &mut self.timed_out,
        };
        *slot += n;
    }
}

/// One page of [`Jobs::list`](crate::Jobs::list).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JobPage {
    /// The jobs that matched, newest first (oldest first when asked).
    pub jobs: Vec<JobInfo>,
    /// Where the next page starts: pass it to [`ListJobs::after`](crate::ListJobs::after).
    /// `None` when the walk reached the end.
    pub next: Option<u64>,
}

/// A job as stored, for inspection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JobInfo {
    /// The job id.
    pub id: u64,
    /// The definition name.
    pub name: String,
    /// Where it stands.
    pub state: JobState,
    /// Attempts started and charged so far.
    pub attempts: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Recoveries after the process running it died.
    pub crashes: u32,
    /// Its priority.
    pub priority: i32,
    /// Its idempotency key.
    pub key: Option<String>,
    /// Its meta map, in the order given.
    pub meta: Vec<(String, String)>,
    /// The input, JSON-encoded.
    pub input_json: Vec<u8>,
    /// The output of a completed job, JSON-encoded.
    pub output_json: Option<Vec<u8>>,
    /// The last failure of any attempt.
    pub last_error: Option<JobFailure>,
    /// The latest progress.
    pub progress: Option<Progress>,
    /// For a queued job, when it may run (ms since the epoch); for a waiting one, the earliest
    /// it may run once the jobs it runs after have ended.
    pub run_at_ms: Option<u64>,
    /// For a running job, its lease deadline.
    pub lease_deadline_ms: Option<u64>,
    /// For a cancelled job, the reason given.
    pub cancel_reason: Option<String>,
    /// When it was submitted.
    pub created_at_ms: u64,
    /// When it last changed.
    pub updated_at_ms: u64,
    /// When it reached its terminal state.
    pub finished_at_ms: Option<u64>,
    /// Events in its stream so far.
    pub events: u32,
    /// The jobs it was submitted to run after ([`Submit::after`](crate::Submit::after)).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<Dependency>,
    /// For a waiting job, how many of those have not ended yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<u32>,
}

/// A job another runs after: see [`Submit::after`](crate::Submit::after).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Dependency {
    /// The job's id.
    pub id: u64,
    /// The dependent runs however this job ends, not only when it completes
    /// ([`Submit::after_allowing_failure`](crate::Submit::after_allowing_failure)).
    pub allow_failure: bool,
}

pub(crate) fn info(id: u64, job: JobV1) -> JobInfo {
    let state = JobState::of(&job.state);
    let finished_at_ms = job.state.finished_at();
    let waiting_for = match job.state {
        JobStateV1::Waiting { remaining, .. } => Some(remaining),
        _ => None,
    };
    let (run_at_ms, lease_deadline_ms, output_json, cancel_reason) = match job.state {
        JobStateV1::Queued { run_at, .. } | JobStateV1::Waiting { run_at, .. } => {
            (Some(run_at), None, None, None)
        }
        JobStateV1::Running { lease_deadline, .. } => (None, Some(lease_deadline), None, None),
        JobStateV1::Completed { output, .. } => (None, None, Some(output), None),
        JobStateV1::Cancelled { reason, .. } => (None, None, None, Some(reason)),
        JobStateV1::Failed { .. } | JobStateV1::TimedOut { .. } => (None, None, None, None),
    };
    JobInfo {
        id,
        name: job.name,
        state,
        attempts: job.attempts,
        max_attempts: job.max_attempts,
        crashes: job.crashes,
        priority: job.priority,
        key: job.key,
        meta: job.meta,
        input_json: job.input,
        output_json,
        last_error: job.last_error.map(Into::into),
        progress: job.progress.map(|(percent, stage)| Progress {
            percent,
            stage,
            items: job
                .progress_items
                .map(|(done, total)| Items { done, total }),
        }),
        run_at_ms,
        lease_deadline_ms,
        cancel_reason,
        created_at_ms: job.created_at,
        updated_at_ms: job.updated_at,
        finished_at_ms,
        events: job.next_event,
        after: job
            .after
            .iter()
            .map(|d| Dependency {
                id: d.id,
                allow_failure: d.allow_failure,
            })
            .collect(),
        waiting_for,
    }
}

/// How a job ended, as returned by [`JobHandle::join`](crate::JobHandle::join).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", content = "value", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome<O> {
    /// It completed with this output.
    Completed(O),
    /// It failed for good.
    Failed(JobFailure),
    /// Its last attempt missed its lease or passed its timeout (code `TIMEOUT`), and it
    /// failed for good.
    TimedOut(JobFailure),
    /// It was cancelled, with this reason.
    Cancelled(String),
    /// It has not ended: the join's own timeout passed first. The job goes on, in this state.
    JoinTimedOut(JobState),
}

/// What [`JobHandle::cancel`](crate::JobHandle::cancel) found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", content = "state", rename_all = "snake_case")]
#[non_exhaustive]
pub enum CancelOutcome {
    /// The job was queued or running and is now cancelled.
    Cancelled,
    /// The job had already ended in this state; nothing changed.
    AlreadyFinished(JobState),
}

/// The result of a submit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Submitted {
    /// The job id.
    pub id: u64,
    /// True when the idempotency key matched a retained job and nothing new was stored.
    pub deduplicated: bool,
}

pub(crate) fn outcome_of<O: DeserializeOwned>(job: JobInfo) -> Result<Option<Outcome<O>>> {
    let failure = |job: JobInfo| -> JobFailure {
        job.last_error.unwrap_or(JobFailure {
            code: "ERROR".into(),
            message: String::new(),
            attempt: job.attempts,
        })
    };
    Ok(Some(match job.state {
        JobState::Waiting | JobState::Queued | JobState::Running => return Ok(None),
        JobState::Completed => {
            let output = job.output_json.as_deref().unwrap_or_default();
            let out = serde_json::from_slice(output).map_err(|e| Error::TypeMismatch {
                what: format!("the output of job {} ({})", job.id, job.name),
                detail: format!(
                    "it does not decode into {}: {e}",
                    std::any::type_name::<O>()
                ),
            })?;
            Outcome::Completed(out)
        }
        JobState::Failed => Outcome::Failed(failure(job)),
        JobState::TimedOut => Outcome::TimedOut(failure(job)),
        JobState::Cancelled => Outcome::Cancelled(job.cancel_reason.unwrap_or_default()),
    }))
}

/// One entry of a job's event stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JobEvent {
    /// Its position in the job's stream, from 0.
    pub seq: u32,
    /// When it happened (ms since the epoch).
    pub at_ms: u64,
    /// What happened. In JSON its fields sit beside `seq` and `at_ms`, its name under
    /// `kind`: `{"seq": 1, "at_ms": 5000, "kind": "started", "attempt": 1, "epoch": 1}`.
    #[serde(flatten)]
    pub kind: JobEventKind,
}

/// What happened to a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
#[serde(tag = "kind", rename_all = "snake_case")]
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
        /// The count behind it, if reported in items (`done` and `total` in JSON).
        #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
        items: Option<Items>,
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
    /// Every job it was submitted to run after has ended: it is queued.
    DependenciesMet,
}

impl JobEventKind {
    /// The event's stable name: `submitted`, `started`, `step_completed`, `progress`,
    /// `heartbeat`, `retry_scheduled`, `recovered`, `completed`, `failed`, `timed_out`,
    /// `cancelled`, `dependencies_met`.
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
            JobEventKind::DependenciesMet => "dependencies_met",
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
            EventKindV1::Progress { percent, stage } => JobEventKind::Progress {
                percent,
                stage,
                items: None,
            },
            EventKindV1::ProgressItems {
                percent,
                stage,
                done,
                total,
            } => JobEventKind::Progress {
                percent,
                stage,
                items: Some(Items { done, total }),
            },
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
            EventKindV1::DependenciesMet => JobEventKind::DependenciesMet,
        }
    }
}
