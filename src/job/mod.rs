//! Durable typed jobs: submit, workers, retries with backoff, leases and heartbeats, memoized
//! steps, progress, per-job event streams, join and cancel.
//!
//! A job is `queued` (maybe delayed or backing off), then `running`, then `completed`,
//! `failed`, `cancelled` or `timed_out`. Terminal states never change (a failed job can only
//! be retried by hand, from the dead-letter view in [`Jobs`]).

mod backoff;
pub(crate) mod core;
mod ctx;
mod error;
mod events;
mod metrics;
pub(crate) mod ops;
pub(crate) mod record;
mod signal;
mod spec;
pub(crate) mod tables;
mod worker;

use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::ReadableTable;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

pub use backoff::Backoff;
pub use ctx::JobCtx;
pub use error::{JobError, JobFailure};
pub use events::{JobEvent, JobEventKind, JobEventStream, JobEvents};
pub use metrics::{JobMetric, JobMetrics, MetricCallback};
pub use signal::StopReason;
pub use spec::JobSpec;

use self::core::JobCore;
use crate::clock::millis;
use crate::error::{Error, Result};
use crate::store::codec::decode;
use ops::cancel::Cancelled;
use ops::submit::NewJob;
use record::{JobStateV1, JobV1, StoredJob};
use tables::{JOB_DELAYED, JOB_FINISHED, JOB_INPUTS, JOB_LEASES, JOB_READY, JOBS};
use worker::{Definition, HandlerFuture};

/// The longest idempotency key, in bytes.
const MAX_KEY: usize = 1024;

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JobState {
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
    /// The state's stable name: `queued`, `running`, `completed`, `failed`, `cancelled`,
    /// `timed_out`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
            JobState::TimedOut => "timed_out",
        }
    }

    /// True for `completed`, `failed`, `cancelled` and `timed_out`.
    pub fn is_terminal(self) -> bool {
        !matches!(self, JobState::Queued | JobState::Running)
    }

    fn finished_code(self) -> Option<u8> {
        match self {
            JobState::Completed => Some(2),
            JobState::Failed => Some(3),
            JobState::Cancelled => Some(4),
            JobState::TimedOut => Some(5),
            JobState::Queued | JobState::Running => None,
        }
    }

    fn from_finished_code(code: u8) -> JobState {
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

fn state_of(state: &JobStateV1) -> JobState {
    match state {
        JobStateV1::Queued { .. } => JobState::Queued,
        JobStateV1::Running { .. } => JobState::Running,
        JobStateV1::Completed { .. } => JobState::Completed,
        JobStateV1::Failed { .. } => JobState::Failed,
        JobStateV1::Cancelled { .. } => JobState::Cancelled,
        JobStateV1::TimedOut { .. } => JobState::TimedOut,
    }
}

pub(crate) fn state_name(state: &JobStateV1) -> &'static str {
    state_of(state).as_str()
}

/// The latest progress a handler reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// 0 to 100.
    pub percent: u8,
    /// The stage name.
    pub stage: String,
}

/// A job as stored, for inspection.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// For a queued job, when it may run (ms since the epoch).
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
}

fn info(id: u64, job: JobV1) -> JobInfo {
    let state = state_of(&job.state);
    let finished_at_ms = job.state.finished_at();
    let (run_at_ms, lease_deadline_ms, output_json, cancel_reason) = match job.state {
        JobStateV1::Queued { run_at, .. } => (Some(run_at), None, None, None),
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
        progress: job
            .progress
            .map(|(percent, stage)| Progress { percent, stage }),
        run_at_ms,
        lease_deadline_ms,
        cancel_reason,
        created_at_ms: job.created_at,
        updated_at_ms: job.updated_at,
        finished_at_ms,
        events: job.next_event,
    }
}

/// How a job ended, as returned by [`JobHandle::join`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<O> {
    /// It completed with this output.
    Completed(O),
    /// It failed for good.
    Failed(JobFailure),
    /// It timed out for good (code `TIMEOUT`), or the join itself timed out before the job
    /// ended (code `JOIN_TIMEOUT`; the job goes on).
    TimedOut(JobFailure),
    /// It was cancelled, with this reason.
    Cancelled(String),
}

/// What [`JobHandle::cancel`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The job was queued or running and is now cancelled.
    Cancelled,
    /// The job had already ended in this state; nothing changed.
    AlreadyFinished(JobState),
}

