//! Submit: store a new job (or find the retained one with the same key) and queue it.

use redb::ReadableTable;

use super::claim::{any_ready, start_attempt};
use super::depend::{self, AtSubmit};
use super::flow::load_flow;
use crate::error::Result;
use crate::job::effects::Claimed;
use crate::job::effects::Effects;
use crate::job::info::JobState;
use crate::job::metrics::JobMetric;
use crate::job::record::{BackoffV1, DependencyV1, EventKindV1, JobStateV1, JobV1};
use crate::job::tables::{JOB_INPUTS, JOB_KEYS};
use crate::job::transition::{enter_queued, new_id, push_event, save, tally};
use crate::store::TxCtx;

/// A job as submitted, before it has an id. Validated by the caller.
#[derive(Debug, Clone)]
pub(crate) struct NewJob {
    pub(crate) name: String,
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
    /// When it may first run; `None` for at once.
    pub(crate) run_at: Option<u64>,
    /// The jobs it runs after, each once.
    pub(crate) after: Vec<DependencyV1>,
    /// The batch it joins.
    pub(crate) batch: Option<u64>,
}

/// What a submit did.
#[derive(Debug)]
pub(crate) struct SubmitOutcome {
    pub(crate) id: u64,
    pub(crate) deduplicated: bool,
    /// The first attempt, when the job was handed straight to an idle worker.
    pub(crate) started: Option<Claimed>,
}

/// Stores the job, or finds the retained one with the same key. With `start_in` (an epoch),
/// a job that may run now and has no ready job of its name ahead of it starts its first attempt
/// in the same transaction, so an idle worker gets it without a separate claim.
pub(crate) fn submit(
    ctx: &mut TxCtx<'_>,
    new: &NewJob,
    start_in: Option<u64>,
    fx: &mut Effects,
) -> Result<SubmitOutcome> {
    if let Some(key) = &new.key
        && let Some(id) = ctx
            .table(JOB_KEYS)?
            .get((new.name.as_str(), key.as_str()))?
    {
        return Ok(SubmitOutcome {
            id: id.value(),
            deduplicated: true,
            started: None,
        });
    }
    let id = new_id(ctx)?;
    if let Some(key) = &new.key {
        ctx.table(JOB_KEYS)?
            .insert((new.name.as_str(), key.as_str()), id)?;
    }
    let input_apart = crate::store::apart::goes_apart(new.input.len());
    if input_apart {
        ctx.table(JOB_INPUTS)?.insert(id, new.input.as_slice())?;
    }
    let input = if input_apart {
        Vec::new()
    } else {
        new.input.clone()
    };
    let mut job = JobV1::submitted(new, input, input_apart, ctx.now);
    push_event(ctx, id, &mut job, EventKindV1::Submitted, fx)?;
    crate::job::effects::count(
        ctx,
        fx,
        JobMetric::Submitted {
            name: new.name.clone(),
        },
    )?;
    let run_at = new.run_at.unwrap_or(ctx.now);
    if let Some(batch) = new.batch {
        super::batch::join(ctx, batch, id, &mut job)?;
    }
    let not_started = SubmitOutcome {
        id,
        deduplicated: false,
        started: None,
    };
    match depend::at_submit(ctx, id, &new.after)? {
        AtSubmit::Met => {}
        AtSubmit::Wait(remaining) => {
            job.state = JobStateV1::Waiting { run_at, remaining };
            tally(ctx, &new.name, JobState::Waiting, 1)?;
            save(ctx, id, &job)?;
            return Ok(not_started);
        }
        AtSubmit::Broken(reason) => {
            super::cancel::settle_cancelled(ctx, id, &mut job, reason, fx)?;
            return Ok(not_started);
        }
    }
    if let Some(epoch) = start_in
        && run_at <= ctx.now
        && !any_ready(ctx, &new.name)?
        && load_flow(ctx, &new.name)?.paused_at.is_none()
    {
        job.state = JobStateV1::Queued {
            ready_seq: None,
            run_at,
        };
        let started = start_attempt(ctx, id, job, epoch, fx)?;
        return Ok(SubmitOutcome {
            id,
            deduplicated: false,
            started: Some(started),
        });
    }
    enter_queued(ctx, id, &mut job, run_at, fx)?;
    save(ctx, id, &job)?;
    Ok(not_started)
}
