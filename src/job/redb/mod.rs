//! Jobs over the embedded file: each operation is an op of [`ops`](super::ops) sent to the
//! writer (batched with others into one commit), each read one read transaction. What an op
//! collects in its [`Effects`] (wake workers, signal attempts, notify watchers, report
//! metrics, hand started attempts to workers) happens after the commit.

use std::sync::{Arc, Weak};

use super::effects::{Claimed, Effects, Handoff, JobHost};
use super::error::JobFailure;
use super::info::JobEvent;
use super::info::{CancelOutcome, JobCounts, JobInfo, JobPage, JobState, Submitted, info};
use super::metrics::JobMetrics;
use super::ops;
use super::ops::admin::{QueuedCursor, RetryCursor};
use super::ops::cancel::Cancelled;
use super::ops::submit::NewJob;
use super::record::{FailureV1, JobV1, StoredEvent, StoredJob};
use super::storage::{AttemptClaim, Claim, JobQuery, JobStorage, ProgressUpdate};
use super::tables::{JOB_EVENTS, JOB_FLOW, JOB_INPUTS, JOB_READY, JOB_STEPS, JOBS};
use super::transition::{QUEUED_GAUGE, RUNNING_GAUGE, TALLY_PREFIX, owns};
use crate::error::{Error, Result};
use crate::ratelimit::window::Window;
use crate::store::codec::decode;
use crate::store::{Store, TxCtx};

mod list;

/// Jobs handled per kind of timed work in one timer pass.
const SWEEP_LIMIT: usize = 512;

/// Jobs' storage in the file.
#[derive(Debug)]
pub(crate) struct RedbJobs {
    store: Arc<Store>,
    /// The engine's job state, for the effects of a commit. Weak: it owns this backend.
    core: Weak<dyn JobHost>,
}

impl RedbJobs {
    pub(crate) fn new(store: Arc<Store>, core: Weak<dyn JobHost>) -> Self {
        RedbJobs { store, core }
    }

