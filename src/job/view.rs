//! [`Jobs`](crate::Jobs): every job of the engine, whatever its definition.

use std::sync::Arc;

use redb::ReadableTable;

use super::core::JobCore;
use super::events::JobEvents;
use super::info::{CancelOutcome, JobInfo, JobState, info};
use super::metrics::JobMetrics;
use super::ops;
use super::reads::{load_job_with_input, read_job, with_input};
use super::record::{JobStateV1, StoredJob};
use super::tables::{JOB_DELAYED, JOB_FINISHED, JOB_LEASES, JOB_READY, JOBS};
use crate::error::Result;
use crate::store::codec::decode;

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

    /// The job as stored. Errors: [`Error::UnknownJob`](crate::Error::UnknownJob).
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
    /// Errors: [`Error::UnknownJob`](crate::Error::UnknownJob); [`Error::InvalidArgument`](crate::Error::InvalidArgument) for a job in another state.
    pub async fn retry(&self, id: u64) -> Result<()> {
        self.core
            .write(move |ctx, fx| ops::admin::retry(ctx, id, fx))
            .await
    }

    /// Deletes a finished job with its events, steps and idempotency key.
    ///
    /// Errors: [`Error::UnknownJob`](crate::Error::UnknownJob); [`Error::InvalidArgument`](crate::Error::InvalidArgument) for a queued or running job.
    pub async fn delete(&self, id: u64) -> Result<()> {
        self.core
            .write(move |ctx, _| ops::admin::delete(ctx, id))
            .await
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
    pub fn metrics(&self) -> Result<JobMetrics> {
        self.core.metrics()
    }
}
