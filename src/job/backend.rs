//! The storage backends jobs can use, dispatched by enum: public types stay non-generic.

use std::future::Future;
use std::sync::Arc;

use super::effects::Claimed;
use super::error::JobFailure;
use super::info::JobEvent;
use super::info::{CancelOutcome, JobCounts, JobInfo, JobPage, Submitted};
use super::metrics::JobMetrics;
use super::ops::admin::{QueuedCursor, RetryCursor};
use super::ops::submit::NewJob;
use super::redb::RedbJobs;
use super::storage::{AttemptClaim, Claim, JobQuery, JobStorage, ProgressUpdate};
use crate::error::{Error, Result};
use crate::ratelimit::window::Window;

/// The storage an engine's jobs use.
#[derive(Debug)]
pub(crate) enum JobBackend {
    /// The embedded file.
    Redb(RedbJobs),
    /// A PostgreSQL schema shared by many nodes.
    #[cfg(feature = "postgres")]
    Postgres(Box<super::postgres::PgJobs>),
}

impl JobBackend {
    /// Resolves with the cause once the storage can take no more writes, so a wait that only
    /// a write could end stops waiting.
    pub(crate) fn until_failed(&self) -> impl Future<Output = Error> + Send + 'static {
        let poisoned = match self {
            JobBackend::Redb(b) => Some(b.store().until_poisoned()),
            // A server that fails answers each write with an error: nothing to wait for here.
            #[cfg(feature = "postgres")]
            JobBackend::Postgres(_) => None,
        };
        async move {
            match poisoned {
                Some(poisoned) => poisoned.await,
                None => std::future::pending().await,
            }
        }
    }
}

impl JobStorage for JobBackend {
    async fn submit(&self, job: NewJob) -> Result<Submitted> {
        match self {
            JobBackend::Redb(b) => b.submit(job).await,
            #[cfg(feature = "postgres")]
            JobBackend::Postgres(b) => b.submit(job).await,
        }
    }

    async fn submit_many(&self, jobs: Vec<NewJob>) -> Result<Vec<Submitted>> {
        match self {
            JobBackend::Redb(b) => b.submit_many(jobs).await,
            #[cfg(feature = "postgres")]
            JobBackend::Postgres(b) => b.submit_many(jobs).await,
        }
    }

    async fn has_ready(&self, name: &str) -> Result<bool> {
        match self {
            JobBackend::Redb(b) => b.has_ready(name).await,
            #[cfg(feature = "postgres")]
            JobBackend::Postgres(b) => b.has_ready(name).await,
        }
    }

    async fn claim(
        &self,
        name: &str,
        max: usize,
        epoch: u64,
        rate: Option<Window>,
    ) -> Result<Claim> {
        match self {
            JobBackend::Redb(b) => b.claim(name, max, epoch, rate).await,
            #[cfg(feature = "postgres")]
            JobBackend::Postgres(b) => b.claim(name, max, epoch, rate).await,
        }
    }

    async fn set_paused(&self, name: &str, paused: bool) -> Result<bool> {
        match self {
            JobBackend::Redb(b) => b.set_paused(name, paused).await,
            #[cfg(feature = "postgres")]
            JobBackend::Postgres(b) => b.set_paused(name, paused).await,
        }
    }

    async fn heartbeat(&self, claim: AttemptClaim) -> Result<bool> {
        match self {
            JobBackend::Redb(b) => b.heartbeat(claim).await,
            #[cfg(feature = "postgres")]
            JobBackend::Postgres(b) => b.heartbeat(claim).await,
        }
    }

    async fn progress(&self, claim: AttemptClaim, update: ProgressUpdate) -> Result<bool> {
        match self {
            JobBackend::Redb(b) => b.progress(claim, update).await,
            #[cfg(feature = "postgres")]
            JobBackend::Postgres(b) => b.progress(claim, update).await,
        }
    }

    async fn step_result(
        &self,
        claim: AttemptClaim,
        step: &str,
    ) -> Result<(bool, Option<Vec<u8>>)> {
        match self {
            JobBackend::Redb(b) => b.step_result(claim, step).await,
            #[cfg(feature = "postgres")]
            JobBackend::Postgres(b) => b.step_result(claim, step).await,
        }
    }

    async fn record_step(&self, claim: AttemptClaim, step: String, value: Vec<u8>) -> Result<bool> {
        match self {
            JobBackend::Redb(b) => b.record_step(claim, step, value).await,
            #[cfg(feature = "postgres")]
            JobBackend::Postgres(b) => b.record_step(claim, step, value).await,
        }
    }

    async fn complete(
        &self,
        claim: AttemptClaim,
        output: Vec<u8>,
        cancel_requested: bool,
    ) -> Result<bool> {
        match self {
            JobBackend::Redb(b) => b.complete(claim, output, cancel_requested).await,
            #[cfg(feature = "postgres")]
            JobBackend::Postgres(b) => b.complete(claim, output, cancel_requested).await,
        }
    }

    fn claims_on_complete(&self) -> bool {
        match self {
            JobBackend::Redb(b) => b.claims_on_complete(),
            #[cfg(feature = "postgres")]
            JobBackend::Postgres(b) => b.claims_on_complete(),
        }
    }

