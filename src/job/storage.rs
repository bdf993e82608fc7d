//! The job's storage seam: every read and write jobs make, as named operations.
//!
//! A storage backend implements [`JobStorage`]; [`JobBackend`](super::backend::JobBackend)
//! dispatches to the one an engine uses. Ids and instants travel explicitly, and an attempt
//! proves it still owns its job by its [`AttemptClaim`] (job, attempt number, and the
//! leadership epoch that started it), so the same fencing works in one process or across many.

use std::sync::Arc;

use super::effects::Claimed;
use super::error::JobFailure;
use super::info::JobEvent;
use super::info::{CancelOutcome, JobCounts, JobInfo, JobPage, JobState, Submitted};
use super::metrics::JobMetrics;
use super::ops::admin::{QueuedCursor, RetryCursor};
use super::ops::submit::NewJob;
use crate::error::Result;
use crate::ratelimit::window::Window;

/// A handler's progress report: percent, stage, and `(done, total)` when counted in items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProgressUpdate {
    pub(crate) percent: u8,
    pub(crate) stage: String,
    pub(crate) items: Option<(u64, u64)>,
}

/// What a claim started, and when to claim again.
#[derive(Debug, Default)]
pub(crate) struct Claim {
    /// The attempts started.
    pub(crate) jobs: Vec<Claimed>,
    /// More jobs are ready: claim again as soon as a slot frees.
    pub(crate) more: bool,
    /// The definition's start limit held ready jobs back: claim again at this instant (ms).
    pub(crate) limited_until: Option<u64>,
}

/// An attempt's claim on its job. A write made with a claim that lost its job (timed out,
/// cancelled, handed back, or started under an earlier leadership) changes nothing and
/// reports `false`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AttemptClaim {
    pub(crate) id: u64,
    pub(crate) attempt: u32,
    pub(crate) epoch: u64,
}

/// Which jobs a page of [`JobStorage::list`] holds, and where it starts. Jobs are walked by
/// id, so a page never holds a job twice and paging on with `after` never repeats one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JobQuery {
    /// Only jobs of this definition.
    pub(crate) name: Option<String>,
    /// Only jobs in this state.
    pub(crate) state: Option<JobState>,
    /// Only jobs with this meta key set to this value.
    pub(crate) meta: Option<(String, String)>,
    /// Start after this id, in the page's order.
    pub(crate) after: Option<u64>,
    /// Ascending ids instead of descending (newest first).
    pub(crate) oldest_first: bool,
    /// The most jobs in the page.
    pub(crate) limit: usize,
    /// The most jobs examined for the page (matching or not); `None`: as many as it takes.
    pub(crate) scan_limit: Option<usize>,
}

