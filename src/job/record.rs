//! The stored forms of a job and of its events. Versioned enums: add variants, never change
//! old ones (postcard stores no field names).

use serde::{Deserialize, Serialize};

use std::time::Duration;

use super::backoff::Backoff;
use super::error::JobFailure;
use super::ops::submit::NewJob;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum StoredJob {
    /// Every event in the events table.
    V1(JobV1),
    /// The job's first events (up to [`INLINE_EVENTS`]) ride in the record, the rest are in
    /// the events table.
    V2(JobV1, Vec<EventV1>),
    /// As `V2`, and the last field says whether the input is stored apart, in the job inputs
    /// table (see [`crate::store::apart`]), leaving the record's input empty.
    V3(JobV1, Vec<EventV1>, bool),
    /// As `V3`, and the last field is the items form of the latest progress, `(done, total)`
    /// (see [`JobV1::progress_items`]). Written from format version 3 on.
    V4(JobV1, Vec<EventV1>, bool, Option<(u64, u64)>),
    /// As `V4`, then the jobs it runs after (see [`JobV1::after`]), whether jobs wait for
    /// it (see [`JobV1::has_dependents`]) and its batch (see [`JobV1::batch`]). Written from
    /// format version 6 on, for jobs with dependencies, dependents or a batch only.
    V5(
        JobV1,
        Vec<EventV1>,
        bool,
        Option<(u64, u64)>,
        Vec<DependencyV1>,
        bool,
        Option<u64>,
    ),
}

/// A job another job runs after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DependencyV1 {
    pub(crate) id: u64,
    /// The dependent runs whichever way this one ends, not only when it completes.
    pub(crate) allow_failure: bool,
}

/// A definition's flow control, in the job flow table. Versioned: only ever add variants.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum StoredFlow {
    V1(FlowV1),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct FlowV1 {
    /// Paused since this instant (ms): no attempt of the definition starts.
    pub(crate) paused_at: Option<u64>,
    /// The counts of the start limit's window, once an attempt started under one.
    pub(crate) starts: Option<crate::ratelimit::record::CountsV1>,
}

impl StoredJob {
    /// The job, with its inline events in place. An input stored apart is not loaded: see
    /// [`JobV1::input_apart`].
    pub(crate) fn into_job(self) -> JobV1 {
        match self {
            StoredJob::V1(job) => job,
            StoredJob::V2(mut job, events) => {
                job.inline_events = events;
                job
            }
            StoredJob::V3(mut job, events, input_apart) => {
                job.inline_events = events;
                job.input_apart = input_apart;
                job
            }
            StoredJob::V4(mut job, events, input_apart, items) => {
                job.inline_events = events;
                job.input_apart = input_apart;
                job.progress_items = items;
                job
            }
            StoredJob::V5(mut job, events, input_apart, items, after, has_dependents, batch) => {
                job.inline_events = events;
                job.input_apart = input_apart;
                job.progress_items = items;
                job.after = after;
                job.has_dependents = has_dependents;
                job.batch = batch;
                job
            }
        }
    }
}

/// The borrowed twin of [`StoredJob`]: same bytes, no clone of the input. Written as the
/// newest version, except that a job without dependencies, dependents or a batch is written
/// as `V4`, which builds from before those read too.
#[derive(Debug, Serialize)]
pub(crate) enum StoredJobRef<'a> {
    /// No longer written (but by a test helper); kept so that later variants keep their index.
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    V1(&'a JobV1),
    /// No longer written; kept for its index.
    #[allow(dead_code)]
    V2(&'a JobV1, &'a [EventV1]),
    /// No longer written; kept for its index.
    #[allow(dead_code)]
    V3(&'a JobV1, &'a [EventV1], bool),
    V4(&'a JobV1, &'a [EventV1], bool, Option<(u64, u64)>),
    V5(
        &'a JobV1,
        &'a [EventV1],
        bool,
        Option<(u64, u64)>,
        &'a [DependencyV1],
        bool,
        Option<u64>,
    ),
}

