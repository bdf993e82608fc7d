//! Batches: jobs grouped so that callback jobs run once every one of them has ended
//! ([`Engine::batch`](crate::Engine::batch)).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::core::JobCore;
use super::handle::JobHandle;
use super::info::JobState;
use super::ops;
use super::record::JobTemplateV1;
use super::redb::RedbJobs;
use super::tables::{JOB_BATCH_MEMBERS, JOB_BATCHES, JOBS};
use crate::error::{Error, Result};
use crate::store::codec::decode;

/// Members cancelled per transaction by [`Batch::cancel`].
const CANCEL_BATCH: usize = 1_000;

/// What a batch's callback job gets as its input: how its members ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BatchOutcome {
    /// The batch id.
    pub batch: u64,
    /// Its members.
    pub total: u64,
    /// Members that completed.
    pub completed: u64,
    /// Members that failed for good.
    pub failed: u64,
    /// Members cancelled.
    pub cancelled: u64,
    /// Members timed out for good.
    pub timed_out: u64,
}

/// A batch as stored, for inspection: its members by state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BatchInfo {
    /// The batch id.
    pub id: u64,
    /// Sealed: no more members join, and the callbacks fire once all have ended.
    pub sealed: bool,
    /// Members.
    pub total: u64,
    /// Members that have ended, however: the batch's progress is `done` of `total`.
    pub done: u64,
    /// Members waiting for jobs they run after.
    pub waiting: u64,
    /// Members queued.
    pub queued: u64,
    /// Members running.
    pub running: u64,
    /// Members completed.
    pub completed: u64,
    /// Members failed.
    pub failed: u64,
    /// Members cancelled.
    pub cancelled: u64,
    /// Members timed out.
    pub timed_out: u64,
    /// When it was opened (ms since the epoch).
    pub created_at_ms: u64,
    /// When its last member ended after the seal and the callbacks were submitted.
    pub finished_at_ms: Option<u64>,
    /// The callback jobs submitted then: the `on_complete` one, then the `on_success` one if
    /// every member completed.
    pub callbacks: Vec<u64>,
}

/// Builds a batch: see [`Engine::batch`](crate::Engine::batch).
#[must_use = "a batch is stored only when opened"]
pub struct BatchBuilder {
    core: Arc<JobCore>,
    on_complete: Option<Result<JobTemplateV1>>,
    on_success: Option<Result<JobTemplateV1>>,
}

impl BatchBuilder {
    pub(crate) fn new(core: Arc<JobCore>) -> Self {
        BatchBuilder {
            core,
            on_complete: None,
            on_success: None,
        }
    }

    /// Submits a job of `handle`'s definition once every member has ended, however, with the
    /// members' [`BatchOutcome`] as its input.
    pub fn on_complete<O>(mut self, handle: &JobHandle<BatchOutcome, O>) -> Self
    where
        O: Serialize + serde::de::DeserializeOwned + Send + 'static,
    {
        self.on_complete = Some(callback(handle));
        self
    }

    /// Submits a job of `handle`'s definition once every member has ended, only if every one
    /// completed; with the members' [`BatchOutcome`] as its input.
    pub fn on_success<O>(mut self, handle: &JobHandle<BatchOutcome, O>) -> Self
    where
        O: Serialize + serde::de::DeserializeOwned + Send + 'static,
    {
        self.on_success = Some(callback(handle));
        self
    }

    /// Stores the batch, open: jobs join it with [`Submit::batch`](crate::Submit::batch) until
    /// [`Batch::seal`].
    pub async fn open(self) -> Result<Batch> {
        let on_complete = self.on_complete.transpose()?;
        let on_success = self.on_success.transpose()?;
        let id = redb(&self.core)?
            .write(move |ctx, _| ops::batch::open(ctx, on_complete.clone(), on_success.clone()))
            .await?;
        Ok(Batch {
            core: self.core,
            id,
        })
    }
}

fn callback<O>(handle: &JobHandle<BatchOutcome, O>) -> Result<JobTemplateV1>
where
    O: Serialize + serde::de::DeserializeOwned + Send + 'static,
{
    let new = handle.submit(BatchOutcome::default()).prepare()?;
    Ok(JobTemplateV1::from_new_job(new))
}