/// The result of a submit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Submitted {
    /// The job id.
    pub id: u64,
    /// True when the idempotency key matched a retained job and nothing new was stored.
    pub deduplicated: bool,
}

/// A typed handle to one job definition: submit, join, cancel and inspect its jobs.
/// Cheap to clone. Get one from [`Engine::register`](crate::Engine::register) (which also runs
/// the handler) or [`Engine::job`](crate::Engine::job) (submit only).
pub struct JobHandle<I, O> {
    core: Arc<JobCore>,
    spec: Arc<JobSpec>,
    _types: PhantomData<fn(I) -> O>,
}

impl<I, O> Clone for JobHandle<I, O> {
    fn clone(&self) -> Self {
        JobHandle {
            core: self.core.clone(),
            spec: self.spec.clone(),
            _types: PhantomData,
        }
    }
}

impl<I, O> std::fmt::Debug for JobHandle<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobHandle")
            .field("name", &self.spec.name)
            .finish_non_exhaustive()
    }
}

impl<I, O> JobHandle<I, O>
where
    I: Serialize + DeserializeOwned + Send + 'static,
    O: Serialize + DeserializeOwned + Send + 'static,
{
    pub(crate) fn new(core: Arc<JobCore>, spec: JobSpec) -> Result<Self> {
        spec.validate()?;
        Ok(JobHandle {
            core,
            spec: Arc::new(spec),
            _types: PhantomData,
        })
    }

    /// Starts the workers of this definition with `handler`.
    pub(crate) fn start<H, Fut>(&self, handler: H) -> Result<()>
    where
        H: Fn(JobCtx, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, JobError>> + Send + 'static,
    {
        if !self.core.register_name(&self.spec.name) {
            return Err(Error::invalid(
                "job name",
                format!("a handler for {:?} is registered already", self.spec.name),
            ));
        }
        let handler = Arc::new(handler);
        let type_name = std::any::type_name::<I>();
        let limit = self.spec.result_limit;
        let invoke = move |ctx: JobCtx,
                           input: &[u8]|
              -> std::result::Result<HandlerFuture, String> {
            let input: I = serde_json::from_slice(input)
                .map_err(|e| format!("the stored input does not decode into {type_name}: {e}"))?;
            let run = handler(ctx, input);
            Ok(Box::pin(async move {
                let output = run.await?;
                let bytes = serde_json::to_vec(&output).map_err(|e| {
                    JobError::permanent(format!("the output cannot be stored: {e}"))
                        .code("OUTPUT_ENCODE")
                })?;
                error::check_result_size(bytes.len(), limit, "the output", "OUTPUT_TOO_LARGE")?;
                Ok(bytes)
            }))
        };
        let concurrency = Arc::new(Semaphore::new(self.spec.concurrency));
        let def = Arc::new(Definition {
            name: self.spec.name.as_str().into(),
            concurrency: concurrency.clone(),
            result_limit: limit,
            invoke: Box::new(invoke),
        });
        let (handoff, handoffs) = tokio::sync::mpsc::unbounded_channel();
        self.core.add_target(
            &self.spec.name,
            worker::DispatchTarget {
                concurrency,
                handoff,
            },
        );
        tokio::spawn(worker::take_handoffs(
            self.core.clone(),
            def.clone(),
            handoffs,
        ));
        tokio::spawn(worker::run(self.core.clone(), def));
        Ok(())
    }

    /// The definition name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Submits a job with `input`; options are set on the returned builder, which is awaited.
    /// Durable (fsync'd by default) when it returns. No handler needs to be registered in this
    /// process: the job waits until one is.
    ///
    /// Errors: [`Error::PayloadTooLarge`] for an input (plus meta) over the definition's
    /// limit; [`Error::InvalidArgument`] for a bad key or override. Nothing is written then.
    pub fn submit(&self, input: I) -> Submit<'_, I, O> {
        Submit {
            handle: self,
            input,
            key: None,
            delay: None,
            at: None,
            priority: None,
            max_attempts: None,
            backoff: None,
            lease: None,
            timeout: None,
            meta: Vec::new(),
        }
    }

    /// Submits many jobs in one transaction: all of them or, on any error, none. Each item is a
    /// [`submit`](JobHandle::submit) builder of this handle, with its own key, delay and
    /// options. Returns one [`Submitted`] per item, in order; a key used twice in the batch
    /// gives the first job's id twice, the second marked `deduplicated`.
    ///
    /// One commit instead of one per job: the way to enqueue a large backlog fast.
    ///
    /// Errors: those of [`submit`](JobHandle::submit), for the first bad item (nothing is
    /// written then).
    pub async fn submit_many<'a>(
        &'a self,
        items: impl IntoIterator<Item = Submit<'a, I, O>>,
    ) -> Result<Vec<Submitted>> {
        let jobs = items
            .into_iter()
            .map(|s| {
                if s.handle.spec.name != self.spec.name {
                    return Err(Error::invalid(
                        "job",
                        format!(
                            "a submit of {:?} in a batch of {:?}",
                            s.handle.spec.name, self.spec.name
                        ),
                    ));
                }
                s.prepare()
            })
            .collect::<Result<Vec<_>>>()?;
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        self.core
            .write(move |ctx, fx| {
                jobs.iter()
                    .map(|new| {
                        let done = ops::submit::submit(ctx, new, None, fx)?;
                        Ok(Submitted {
                            id: done.id,
                            deduplicated: done.deduplicated,
                        })
                    })
                    .collect()
            })
            .await
    }

    /// Waits until the job reaches a terminal state and returns how it ended. With a timeout
    /// (measured on the engine's clock), a job still unfinished then gives
    /// [`Outcome::TimedOut`] with code `JOIN_TIMEOUT`; the job itself goes on. Without one it
    /// waits as long as it takes.
    ///
    /// Errors: [`Error::UnknownJob`] for an id that does not exist (or was pruned);
    /// [`Error::TypeMismatch`] if the stored output does not decode into `O`.
    pub async fn join(&self, id: u64, timeout: Option<Duration>) -> Result<Outcome<O>> {
        let clock = self.core.store.clock().clone();
        let deadline = timeout.map(|t| clock.now_ms().saturating_add(millis(t)));
        let mut stop = self.core.stop.clone();
        let poisoned = self.core.store.until_poisoned();
        tokio::pin!(poisoned);
        loop {
            let mut changed = self.core.watch(id);
            let job = load_job(&self.core, id)?;
            if let Some(outcome) = outcome_of::<O>(id, job)? {
                return Ok(outcome);
            }
            let expired = async {
                match deadline {
                    Some(at) => clock.sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = changed.changed() => if r.is_err() { return Err(Error::Closed) },
                _ = expired => {
                    return Ok(Outcome::TimedOut(JobFailure {
                        code: "JOIN_TIMEOUT".into(),
                        message: format!(
                            "job {id} did not finish within {} ms",
                            timeout.map(millis).unwrap_or_default()
                        ),
                        attempt: 0,
                    }));
                }
                _ = stop.changed() => return Err(Error::Closed),
                e = &mut poisoned => return Err(e),
            }
        }
    }

    /// Cancels the job: a queued job is cancelled at once; a running one is cancelled at once
    /// too and its handler gets the stop signal ([`JobCtx::cancelled`]), and whatever it
    /// returns afterwards is dropped: cancel wins. A finished job is left as it is, and the
    /// outcome says so.
    ///
    /// Errors: [`Error::UnknownJob`].
    pub async fn cancel(&self, id: u64, reason: &str) -> Result<CancelOutcome> {
        cancel_job(&self.core, id, reason).await
    }

    /// The job as stored.
    ///
    /// Errors: [`Error::UnknownJob`].
    pub fn get(&self, id: u64) -> Result<JobInfo> {
        Ok(info(id, load_job_with_input(&self.core, id)?))
    }
}