impl<'a> StoredJobRef<'a> {
    pub(crate) fn new(job: &'a JobV1) -> Self {
        if job.after.is_empty() && !job.has_dependents && job.batch.is_none() {
            StoredJobRef::V4(job, &job.inline_events, job.input_apart, job.progress_items)
        } else {
            StoredJobRef::V5(
                job,
                &job.inline_events,
                job.input_apart,
                job.progress_items,
                &job.after,
                job.has_dependents,
                job.batch,
            )
        }
    }
}

/// The bytes stored for `job`: always the newest format, its inline events beside it.
pub(crate) fn encode_job(job: &JobV1) -> Vec<u8> {
    crate::store::codec::encode(&StoredJobRef::new(job))
}

/// How many of a job's first events are stored in its record rather than as rows of the events
/// table. A job's record is rewritten at every change anyway, so these events cost no write of
/// their own: a job that is submitted, started and completed writes no event row at all.
/// Later events (heartbeats, progress of a long job) go to the table, so the record stays small.
pub(crate) const INLINE_EVENTS: usize = 6;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct JobV1 {
    pub(crate) name: String,
    /// The input, JSON-encoded (self-describing, so a changed input type is detected).
    pub(crate) input: Vec<u8>,
    pub(crate) priority: i32,
    pub(crate) key: Option<String>,
    pub(crate) meta: Vec<(String, String)>,
    pub(crate) max_attempts: u32,
    pub(crate) backoff: BackoffV1,
    pub(crate) lease_ms: u64,
    pub(crate) timeout_ms: Option<u64>,
    pub(crate) retention_ms: u64,
    pub(crate) crash_budget: u32,
    pub(crate) created_at: u64,
    /// Attempts started and charged.
    pub(crate) attempts: u32,
    /// Recoveries after the process running it died.
    pub(crate) crashes: u32,
    pub(crate) state: JobStateV1,
    pub(crate) last_error: Option<FailureV1>,
    pub(crate) progress: Option<(u8, String)>,
    pub(crate) next_event: u32,
    pub(crate) updated_at: u64,
    /// The events stored in the record: positions `0..inline_events.len()` of the stream. Not
    /// part of the `V1` layout; [`StoredJob::V2`] stores them beside it.
    #[serde(skip)]
    pub(crate) inline_events: Vec<EventV1>,
    /// The input is in the job inputs table and `input` is empty (see [`crate::store::apart`]).
    /// Not part of the `V1` layout; [`StoredJob::V3`] stores it beside it.
    #[serde(skip)]
    pub(crate) input_apart: bool,
    /// The latest progress counted in items, `(done, total)`, beside `progress`. Not part of
    /// the `V1` layout; [`StoredJob::V4`] stores it beside it.
    #[serde(skip)]
    pub(crate) progress_items: Option<(u64, u64)>,
    /// The jobs it runs after, as submitted. Not part of the `V1` layout; [`StoredJob::V5`]
    /// stores it beside it.
    #[serde(skip)]
    pub(crate) after: Vec<DependencyV1>,
    /// Jobs were submitted to run after it: when it ends, the dependents table is read for
    /// them (jobs without any skip that read). [`StoredJob::V5`] stores it.
    #[serde(skip)]
    pub(crate) has_dependents: bool,
    /// The batch it is a member of. [`StoredJob::V5`] stores it.
    #[serde(skip)]
    pub(crate) batch: Option<u64>,
}

/// A batch of jobs, in the batches table. Versioned: only ever add variants.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum StoredBatch {
    V1(BatchV1),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BatchV1 {
    pub(crate) created_at: u64,
    /// No more members may join; its callbacks fire once every member has ended.
    pub(crate) sealed: bool,
    /// Members, ended or not (those removed at the end of their retention no longer count).
    pub(crate) total: u64,
    /// Members ended: completed, failed, cancelled, timed out.
    pub(crate) ended: [u64; 4],
    /// The callbacks (their inputs are replaced by the batch's outcome).
    pub(crate) on_complete: Option<JobTemplateV1>,
    pub(crate) on_success: Option<JobTemplateV1>,
    /// When every member had ended and the callbacks were submitted.
    pub(crate) finished_at: Option<u64>,
    /// The callback jobs submitted then.
    pub(crate) callbacks: Vec<u64>,
}

