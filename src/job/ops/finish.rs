//! Finish an attempt: complete the job, or record a failure (retry or fail for good).
//!
//! Both check that the attempt still owns the job: a job cancelled or timed out meanwhile
//! stays as it is, and the late result is dropped.

use crate::error::Result;
use crate::job::effects::Effects;
use crate::job::metrics::JobMetric;
use crate::job::record::{EventKindV1, FailureV1, JobStateV1};
use crate::job::transition::{
    enter_terminal, leave_state, load_known, owns, push_event, save, settle_failure,
};
use crate::store::TxCtx;

/// Stores the output and completes the job. Returns false (and changes nothing) when the
/// attempt no longer owns the job, or a cancel was requested before this was applied.
#[allow(clippy::too_many_arguments)]
pub(crate) fn complete(
    ctx: &mut TxCtx<'_>,
    id: u64,
    attempt: u32,
    epoch: u64,
    output: &[u8],
    cancel_requested: bool,
    fx: &mut Effects,
) -> Result<bool> {
    let mut job = load_known(ctx, id)?;
    if cancel_requested || !owns(&job, attempt, epoch) {
        return Ok(false);
    }
    let started_at = match job.state {
        JobStateV1::Running { started_at, .. } => started_at,
        _ => ctx.now,
    };
    leave_state(ctx, id, &job)?;
    let state = JobStateV1::Completed {
        output: output.to_vec(),
        at: ctx.now,
    };
    enter_terminal(ctx, id, &mut job, state, fx)?;
    push_event(ctx, id, &mut job, EventKindV1::Completed, fx)?;
    save(ctx, id, &job)?;
    crate::job::effects::count(
        ctx,
        fx,
        JobMetric::Completed {
            name: job.name.clone(),
            attempt,
            run_ms: ctx.now.saturating_sub(started_at),
        },
    )?;
    Ok(true)
}

/// Records a failed attempt. Returns false when the attempt no longer owns the job.
pub(crate) fn fail(
    ctx: &mut TxCtx<'_>,
    id: u64,
    epoch: u64,
    failure: FailureV1,
    retryable: bool,
    fx: &mut Effects,
) -> Result<bool> {
    let mut job = load_known(ctx, id)?;
    if !owns(&job, failure.attempt, epoch) {
        return Ok(false);
    }
    settle_failure(ctx, id, &mut job, failure, retryable, fx)?;
    Ok(true)
}