/// The named operations and reads of jobs.
pub(crate) trait JobStorage {
    /// Stores a job, or finds the retained one with the same key. A backend may start the new
    /// job at once in a free worker slot of this process.
    async fn submit(&self, job: NewJob) -> Result<Submitted>;
    /// Stores many jobs in one transaction: all or none.
    async fn submit_many(&self, jobs: Vec<NewJob>) -> Result<Vec<Submitted>>;
    /// Whether a job of `name` is ready to run now (read without a write).
    async fn has_ready(&self, name: &str) -> Result<bool>;
    /// Starts attempts of up to `max` ready jobs of `name` under leadership `epoch`: none
    /// while the definition is paused, and no more than its start limit `rate` has room for.
    async fn claim(
        &self,
        name: &str,
        max: usize,
        epoch: u64,
        rate: Option<Window>,
    ) -> Result<Claim>;
    /// Pauses (`true`) or resumes definition `name`; false if it already was.
    async fn set_paused(&self, name: &str, paused: bool) -> Result<bool>;
    /// Extends the attempt's lease (and timeout) from now.
    async fn heartbeat(&self, claim: AttemptClaim) -> Result<bool>;
    /// Stores the attempt's latest progress.
    async fn progress(&self, claim: AttemptClaim, update: ProgressUpdate) -> Result<bool>;
    /// Whether the attempt still owns its job, and the memoized result of `step`, if any.
    async fn step_result(&self, claim: AttemptClaim, step: &str)
    -> Result<(bool, Option<Vec<u8>>)>;
    /// Memoizes the result of `step`.
    async fn record_step(&self, claim: AttemptClaim, step: String, value: Vec<u8>) -> Result<bool>;
    /// Completes the attempt's job with `output` (cancelled instead if a cancel came first).
    async fn complete(
        &self,
        claim: AttemptClaim,
        output: Vec<u8>,
        cancel_requested: bool,
    ) -> Result<bool>;
    /// Whether [`complete_then_claim`](Self::complete_then_claim) starts the next job in the
    /// write that completes one. Where it does not, a worker frees its slot before the end is
    /// written, for whichever claim comes next.
    fn claims_on_complete(&self) -> bool {
        false
    }
    /// Completes the attempt's job as [`complete`](Self::complete) does and, when it did,
    /// starts the next ready job of definition `next` (not paused, and without a start limit:
    /// the caller checks) in the same transaction, for the worker slot the attempt frees. A
    /// backend that cannot do both at once completes only and starts nothing.
    async fn complete_then_claim(
        &self,
        claim: AttemptClaim,
        output: Vec<u8>,
        cancel_requested: bool,
        _next: Arc<str>,
    ) -> Result<(bool, Option<Claimed>)> {
        let done = self.complete(claim, output, cancel_requested).await?;
        Ok((done, None))
    }
    /// Settles a failed attempt: a retry after the backoff, or the terminal state.
    async fn fail(&self, claim: AttemptClaim, failure: JobFailure, retryable: bool)
    -> Result<bool>;
    /// Hands the attempt's job back to the queue without charging the attempt.
    async fn release(&self, claim: AttemptClaim) -> Result<bool>;
    /// Hands back every listed attempt `(job, attempt)` of `epoch` in one write; how many.
    async fn release_all(&self, attempts: Vec<(u64, u32)>, epoch: u64) -> Result<usize>;
    /// Cancels job `id`.
    async fn cancel(&self, id: u64, reason: String) -> Result<CancelOutcome>;
    /// Queues a failed or timed-out job again with a fresh budget.
    async fn retry(&self, id: u64) -> Result<()>;
    /// Retries failed and timed-out jobs of `name` (every name for `None`), looking at up to
    /// `limit` after `cursor`; how many it retried and where to go on.
    async fn retry_failed_batch(
        &self,
        name: Option<String>,
        cursor: Option<RetryCursor>,
        limit: usize,
    ) -> Result<(usize, Option<RetryCursor>)>;
    /// Cancels queued jobs of `name` with `reason`, looking at up to `limit` after `cursor`;
    /// how many it cancelled and where to go on.
    async fn cancel_queued_batch(
        &self,
        name: String,
        reason: String,
        cursor: Option<QueuedCursor>,
        limit: usize,
    ) -> Result<(usize, Option<QueuedCursor>)>;
    /// Deletes failed and timed-out jobs of `name` (every name for `None`) that finished
    /// before `before_ms`, looking at up to `limit` after `cursor`; how many it deleted and
    /// where to go on.
    async fn delete_failed_batch(
        &self,
        name: Option<String>,
        before_ms: u64,
        cursor: Option<RetryCursor>,
        limit: usize,
    ) -> Result<(usize, Option<RetryCursor>)>;
    /// Deletes a finished job with everything that belongs to it.
    async fn delete(&self, id: u64) -> Result<()>;
    /// The job as stored; its input too when `with_input`.
    async fn get(&self, id: u64, with_input: bool) -> Result<Option<JobInfo>>;
    /// One page of the jobs that match `query`.
    async fn list(&self, query: JobQuery) -> Result<JobPage>;
    /// Up to `limit` events of job `id` from position `from` on.
    async fn events(&self, id: u64, from: u32, limit: usize) -> Result<Vec<JobEvent>>;
    /// How many jobs of each definition are in each state, by name.
    async fn counts(&self) -> Result<Vec<JobCounts>>;
    /// The counters and gauges.
    async fn metrics(&self) -> Result<JobMetrics>;
    /// One pass of timed work (delays, leases, timeouts, retention); the next instant with work.
    async fn sweep(&self) -> Result<Option<u64>>;
}