    /// The store, for the primitives that write jobs in their own ops (the scheduler).
    pub(crate) fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Sends `f` to the writer; what it collects in its [`Effects`] happens after the commit.
    /// The ops of one batch share one `Effects`, carried out by one hook: on the thread that
    /// answers a batch, a hook and its state per op cost more than the ops' own effects.
    pub(crate) async fn write<T, F>(&self, mut f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnMut(&mut TxCtx<'_>, &mut Effects) -> Result<T> + Send + 'static,
    {
        let core = self.core.clone();
        let owner = Weak::as_ptr(&self.core).cast::<()>() as usize;
        self.store
            .write(move |ctx| {
                let done = || {
                    let core = core.clone();
                    move |fx: Effects| {
                        if let Some(core) = core.upgrade() {
                            core.effects_done(fx);
                        }
                    }
                };
                ctx.gather(owner, done, |ctx, fx| f(ctx, fx))
            })
            .await
    }

    /// At open, in the transaction that starts leadership `epoch`: puts back the jobs the
    /// previous process left running, and does the timed work that came due meanwhile.
    pub(crate) fn recover(&self, ctx: &mut TxCtx<'_>, epoch: u64) -> Result<()> {
        let mut fx = Effects::default();
        let (requeued, failed) = ops::recover::recover(ctx, &mut fx)?;
        if requeued + failed > 0 {
            tracing::info!(
                epoch,
                requeued,
                crash_looped = failed,
                "recovered jobs left running by the previous process"
            );
        }
        if let Some(at) = ops::sweep::sweep(ctx, usize::MAX, &mut fx)? {
            fx.deadline(at);
        }
        let core = self.core.clone();
        ctx.after_commit(move || {
            if let Some(core) = core.upgrade() {
                core.effects_done(fx);
            }
        });
        Ok(())
    }
}

impl JobStorage for RedbJobs {
    async fn submit(&self, new: NewJob) -> Result<Submitted> {
        let core = self.core.clone();
        self.write(move |ctx, fx| {
            // An idle worker here takes the job in this same commit: no claim round trip.
            let core = core.upgrade().ok_or(Error::Closed)?;
            let slot = core.free_slot(&new.name);
            let start_in = slot.is_some().then_some(core.epoch());
            let mut done = ops::submit::submit(ctx, &new, start_in, fx)?;
            if let (Some(job), Some(slot)) = (done.started.take(), slot) {
                fx.handoffs.push(Handoff {
                    name: new.name.clone(),
                    job,
                    slot,
                });
            }
            Ok(Submitted {
                id: done.id,
                deduplicated: done.deduplicated,
            })
        })
        .await
    }

    async fn submit_many(&self, jobs: Vec<NewJob>) -> Result<Vec<Submitted>> {
        self.write(move |ctx, fx| {
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

    async fn has_ready(&self, name: &str) -> Result<bool> {
        self.store
            .read(|rtx| crate::index::has_ready(&rtx.open_table(JOB_READY)?, name))
    }

    async fn claim(
        &self,
        name: &str,
        max: usize,
        epoch: u64,
        rate: Option<Window>,
    ) -> Result<Claim> {
        let name = name.to_string();
        self.write(move |ctx, fx| ops::claim::claim(ctx, &name, max, epoch, rate, fx))
            .await
    }

    async fn set_paused(&self, name: &str, paused: bool) -> Result<bool> {
        let name = name.to_string();
        self.write(move |ctx, fx| ops::flow::set_paused(ctx, &name, paused, fx))
            .await
    }

    async fn heartbeat(&self, c: AttemptClaim) -> Result<bool> {
        self.write(move |ctx, fx| ops::step::heartbeat(ctx, c.id, c.attempt, c.epoch, fx))
            .await
    }

    async fn progress(&self, c: AttemptClaim, update: ProgressUpdate) -> Result<bool> {
        self.write(move |ctx, fx| {
            ops::step::record_progress(ctx, c.id, c.attempt, c.epoch, &update, fx)
        })
        .await
    }

    async fn step_result(&self, c: AttemptClaim, step: &str) -> Result<(bool, Option<Vec<u8>>)> {
        self.store.read(|rtx| {
            let job = read_job(&rtx.open_table(JOBS)?, c.id)?;
            let steps = rtx.open_table(JOB_STEPS)?;
            let stored = steps.get((c.id, step))?.map(|v| v.value().to_vec());
            Ok((owns(&job, c.attempt, c.epoch), stored))
        })
    }

    async fn record_step(&self, c: AttemptClaim, step: String, value: Vec<u8>) -> Result<bool> {
        self.write(move |ctx, fx| {
            ops::step::record_step(ctx, c.id, c.attempt, c.epoch, &step, &value, fx)
        })
        .await
    }

    async fn complete(
        &self,
        c: AttemptClaim,
        output: Vec<u8>,
        cancel_requested: bool,
    ) -> Result<bool> {
        self.write(move |ctx, fx| {
            ops::finish::complete(ctx, c.id, c.attempt, c.epoch, &output, cancel_requested, fx)
        })
        .await
    }

    fn claims_on_complete(&self) -> bool {
        true
    }

    async fn complete_then_claim(
        &self,
        c: AttemptClaim,
        output: Vec<u8>,
        cancel_requested: bool,
        next: Arc<str>,
    ) -> Result<(bool, Option<Claimed>)> {
        self.write(move |ctx, fx| {
            let done = ops::finish::complete(
                ctx,
                c.id,
                c.attempt,
                c.epoch,
                &output,
                cancel_requested,
                fx,
            )?;
            let started = match done {
                true => ops::claim::claim_next(ctx, &next, c.epoch, fx)?,
                false => None,
            };
            Ok((done, started))
        })
        .await
    }

    async fn fail(&self, c: AttemptClaim, failure: JobFailure, retryable: bool) -> Result<bool> {
        let failure = FailureV1 {
            code: failure.code,
            message: failure.message,
            attempt: c.attempt,
        };
        self.write(move |ctx, fx| {
            ops::finish::fail(ctx, c.id, c.epoch, failure.clone(), retryable, fx)
        })
        .await
    }

    async fn release(&self, c: AttemptClaim) -> Result<bool> {
        self.write(move |ctx, fx| ops::recover::release(ctx, c.id, c.attempt, c.epoch, fx))
            .await
    }

    async fn release_all(&self, attempts: Vec<(u64, u32)>, epoch: u64) -> Result<usize> {
        self.write(move |ctx, fx| ops::recover::release_all(ctx, &attempts, epoch, fx))
            .await
    }

    async fn cancel(&self, id: u64, reason: String) -> Result<CancelOutcome> {
        let found = self
            .write(move |ctx, fx| ops::cancel::cancel(ctx, id, &reason, fx))
            .await?;
        Ok(match found {
            Cancelled::Done => CancelOutcome::Cancelled,
            Cancelled::AlreadyFinished(code) => {
                CancelOutcome::AlreadyFinished(JobState::from_finished_code(code))
            }
        })
    }

    async fn retry(&self, id: u64) -> Result<()> {
        self.write(move |ctx, fx| ops::admin::retry(ctx, id, fx))
            .await
    }

    async fn retry_failed_batch(
        &self,
        name: Option<String>,
        cursor: Option<RetryCursor>,
        limit: usize,
    ) -> Result<(usize, Option<RetryCursor>)> {
        self.write(move |ctx, fx| {
            ops::admin::retry_failed_batch(ctx, name.as_deref(), cursor, limit, fx)
        })
        .await
    }

    async fn cancel_queued_batch(
        &self,
        name: String,
        reason: String,
        cursor: Option<QueuedCursor>,
        limit: usize,
    ) -> Result<(usize, Option<QueuedCursor>)> {
        self.write(move |ctx, fx| {
            ops::admin::cancel_queued_batch(ctx, &name, &reason, cursor, limit, fx)
        })
        .await
    }

    async fn delete_failed_batch(
        &self,
        name: Option<String>,
        before_ms: u64,
        cursor: Option<RetryCursor>,
        limit: usize,
    ) -> Result<(usize, Option<RetryCursor>)> {
        self.write(move |ctx, _| {
            ops::admin::delete_failed_batch(ctx, name.as_deref(), before_ms, cursor, limit)
        })
        .await
    }

    async fn delete(&self, id: u64) -> Result<()> {
        self.write(move |ctx, _| ops::admin::delete(ctx, id)).await
    }

    async fn get(&self, id: u64, with_input: bool) -> Result<Option<JobInfo>> {
        let job = self.store.read(|rtx| {
            let Some(job) = find_job(&rtx.open_table(JOBS)?, id)? else {
                return Ok(None);
            };
            if with_input {
                with_input_of(rtx, id, job).map(Some)
            } else {
                Ok(Some(job))
            }
        })?;
        Ok(job.map(|job| info(id, job)))
    }

    async fn list(&self, query: JobQuery) -> Result<JobPage> {
        // One read transaction for the index and the records: a snapshot, so a job removed or
        // moved on by a concurrent write is neither missing nor listed in the wrong state.
        self.store.read(|rtx| list::page(rtx, &query))
    }

    async fn events(&self, id: u64, from: u32, limit: usize) -> Result<Vec<JobEvent>> {
        self.store.read(|rtx| {
            let Some(bytes) = rtx.open_table(JOBS)?.get(id)? else {
                return Err(Error::UnknownJob { id });
            };
            let job = decode::<StoredJob>("jobs", bytes.value())?.into_job();
            let inline = job.inline_events.len();
            let mut out: Vec<JobEvent> = job
                .inline_events
                .into_iter()
                .zip(0u32..)
                .skip(from as usize)
                .take(limit)
                .map(|(e, seq)| JobEvent {
                    seq,
                    at_ms: e.at,
                    kind: e.kind.into(),
                })
                .collect();
            if out.len() == limit || job.next_event as usize <= inline {
                return Ok(out);
            }
            let first_row = from.max(u32::try_from(inline).unwrap_or(u32::MAX));
            let events = rtx.open_table(JOB_EVENTS)?;
            for entry in events
                .range((id, first_row)..=(id, u32::MAX))?
                .take(limit - out.len())
            {
                let (k, v) = entry?;
                let StoredEvent::V1(e) = decode("job_events", v.value())?;
                out.push(JobEvent {
                    seq: k.value().1,
                    at_ms: e.at,
                    kind: e.kind.into(),
                });
            }
            Ok(out)
        })
    }

    async fn counts(&self) -> Result<Vec<JobCounts>> {
        let (tallies, paused) = self.store.read(|rtx| {
            let tallies = crate::store::meta::read_prefixed(rtx, TALLY_PREFIX)?;
            let paused = ops::flow::paused_names(&rtx.open_table(JOB_FLOW)?)?;
            Ok((tallies, paused))
        })?;
        let mut by_name: std::collections::BTreeMap<String, JobCounts> = Default::default();
        for (key, n) in tallies {
            let Some((state, name)) = key.split_once(':') else {
                continue;
            };
            let Some(state) = JobState::from_name(state) else {
                continue;
            };
            if n > 0 {
                let counts = by_name
                    .entry(name.to_string())
                    .or_insert_with(|| JobCounts {
                        name: name.to_string(),
                        ..JobCounts::default()
                    });
                counts.add(state, n);
            }
        }
        for (name, _) in paused {
            by_name
                .entry(name.clone())
                .or_insert_with(|| JobCounts {
                    name,
                    ..JobCounts::default()
                })
                .paused = true;
        }
        Ok(by_name.into_values().collect())
    }

    async fn metrics(&self) -> Result<JobMetrics> {
        self.store.read(|rtx| {
            let get = crate::store::meta::read_counters(rtx)?;
            JobMetrics::read(get, RUNNING_GAUGE, QUEUED_GAUGE)
        })
    }

    async fn sweep(&self) -> Result<Option<u64>> {
        self.write(|ctx, fx| ops::sweep::sweep(ctx, SWEEP_LIMIT, fx))
            .await
    }
}

/// Puts an input stored apart into `job`.
pub(super) fn with_input_of(rtx: &redb::ReadTransaction, id: u64, mut job: JobV1) -> Result<JobV1> {
    if job.input_apart {
        job.input = crate::store::apart::read(&rtx.open_table(JOB_INPUTS)?, "job_inputs", id)?;
    }
    Ok(job)
}

/// The job `id` from an open jobs table of a read transaction.
fn read_job(jobs: &redb::ReadOnlyTable<u64, &[u8]>, id: u64) -> Result<JobV1> {
    find_job(jobs, id)?.ok_or(Error::UnknownJob { id })
}

/// The job `id`, if it exists, from an open jobs table of a read transaction.
pub(super) fn find_job(jobs: &redb::ReadOnlyTable<u64, &[u8]>, id: u64) -> Result<Option<JobV1>> {
    match jobs.get(id)? {
        Some(bytes) => Ok(Some(decode::<StoredJob>("jobs", bytes.value())?.into_job())),
        None => Ok(None),
    }
}