fn outcome_of<O: DeserializeOwned>(id: u64, job: JobV1) -> Result<Option<Outcome<O>>> {
    let failure = |job: &JobV1| -> JobFailure {
        job.last_error
            .clone()
            .map(Into::into)
            .unwrap_or(JobFailure {
                code: "ERROR".into(),
                message: String::new(),
                attempt: job.attempts,
            })
    };
    Ok(Some(match &job.state {
        JobStateV1::Queued { .. } | JobStateV1::Running { .. } => return Ok(None),
        JobStateV1::Completed { output, .. } => {
            let out = serde_json::from_slice(output).map_err(|e| Error::TypeMismatch {
                what: format!("the output of job {id} ({})", job.name),
                detail: format!(
                    "it does not decode into {}: {e}",
                    std::any::type_name::<O>()
                ),
            })?;
            Outcome::Completed(out)
        }
        JobStateV1::Failed { .. } => Outcome::Failed(failure(&job)),
        JobStateV1::TimedOut { .. } => Outcome::TimedOut(failure(&job)),
        JobStateV1::Cancelled { reason, .. } => Outcome::Cancelled(reason.clone()),
    }))
}

fn load_job(core: &JobCore, id: u64) -> Result<JobV1> {
    core.store.read(|rtx| read_job(&rtx.open_table(JOBS)?, id))
}