    async fn complete_then_claim(
        &self,
        claim: AttemptClaim,
        output: Vec<u8>,
        cancel_requested: bool,
        next: Arc<str>,
    ) -> Result<(bool, Option<Claimed>)> {
        match self {
            JobBackend::Redb(b) => {
                b.complete_then_claim(claim, output, cancel_requested, next)
                    .await
            }
            #[cfg(feature = "postgres")]
            JobBackend::Postgres(b) => {
                b.complete_then_claim(claim, output, cancel_requested, next)
                    .await
            }
        }
    }

    async fn fail(
        &self,
        claim: AttemptClaim,
        failure: JobFailure,
        retryable: bool,
    ) -> Result<bool> {
        match self {
            JobBackend::Redb(b) => b.fail(claim, failure, retryable).await,
            #[cfg(feature = "postgres")]
            JobBackend::Postgres(b) => b.fail(claim, failure, retryable).await,
        }
    }

    async fn release(&self, claim: AttemptClaim) -> Result<bool> {
        match self {
            JobBackend::Redb(b) => b.release(claim).await,
            #[cfg(feature = "postgres")]
            JobBackend::Postgres(b) => b.release(claim).await,
        }
    }

    async fn release_all(&self, attempts: Vec<(u64, u32)>, epoch: u64) -> Result<usize> {
        match self {
            JobBackend::Redb(b) => b.release_all(attempts, epoch).await,
            #[cfg(feature = "postgres")]
            JobBackend::Postgres(b) => b.release_all(attempts, epoch).await,
        }
    }

    async fn cancel(&self, id: u64, reason: String) -> Result<CancelOutcome> {
        match self {
            JobBackend::Redb(b) => b.cancel(id, reason).await,
            #[cfg(feature = "postgres")]
            JobBackend::Postgres(b) => b.cancel(id, reason).await,
        }
    }

    async fn retry(&self, id: u64) -> Result<()> {
        match self {
            JobBackend::Redb(b) => b.retry(id).await,
            #[cfg(feature = "postgres")]
            JobBackend::Postgres(b) => b.retry(id).await,
        }
    }

    async fn retry_failed_batch(
        &self,
        name: Option<String>,
        cursor: Option<RetryCursor>,
        limit: usize,
    ) -> Result<(usize, Option<RetryCursor>)> {
        match self {
            JobBackend::Redb(b) => b.retry_failed_batch(name, cursor, limit).await,
            #[cfg(feature = "postgres")]
            JobBackend::Postgres(b) => b.retry_failed_batch(name, cursor, limit).await,
        }
    }

    async fn cancel_queued_batch(
        &self,
        name: String,
        reason: String,
        cursor: Option<QueuedCursor>,
        limit: usize,
    ) -> Result<(usize, Option<QueuedCursor>)> {
        match self {
            JobBackend::Redb(b) => b.cancel_queued_batch(name, reason, cursor, limit).await,
            #[cfg(feature = "postgres")]
            JobBackend::Postgres(b) => b.cancel_queued_batch(name, reason, cursor, limit).await,
        }
    }

    async fn delete_failed_batch(
        &self,
        name: Option<String>,
        before_ms: u64,
        cursor: Option<RetryCursor>,
        limit: usize,
    ) -> Result<(usize, Option<RetryCursor>)> {
        match self {
            JobBackend::Redb(b) => b.delete_failed_batch(name, before_ms, cursor, limit).await,
            #[cfg(feature = "postgres")]
            JobBackend::Postgres(b) => b.delete_failed_batch(name, before_ms, cursor, limit).await,
        }
    }

    async fn delete(&self, id: u64) -> Result<()> {
        match self {
            JobBackend::Redb(b) => b.delete(id).await,
            #[cfg(feature = "postgres")]
            JobBackend::Postgres(b) => b.delete(id).await,
        }
    }

    async fn get(&self, id: u64, with_input: bool) -> Result<Option<JobInfo>> {
        match self {
            JobBackend::Redb(b) => b.get(id, with_input).await,
            #[cfg(feature = "postgres")]
            JobBackend::Postgres(b) => b.get(id, with_input).await,
        }
    }

    async fn list(&self, query: JobQuery) -> Result<JobPage> {
        match self {
            JobBackend::Redb(b) => b.list(query).await,
            #[cfg(feature = "postgres")]
            JobBackend::Postgres(b) => b.list(query).await,
        }
    }

    async fn events(&self, id: u64, from: u32, limit: usize) -> Result<Vec<JobEvent>> {
        match self {
            JobBackend::Redb(b) => b.events(id, from, limit).await,
            #[cfg(feature = "postgres")]
            JobBackend::Postgres(b) => b.events(id, from, limit).await,
        }
    }

    async fn counts(&self) -> Result<Vec<JobCounts>> {
        match self {
            JobBackend::Redb(b) => b.counts().await,
            #[cfg(feature = "postgres")]
            JobBackend::Postgres(b) => b.counts().await,
        }
    }

    async fn metrics(&self) -> Result<JobMetrics> {
        match self {
            JobBackend::Redb(b) => b.metrics().await,
            #[cfg(feature = "postgres")]
            JobBackend::Postgres(b) => b.metrics().await,
        }
    }

    async fn sweep(&self) -> Result<Option<u64>> {
        match self {
            JobBackend::Redb(b) => b.sweep().await,
            #[cfg(feature = "postgres")]
            JobBackend::Postgres(b) => b.sweep().await,
        }
    }
}
