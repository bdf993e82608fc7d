//! Claim: take up to `max` ready jobs of one definition and start an attempt of each.

use crate::error::{Error, Result};
use crate::index::{has_ready, take_ready};
use crate::job::effects::{Claimed, Effects};
use crate::job::metrics::JobMetric;
use crate::job::record::{EventKindV1, JobV1};
use crate::job::tables::JOB_READY;
use crate::job::transition::{enter_running, load, push_event, save};
use crate::store::TxCtx;

pub(crate) fn claim(
    ctx: &mut TxCtx<'_>,
    name: &str,
    max: usize,
    epoch: u64,
    fx: &mut Effects,
) -> Result<(Vec<Claimed>, bool)> {
    // The first `max` entries of the name's range, taken off the ready index in one pass: one
    // descent and one rewrite per leaf, where a lookup and a removal per job took two descents.
    let ids = take_ready(ctx.table(JOB_READY)?, name, max)?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let job: JobV1 = load(ctx, id)?.ok_or_else(|| Error::Corrupt {
            table: "job_ready",
            detail: format!("ready entry points at missing job {id}"),
        })?;
        // The ready entry is gone already; only the gauge is left of the queued state.
        crate::job::transition::tally(ctx, &job.name, crate::job::JobState::Queued, -1)?;
        out.push(start_attempt(ctx, id, job, epoch, fx)?);
    }
    let more = out.len() == max && any_ready(ctx, name)?;
    Ok((out, more))
}

/// Whether any job of `name` is ready, waiting for a claim.
pub(crate) fn any_ready(ctx: &mut TxCtx<'_>, name: &str) -> Result<bool> {
    has_ready(&**ctx.table(JOB_READY)?, name)
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