/// The file's job storage, which batches need.
fn redb(core: &JobCore) -> Result<&RedbJobs> {
    core.redb().ok_or(Error::Unsupported {
        what: "batches",
        backend: "PostgreSQL",
    })
}

/// A batch of jobs. Cheap to clone.
///
/// ```no_run
/// # use jobfile::{BatchOutcome, Engine, JobCtx, JobError, JobSpec};
/// # async fn demo(engine: Engine) -> jobfile::Result<()> {
/// let import = engine.job::<u32, ()>(JobSpec::new("import-row"))?;
/// let summary = engine.register(JobSpec::new("import-summary"), |_: JobCtx, o: BatchOutcome| async move {
///     println!("{} of {} rows imported", o.completed, o.total);
///     Ok::<_, JobError>(())
/// })?;
/// let batch = engine.batch().on_complete(&summary).open().await?;
/// for row in 0..10_000 {
///     import.submit(row).batch(&batch).await?;
/// }
/// batch.seal().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Batch {
    core: Arc<JobCore>,
    id: u64,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch").field("id", &self.id).finish()
    }
}

impl Batch {
    pub(crate) fn new(core: Arc<JobCore>, id: u64) -> Self {
        Batch { core, id }
    }

    /// The batch id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Seals the batch: no more jobs join it, and its callbacks are submitted once every
    /// member has ended (at once, in the seal's own transaction, if all have). Until it is
    /// sealed, no callback fires, even when every member so far has ended. False if it was
    /// sealed before.
    pub async fn seal(&self) -> Result<bool> {
        let id = self.id;
        redb(&self.core)?
            .write(move |ctx, fx| ops::batch::seal(ctx, id, fx))
            .await
    }

    /// The batch with its members counted by state (a read of each member).
    pub async fn info(&self) -> Result<BatchInfo> {
        let id = self.id;
        redb(&self.core)?.store().read(|rtx| {
            let Some(bytes) = rtx.open_table(JOB_BATCHES)?.get(id)? else {
                return Err(ops::batch::unknown(id));
            };
            let crate::job::record::StoredBatch::V1(batch) = decode("job_batches", bytes.value())?;
            let mut info = BatchInfo {
                id,
                sealed: batch.sealed,
                total: batch.total,
                done: batch.done(),
                created_at_ms: batch.created_at,
                finished_at_ms: batch.finished_at,
                callbacks: batch.callbacks.clone(),
                ..BatchInfo::default()
            };
            let jobs = rtx.open_table(JOBS)?;
            let members = rtx.open_table(JOB_BATCH_MEMBERS)?;
            let (ids, _) = ops::batch::members(&members, id, None, usize::MAX)?;
            for job in ids {
                let Some(job) = super::redb::find_job(&jobs, job)? else {
                    continue;
                };
                let slot = match JobState::of(&job.state) {
                    JobState::Waiting => &mut info.waiting,
                    JobState::Queued => &mut info.queued,
                    JobState::Running => &mut info.running,
                    JobState::Completed => &mut info.completed,
                    JobState::Failed => &mut info.failed,
                    JobState::Cancelled => &mut info.cancelled,
                    JobState::TimedOut => &mut info.timed_out,
                };
                *slot += 1;
            }
            Ok(info)
        })
    }

    /// Cancels every member that has not ended, `CANCEL_BATCH` (1,000) per transaction, with
    /// `reason`; how many it cancelled. The batch then finishes as its last running member
    /// ends (its `on_complete` callback fires, its `on_success` one does not).
    pub async fn cancel(&self, reason: &str) -> Result<u64> {
        let backend = redb(&self.core)?;
        let (id, reason) = (self.id, reason.to_string());
        let mut after = None;
        let mut total = 0u64;
        loop {
            let reason = reason.clone();
            let (cancelled, next) = backend
                .write(move |ctx, fx| {
                    ops::batch::cancel_page(ctx, id, &reason, after, CANCEL_BATCH, fx)
                })
                .await?;
            total += cancelled as u64;
            match next {
                Some(next) => after = Some(next),
                None => return Ok(total),
            }
        }
    }
}
