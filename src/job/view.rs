//! [`Jobs`](crate::Jobs): every job of the engine, whatever its definition.

use std::sync::Arc;

use super::core::JobCore;
use super::durations::AttemptDurations;
use super::events::JobEvents;
use super::info::{CancelOutcome, JobCounts, JobInfo};
use super::list::ListJobs;
use super::metrics::JobMetrics;
use super::storage::JobStorage;
use crate::error::Result;

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

    /// The job as stored; `None` if it was never submitted or was pruned after its retention.
    pub async fn get(&self, id: u64) -> Result<Option<JobInfo>> {
        self.core.backend.get(id, true).await
    }

    /// A page of jobs, filtered by definition name, state and meta; newest first. See
    /// [`ListJobs`].
    pub fn list(&self) -> ListJobs<'_> {
        ListJobs::new(&self.core)
    }

    /// How many jobs of each definition the file holds in each state, and whether it is
    /// paused, by definition name (definitions with no jobs left are not listed unless
    /// paused). Read from gauges kept with the jobs,
    /// not by counting: as cheap with a million jobs as with ten.
    pub async fn counts(&self) -> Result<Vec<JobCounts>> {
        self.core.backend.counts().await
    }

    /// Every job of the definition `name` the engine holds (retained finished ones too),
    /// oldest first, with its input: what a test asserts was submitted. Read in pages of
    /// 1,000. See [`JobHandle::submitted`](crate::JobHandle::submitted) for the inputs typed.
    pub async fn submitted(&self, name: &str) -> Result<Vec<JobInfo>> {
        all_of(&self.core, name).await
    }

    /// Pauses the definition `name`: no attempt of it starts (claimed by a worker or handed
    /// to one by a submit) until [`resume`](Self::resume); running attempts finish, and
    /// submits are stored and queued as usual. Durable: still paused after a restart, and on
    /// PostgreSQL for every node. Shown by [`counts`](Self::counts). Returns false if it was
    /// paused already.
    ///
    /// Errors: [`Error::InvalidArgument`](crate::Error::InvalidArgument) for a bad name.
    pub async fn pause(&self, name: &str) -> Result<bool> {
        super::spec::validate_name(name)?;
        self.core.backend.set_paused(name, true).await
    }

    /// Resumes the definition `name`: its waiting workers claim at once. Returns false if it
    /// was not paused.
    ///
    /// Errors: [`Error::InvalidArgument`](crate::Error::InvalidArgument) for a bad name.
    pub async fn resume(&self, name: &str) -> Result<bool> {
        super::spec::validate_name(name)?;
        self.core.backend.set_paused(name, false).await
    }

    /// How long attempts ran since this engine opened, by definition and outcome, as
    /// fixed-bucket histograms (kept in memory, not in the file).
    pub fn attempt_durations(&self) -> Vec<AttemptDurations> {
        self.core.reporter.durations.snapshot()
    }

    /// Queues a failed or timed-out job again with a fresh attempt budget (and crash budget).
    ///
    /// Errors: [`Error::UnknownJob`](crate::Error::UnknownJob); [`Error::InvalidArgument`](crate::Error::InvalidArgument) for a job in another state.
    pub async fn retry(&self, id: u64) -> Result<()> {
        self.core.backend.retry(id).await
    }

    /// Retries every failed and timed-out job of the definition `name` (of every definition
    /// for `None`), as [`retry`](Self::retry) does one; returns how many. Works through the
    /// failed jobs in batches of 1,000, one transaction each, so it is safe beside running
    /// workers; a job that fails meanwhile may be retried too.
    pub async fn retry_all_failed(&self, name: Option<&str>) -> Result<u64> {
        let name = name.map(str::to_string);
        in_batches(|cursor| {
            self.core
                .backend
                .retry_failed_batch(name.clone(), cursor, BULK_BATCH)
        })
        .await
    }

    /// Cancels every queued job (ready, delayed or waiting for a retry) of the definition
    /// `name` with `reason`; returns how many. In batches of 1,000, one transaction each, so
    /// it is safe beside running workers: a job a worker starts meanwhile runs (cancel it by
    /// id), and one submitted meanwhile may be cancelled too.
    ///
    /// Errors: [`Error::InvalidArgument`](crate::Error::InvalidArgument) for a bad name.
    pub async fn cancel_all_queued(&self, name: &str, reason: &str) -> Result<u64> {
        super::spec::validate_name(name)?;
        in_batches(|cursor| {
            self.core.backend.cancel_queued_batch(
                name.to_string(),
                reason.to_string(),
                cursor,
                BULK_BATCH,
            )
        })
        .await
    }

    /// Deletes every failed and timed-out job of the definition `name` (of every definition
    /// for `None`) that finished before `before_ms` (ms since the epoch), with its events,
    /// steps and key; returns how many. In batches of 1,000, one transaction each.
    pub async fn delete_failed_before(&self, name: Option<&str>, before_ms: u64) -> Result<u64> {
        let name = name.map(str::to_string);
        in_batches(|cursor| {
            self.core
                .backend
                .delete_failed_batch(name.clone(), before_ms, cursor, BULK_BATCH)
        })
        .await
    }

    /// Deletes a finished job with its events, steps and idempotency key.
    ///
    /// Errors: [`Error::UnknownJob`](crate::Error::UnknownJob); [`Error::InvalidArgument`](crate::Error::InvalidArgument) for a queued or running job.
    pub async fn delete(&self, id: u64) -> Result<()> {
        self.core.backend.delete(id).await
    }

    /// Cancels any job by id; see [`JobHandle::cancel`](crate::JobHandle::cancel).
    pub async fn cancel(&self, id: u64, reason: &str) -> Result<CancelOutcome> {
        self.core.cancel(id, reason).await
    }

    /// The job's event stream.
    pub fn events(&self, id: u64) -> JobEvents {
        JobEvents::new(self.core.clone(), id)
    }

    /// Counters since open, and the jobs queued and running now.
    pub async fn metrics(&self) -> Result<JobMetrics> {
        self.core.backend.metrics().await
    }
}

/// Items a bulk action acts on per transaction.
const BULK_BATCH: usize = 1_000;

/// Runs `batch` from the start, then from each cursor it returns, until it returns none;
/// the total it acted on.
async fn in_batches<C, F, Fut>(mut batch: F) -> Result<u64>
where
    F: FnMut(Option<C>) -> Fut,
    Fut: std::future::Future<Output = Result<(usize, Option<C>)>>,
{
    let (mut total, mut cursor) = (0u64, None);
    loop {
        let (acted, next) = batch(cursor).await?;
        total += acted as u64;
        match next {
            Some(next) => cursor = Some(next),
            None => return Ok(total),
        }
    }
}

/// Every job of `name`, oldest first, in pages of 1,000.
pub(crate) async fn all_of(core: &JobCore, name: &str) -> Result<Vec<JobInfo>> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = core
            .backend
            .list(super::storage::JobQuery {
                name: Some(name.to_string()),
                state: None,
                meta: None,
                after,
                oldest_first: true,
                limit: BULK_BATCH,
                scan_limit: None,
            })
            .await?;
        all.extend(page.jobs);
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(all),
        }
    }
}
