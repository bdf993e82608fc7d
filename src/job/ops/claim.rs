//! Claim: take up to `max` ready jobs of one definition and start an attempt of each.

use super::flow::{load_flow, save_flow};
use crate::error::{Error, Result};
use crate::job::effects::{Claimed, Effects};
use crate::job::metrics::JobMetric;
use crate::job::record::{EventKindV1, JobV1};
use crate::job::rules::{settle_claim, start_room};
use crate::job::storage::Claim;
use crate::job::tables::JOB_READY;
use crate::job::transition::{enter_running, load, push_event, save};
use crate::ratelimit::window::Window;
use crate::store::TxCtx;

/// Starts attempts of up to `max` ready jobs of `name`: none while the definition is
/// paused, and no more than its start limit `rate` has room for, counted in the same
/// transaction.
pub(crate) fn claim(
    ctx: &mut TxCtx<'_>,
    name: &str,
    max: usize,
    epoch: u64,
    rate: Option<Window>,
    fx: &mut Effects,
) -> Result<Claim> {
    let mut flow = load_flow(ctx, name)?;
    if flow.paused_at.is_some() {
        return Ok(Claim::default());
    }
    let stored = flow.starts.clone().map(Into::into);
    let (room, window) = start_room(rate, stored, ctx.now, max);
    // The first `room` entries of the name's range, taken off the ready index (removed
    // together when the batch ends).
    let ids = match room {
        0 => Vec::new(),
        room => ctx.take_ready(JOB_READY, name, room)?,
    };
    let mut jobs = Vec::with_capacity(ids.len());
    for id in ids {
        jobs.push(start_taken(ctx, id, epoch, fx)?);
    }
    let left = jobs.len() == room && any_ready(ctx, name)?;
    let (claim, counts) = settle_claim(jobs, (room, max), left, window, ctx.now);
    if let Some(counts) = counts {
        flow.starts = Some(counts.into());
        save_flow(ctx, name, flow)?;
    }
    Ok(claim)
}

/// Starts an attempt of the first ready job of `name`, if there is one and the definition is
/// not paused: the claim an ending attempt makes for the worker slot it frees. The definition
/// has no start limit (a limited one's claims count its starts; the caller checks).
pub(crate) fn claim_next(
    ctx: &mut TxCtx<'_>,
    name: &str,
    epoch: u64,
    fx: &mut Effects,
) -> Result<Option<Claimed>> {
    if load_flow(ctx, name)?.paused_at.is_some() {
        return Ok(None);
    }
    match ctx.take_ready(JOB_READY, name, 1)?.pop() {
        Some(id) => Ok(Some(start_taken(ctx, id, epoch, fx)?)),
        None => Ok(None),
    }
}

/// Starts an attempt of job `id`, just taken off the ready index.
fn start_taken(ctx: &mut TxCtx<'_>, id: u64, epoch: u64, fx: &mut Effects) -> Result<Claimed> {
    let job: JobV1 = load(ctx, id)?.ok_or_else(|| Error::Corrupt {
        table: "job_ready",
        detail: format!("ready entry points at missing job {id}"),
    })?;
    // The ready entry is gone already; only the gauge is left of the queued state.
    crate::job::transition::tally(ctx, &job.name, crate::job::JobState::Queued, -1)?;
    start_attempt(ctx, id, job, epoch, fx)
}

/// Whether any job of `name` is ready, waiting for a claim.
pub(crate) fn any_ready(ctx: &mut TxCtx<'_>, name: &str) -> Result<bool> {
    ctx.has_ready(JOB_READY, name)
}

/// Starts the next attempt of a job that has left the queued state's indexes.
pub(crate) fn start_attempt(
    ctx: &mut TxCtx<'_>,
    id: u64,
    mut job: JobV1,
    epoch: u64,
    fx: &mut Effects,
) -> Result<Claimed> {
    job.attempts += 1;
    let attempt = job.attempts;
    enter_running(ctx, id, &mut job, attempt, epoch, fx)?;
    push_event(
        ctx,
        id,
        &mut job,
        EventKindV1::Started { attempt, epoch },
        fx,
    )?;
    save(ctx, id, &job)?;
    let name = std::mem::take(&mut job.name);
    crate::job::effects::count(ctx, fx, JobMetric::Started { name, attempt })?;
    fx.started.push((id, attempt));
    let input = crate::job::transition::input_of(ctx, id, job.input, job.input_apart)?;
    Ok(Claimed {
        id,
        attempt,
        input,
        key: job.key,
        meta: job.meta,
    })
}