/// The job `id` with its input in place (also one stored apart), for a view of it.
fn load_job_with_input(core: &JobCore, id: u64) -> Result<JobV1> {
    core.store.read(|rtx| {
        let job = read_job(&rtx.open_table(JOBS)?, id)?;
        with_input(rtx, id, job)
    })
}

/// Puts an input stored apart into `job`.
fn with_input(rtx: &redb::ReadTransaction, id: u64, mut job: JobV1) -> Result<JobV1> {
    if job.input_apart {
        job.input = crate::store::apart::read(&rtx.open_table(JOB_INPUTS)?, "job_inputs", id)?;
    }
    Ok(job)
}

/// The job `id` from an open jobs table of a read transaction.
pub(crate) fn read_job(jobs: &redb::ReadOnlyTable<u64, &[u8]>, id: u64) -> Result<JobV1> {
    let bytes = jobs.get(id)?.ok_or(Error::UnknownJob { id })?;
    let job = decode::<StoredJob>("jobs", bytes.value())?.into_job();
    Ok(job)
}

async fn cancel_job(core: &Arc<JobCore>, id: u64, reason: &str) -> Result<CancelOutcome> {
    // Mark a running attempt first: a completion applied after this point loses.
    if let Some(signal) = core.running_signal(id) {
        signal.request_cancel();
    }
    let reason = reason.to_string();
    let found = core
        .write(move |ctx, fx| ops::cancel::cancel(ctx, id, &reason, fx))
        .await?;
    Ok(match found {
        Cancelled::Done => CancelOutcome::Cancelled,
        Cancelled::AlreadyFinished(code) => {
            CancelOutcome::AlreadyFinished(JobState::from_finished_code(code))
        }
    })
}

/// A submit being built; await it to store the job.
#[must_use = "a submit does nothing until it is awaited"]
pub struct Submit<'a, I, O> {
    handle: &'a JobHandle<I, O>,
    input: I,
    key: Option<String>,
    delay: Option<Duration>,
    at: Option<SystemTime>,
    priority: Option<i32>,
    max_attempts: Option<u32>,
    backoff: Option<Backoff>,
    lease: Option<Duration>,
    timeout: Option<Duration>,
    meta: Vec<(String, String)>,
}

impl<I, O> Submit<'_, I, O> {
    /// An idempotency key: while a job with this key (of this definition) is retained, even
    /// finished, submitting again returns its id with `deduplicated: true`.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }
    /// Run no sooner than `delay` from now. [`Submit::at`] wins if both are given.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }
    /// Run no sooner than `at`.
    pub fn at(mut self, at: SystemTime) -> Self {
        self.at = Some(at);
        self
    }
    /// Overrides the definition's priority.
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = Some(priority);
        self
    }
    /// Overrides the definition's attempts.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(n);
        self
    }
    /// Overrides the definition's backoff.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = Some(backoff);
        self
    }
    /// Overrides the definition's lease.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = Some(lease);
        self
    }
    /// Overrides the definition's attempt timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
    /// Adds a meta entry (a correlation id, say: the key `correlation_id` is put on the
    /// attempt's tracing span).
    pub fn meta(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.meta.push((key.into(), value.into()));
        self
    }
}

impl<'a, I, O> IntoFuture for Submit<'a, I, O>
where
    I: Serialize + DeserializeOwned + Send + 'static,
    O: Serialize + DeserializeOwned + Send + 'static,
{
    type Output = Result<Submitted>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<Submitted>> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let new = self.prepare()?;
            let core = self.handle.core.clone();
            let epoch = core.epoch();
            let done = self
                .handle
                .core
                .write(move |ctx, fx| {
                    // An idle worker here takes the job in this same commit: no claim round trip.
                    let slot = core.free_slot(&new.name);
                    let start_in = slot.is_some().then_some(epoch);
                    let mut done = ops::submit::submit(ctx, &new, start_in, fx)?;
                    if let (Some(job), Some(slot)) = (done.started.take(), slot) {
                        fx.handoffs.push(ops::Handoff {
                            name: new.name.clone(),
                            job,
                            slot,
                        });
                    }
                    Ok((done.id, done.deduplicated))
                })
                .await?;
            Ok(Submitted {
                id: done.0,
                deduplicated: done.1,
            })
        })
    }
}