/// A job to submit later (by a schedule, or when a batch finishes): a definition's settings
/// and an input.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct JobTemplateV1 {
    pub(crate) name: String,
    pub(crate) input: Vec<u8>,
    pub(crate) priority: i32,
    pub(crate) meta: Vec<(String, String)>,
    pub(crate) max_attempts: u32,
    pub(crate) backoff: BackoffV1,
    pub(crate) lease_ms: u64,
    pub(crate) timeout_ms: Option<u64>,
    pub(crate) retention_ms: u64,
    pub(crate) crash_budget: u32,
}

impl JobTemplateV1 {
    pub(crate) fn from_new_job(j: NewJob) -> Self {
        JobTemplateV1 {
            name: j.name,
            input: j.input,
            priority: j.priority,
            meta: j.meta,
            max_attempts: j.max_attempts,
            backoff: j.backoff,
            lease_ms: j.lease_ms,
            timeout_ms: j.timeout_ms,
            retention_ms: j.retention_ms,
            crash_budget: j.crash_budget,
        }
    }

    /// The job to submit now: the template's, with `input` and `key`.
    pub(crate) fn job(&self, input: Vec<u8>, key: Option<String>) -> NewJob {
        NewJob {
            name: self.name.clone(),
            input,
            priority: self.priority,
            key,
            meta: self.meta.clone(),
            max_attempts: self.max_attempts,
            backoff: self.backoff,
            lease_ms: self.lease_ms,
            timeout_ms: self.timeout_ms,
            retention_ms: self.retention_ms,
            crash_budget: self.crash_budget,
            run_at: None,
            after: Vec::new(),
            batch: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum JobStateV1 {
    /// Waiting: in the ready index under `ready_seq`, or in the delayed index until `run_at`.
    Queued {
        ready_seq: Option<u64>,
        run_at: u64,
    },
    Running {
        attempt: u32,
        epoch: u64,
        started_at: u64,
        lease_deadline: u64,
        timeout_deadline: Option<u64>,
    },
    Completed {
        output: Vec<u8>,
        at: u64,
    },
    Failed {
        at: u64,
    },
    Cancelled {
        reason: String,
        at: u64,
    },
    TimedOut {
        at: u64,
    },
    /// Waiting for `remaining` of the jobs it runs after to end; then queued, to run at
    /// `run_at` at the earliest. Listed in the dependents table under each of those jobs.
    Waiting {
        run_at: u64,
        remaining: u32,
    },
}

impl JobStateV1 {
    /// The key of the running attempt's entry in the lease index.
    pub(crate) fn lease_key(&self) -> Option<u64> {
        match self {
            JobStateV1::Running {
                lease_deadline,
                timeout_deadline,
                ..
            } => Some(timeout_deadline.map_or(*lease_deadline, |t| t.min(*lease_deadline))),
            _ => None,
        }
    }

    /// Whether a job in this state has an entry in the finished index: every terminal state
    /// but `completed`.
    pub(crate) fn indexed_as_finished(&self) -> bool {
        matches!(
            self,
            JobStateV1::Failed { .. } | JobStateV1::Cancelled { .. } | JobStateV1::TimedOut { .. }
        )
    }

    /// Failed jobs' code in the finished index.
    pub(crate) const FAILED_CODE: u8 = 3;
    /// Timed-out jobs' code in the finished index.
    pub(crate) const TIMED_OUT_CODE: u8 = 5;

    /// The state code used in the finished index, for terminal states.
    pub(crate) fn finished_code(&self) -> Option<u8> {
        match self {
            JobStateV1::Completed { .. } => Some(2),
            JobStateV1::Failed { .. } => Some(Self::FAILED_CODE),
            JobStateV1::Cancelled { .. } => Some(4),
            JobStateV1::TimedOut { .. } => Some(Self::TIMED_OUT_CODE),
            _ => None,
        }
    }

    pub(crate) fn finished_at(&self) -> Option<u64> {
        match self {
            JobStateV1::Completed { at, .. }
            | JobStateV1::Failed { at }
            | JobStateV1::Cancelled { at, .. }
            | JobStateV1::TimedOut { at } => Some(*at),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum BackoffV1 {
    None,
    Fixed {
        base_ms: u64,
    },
    Exponential {
        base_ms: u64,
        max_ms: u64,
        /// Jitter in millionths.
        jitter_ppm: u32,
    },
}

impl From<Backoff> for BackoffV1 {
    fn from(b: Backoff) -> Self {
        match b {
            Backoff::None => BackoffV1::None,
            Backoff::Fixed { base } => BackoffV1::Fixed {
                base_ms: crate::clock::millis(base),
            },
            Backoff::Exponential { base, max, jitter } => BackoffV1::Exponential {
                base_ms: crate::clock::millis(base),
                max_ms: crate::clock::millis(max),
                jitter_ppm: (jitter.clamp(0.0, 1.0) * 1e6).round() as u32,
            },
        }
    }
}

impl From<BackoffV1> for Backoff {
    fn from(b: BackoffV1) -> Self {
        match b {
            BackoffV1::None => Backoff::None,
            BackoffV1::Fixed { base_ms } => Backoff::fixed(Duration::from_millis(base_ms)),
            BackoffV1::Exponential {
                base_ms,
                max_ms,
                jitter_ppm,
            } => Backoff::exponential(
                Duration::from_millis(base_ms),
                Duration::from_millis(max_ms),
            )
            .jitter(f64::from(jitter_ppm) / 1e6),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FailureV1 {
    pub(crate) code: String,
    pub(crate) message: String,
    pub(crate) attempt: u32,
}

impl From<FailureV1> for JobFailure {
    fn from(f: FailureV1) -> Self {
        JobFailure {
            code: f.code,
            message: f.message,
            attempt: f.attempt,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum StoredEvent {
    V1(EventV1),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EventV1 {
    pub(crate) at: u64,
    pub(crate) kind: EventKindV1,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum EventKindV1 {
    Submitted,
    Started {
        attempt: u32,
        epoch: u64,
    },
    StepCompleted {
        step: String,
    },
    Progress {
        percent: u8,
        stage: String,
    },
    Heartbeat,
    RetryScheduled {
        next_at: u64,
        error: FailureV1,
    },
    Recovered {
        reason: String,
    },
    Completed,
    Failed {
        error: FailureV1,
    },
    TimedOut {
        error: FailureV1,
    },
    Cancelled {
        reason: String,
    },
    /// Progress counted in items (format version 3 on).
    ProgressItems {
        percent: u8,
        stage: String,
        done: u64,
        total: u64,
    },
    /// Every job it ran after has ended: it is queued (format version 6 on).
    DependenciesMet,
}

/// A typical job record after submit → start → complete: a 16-byte JSON input, one meta pair,
/// the default retry settings and `events` events of its own (up to [`INLINE_EVENTS`] of them
/// inline, as the engine writes it). For micro benchmarks of the record codec.
#[cfg(feature = "testing")]
pub(crate) fn sample_job(events: usize) -> JobV1 {
    let at = 1_767_225_600_000;
    let inline = events.min(INLINE_EVENTS);
    let inline_events = (0..inline)
        .map(|i| EventV1 {
            at: at + i as u64,
            kind: match i {
                0 => EventKindV1::Submitted,
                1 => EventKindV1::Started {
                    attempt: 1,
                    epoch: 3,
                },
                2 => EventKindV1::Completed,
                _ => EventKindV1::Heartbeat,
            },
        })
        .collect();
    JobV1 {
        name: "send-email".to_string(),
        input: br#"{"user":1234567}"#.to_vec(),
        priority: 0,
        key: None,
        meta: vec![("tenant".to_string(), "acme".to_string())],
        max_attempts: 3,
        backoff: BackoffV1::Exponential {
            base_ms: 1_000,
            max_ms: 300_000,
            jitter_ppm: 200_000,
        },
        lease_ms: 30_000,
        timeout_ms: None,
        retention_ms: 7 * 24 * 3_600_000,
        crash_budget: 3,
        created_at: at,
        attempts: 1,
        crashes: 0,
        state: JobStateV1::Completed {
            output: b"null".to_vec(),
            at: at + 2,
        },
        last_error: None,
        progress: None,
        next_event: events as u32,
        updated_at: at + 2,
        inline_events,
        input_apart: false,
        progress_items: None,
        after: Vec::new(),
        has_dependents: false,
        batch: None,
    }
}