impl<I: Serialize, O> Submit<'_, I, O> {
    pub(crate) fn prepare(&self) -> Result<NewJob> {
        let spec = &self.handle.spec;
        let input = serde_json::to_vec(&self.input)
            .map_err(|e| Error::invalid("input", format!("it cannot be encoded: {e}")))?;
        let meta_size: usize = self.meta.iter().map(|(k, v)| k.len() + v.len()).sum();
        let size = input.len() + meta_size;
        if size > spec.payload_limit {
            return Err(Error::PayloadTooLarge {
                size,
                limit: spec.payload_limit,
            });
        }
        if let Some(key) = &self.key
            && (key.is_empty() || key.len() > MAX_KEY)
        {
            return Err(Error::invalid(
                "key",
                format!("must be 1 to {MAX_KEY} bytes, got {}", key.len()),
            ));
        }
        let max_attempts = self.max_attempts.unwrap_or(spec.max_attempts);
        spec::validate_attempts(max_attempts)?;
        let lease = self.lease.unwrap_or(spec.lease);
        let timeout = self.timeout.or(spec.timeout);
        spec::validate_lease(lease, timeout)?;
        let backoff = self.backoff.unwrap_or(spec.backoff);
        backoff.validate()?;
        let clock = self.handle.core.store.clock();
        let run_at = match (self.at, self.delay) {
            (Some(at), _) => Some(
                at.duration_since(UNIX_EPOCH)
                    .map(millis)
                    .unwrap_or_default(),
            ),
            (None, Some(delay)) => Some(clock.now_ms().saturating_add(millis(delay))),
            (None, None) => None,
        };
        Ok(NewJob {
            name: spec.name.clone(),
            input,
            priority: self.priority.unwrap_or(spec.priority),
            key: self.key.clone(),
            meta: self.meta.clone(),
            max_attempts,
            backoff: backoff.into(),
            lease_ms: millis(lease),
            timeout_ms: timeout.map(millis),
            retention_ms: millis(spec.retention),
            crash_budget: spec.crash_budget,
            run_at,
        })
    }
}

/// Every job of the engine, whatever its definition: inspect, list by state, the dead-letter
/// view (retry or delete failed jobs), event streams and metrics. Get it from
/// [`Engine::jobs`](crate::Engine::jobs).
#[derive(Debug, Clone)]
pub struct Jobs {
    core: Arc<JobCore>,
}

impl Jobs {
    pub(crate) fn new(core: Arc<JobCore>) -> Self {
        Jobs { core }
    }

    /// The job as stored. Errors: [`Error::UnknownJob`].
    pub fn get(&self, id: u64) -> Result<JobInfo> {
        Ok(info(id, load_job_with_input(&self.core, id)?))
    }

    /// Up to `limit` jobs in `state`, oldest id first, starting after id `after` (0 for the
    /// start). `list(JobState::Failed, 0, 100)` is the dead-letter view.
    ///
    /// Failed, cancelled and timed-out jobs are read from an index. Completed jobs are not
    /// indexed (it saves a write per job): their page walks the jobs by id from `after`, so
    /// it also reads the jobs of other states between them.
    pub fn list(&self, state: JobState, after: u64, limit: usize) -> Result<Vec<JobInfo>> {
        // One read transaction for the index and the records: a snapshot, so a job removed or
        // moved on by a concurrent write is neither missing nor listed in the wrong state.
        self.core.store.read(|rtx| {
            let mut ids = Vec::new();
            match state.finished_code() {
                Some(_) if state == JobState::Completed => {
                    // Not indexed: walk the jobs by id. Most retained jobs are completed ones,
                    // so a page costs about `limit` records.
                    let jobs = rtx.open_table(JOBS)?;
                    let mut out = Vec::new();
                    for entry in jobs.range(after.saturating_add(1)..)? {
                        if out.len() == limit {
                            break;
                        }
                        let (id, bytes) = entry?;
                        let job = decode::<StoredJob>("jobs", bytes.value())?.into_job();
                        if matches!(job.state, JobStateV1::Completed { .. }) {
                            let id = id.value();
                            out.push(info(id, with_input(rtx, id, job)?));
                        }
                    }
                    return Ok(out);
                }
                Some(code) => {
                    let finished = rtx.open_table(JOB_FINISHED)?;
                    for e in finished
                        .range((code, after.saturating_add(1))..=(code, u64::MAX))?
                        .take(limit)
                    {
                        ids.push(e?.0.value().1);
                    }
                }
                None if state == JobState::Running => {
                    for e in rtx.open_table(JOB_LEASES)?.iter()? {
                        ids.push(e?.0.value().1);
                    }
                }
                None => {
                    for e in rtx.open_table(JOB_READY)?.iter()? {
                        ids.push(e?.1.value());
                    }
                    for e in rtx.open_table(JOB_DELAYED)?.iter()? {
                        ids.push(e?.0.value().1);
                    }
                }
            }
            ids.retain(|id| *id > after);
            ids.sort_unstable();
            ids.truncate(limit);
            let jobs = rtx.open_table(JOBS)?;
            ids.into_iter()
                .map(|id| Ok(info(id, with_input(rtx, id, read_job(&jobs, id)?)?)))
                .collect()
        })
    }

    /// Queues a failed or timed-out job again with a fresh attempt budget (and crash budget).
    ///
    /// Errors: [`Error::UnknownJob`]; [`Error::InvalidArgument`] for a job in another state.
    pub async fn retry(&self, id: u64) -> Result<()> {
        self.core
            .write(move |ctx, fx| ops::admin::retry(ctx, id, fx))
            .await
    }

    /// Deletes a finished job with its events, steps and idempotency key.
    ///
    /// Errors: [`Error::UnknownJob`]; [`Error::InvalidArgument`] for a queued or running job.
    pub async fn delete(&self, id: u64) -> Result<()> {
        self.core
            .write(move |ctx, _| ops::admin::delete(ctx, id))
            .await
    }

    /// Cancels any job by id; see [`JobHandle::cancel`].
    pub async fn cancel(&self, id: u64, reason: &str) -> Result<CancelOutcome> {
        cancel_job(&self.core, id, reason).await
    }

    /// The job's event stream.
    pub fn events(&self, id: u64) -> JobEvents {
        JobEvents::new(self.core.clone(), id)
    }

    /// Counters since open, and the jobs queued and running now.
    pub fn metrics(&self) -> Result<JobMetrics> {
        self.core.metrics()
    }
}

/// Rewrites job `id` in the file at `path` (held by no engine) the way the first file format
/// stored it: a `V1` record with every event a row of the events table, and a completed job in
/// the finished index. Returns whether the job existed. For testing files written by earlier
/// versions.
pub(crate) fn rewrite_as_v1(path: &std::path::Path, id: u64) -> Result<bool> {
    use crate::store::codec::encode;
    use record::{StoredEvent, StoredJobRef};
    let db = redb::Database::open(path).map_err(|e| Error::Storage(e.to_string()))?;
    let tx = db.begin_write()?;
    let found = {
        let mut jobs = tx.open_table(JOBS)?;
        let stored = match jobs.get(id)? {
            Some(bytes) => Some(decode::<StoredJob>("jobs", bytes.value())?.into_job()),
            None => None,
        };
        match stored {
            Some(mut job) => {
                let mut events = tx.open_table(self::tables::JOB_EVENTS)?;
                for (event, seq) in std::mem::take(&mut job.inline_events)
                    .into_iter()
                    .zip(0u32..)
                {
                    events.insert((id, seq), encode(&StoredEvent::V1(event)).as_slice())?;
                }
                if let (JobStateV1::Completed { .. }, Some(code)) =
                    (&job.state, job.state.finished_code())
                {
                    tx.open_table(JOB_FINISHED)?.insert((code, id), ())?;
                }
                jobs.insert(id, encode(&StoredJobRef::V1(&job)).as_slice())?;
                true
            }
            None => false,
        }
    };
    tx.commit()?;
    Ok(found)
}

/// Decodes a stored job record (for the fuzz targets).
pub(crate) fn decode_job_record(bytes: &[u8]) -> Result<()> {
    let _: StoredJob = decode("jobs", bytes)?;
    Ok(())
}

/// Decodes a stored job event record (for the fuzz targets).
pub(crate) fn decode_event_record(bytes: &[u8]) -> Result<()> {
    let record::StoredEvent::V1(_) = decode("job_events", bytes)?;
    Ok(())
}
