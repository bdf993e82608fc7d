//! Cancel: a queued job is cancelled at once; a running one too, and its attempt is signalled.

use crate::error::Result;
use crate::job::effects::Effects;
use crate::job::metrics::JobMetric;
use crate::job::record::{EventKindV1, JobStateV1, JobV1};
use crate::job::signal::StopReason;
use crate::job::transition::{
    enter_terminal, leave_state, load_known, push_event, save, settle_terminal,
};
use crate::store::TxCtx;

/// What a cancel found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cancelled {
    /// It was queued or running and is now cancelled.
    Done,
    /// It had already reached a terminal state (code of the finished index).
    AlreadyFinished(u8),
}

pub(crate) fn cancel(
    ctx: &mut TxCtx<'_>,
    id: u64,
    reason: &str,
    fx: &mut Effects,
) -> Result<Cancelled> {
    let mut job = load_known(ctx, id)?;
    if let Some(code) = job.state.finished_code() {
        return Ok(Cancelled::AlreadyFinished(code));
    }
    if let JobStateV1::Running { attempt, .. } = job.state {
        fx.signals
            .push((id, attempt, StopReason::Cancelled(reason.to_string())));
    }
    leave_state(ctx, id, &job)?;
    let state = JobStateV1::Cancelled {
        reason: reason.to_string(),
        at: ctx.now,
    };
    enter_terminal(ctx, id, &mut job, state, fx)?;
    push_event(
        ctx,
        id,
        &mut job,
        EventKindV1::Cancelled {
            reason: reason.to_string(),
        },
        fx,
    )?;
    save(ctx, id, &job)?;
    crate::job::effects::count(
        ctx,
        fx,
        JobMetric::Cancelled {
            name: job.name.clone(),
        },
    )?;
    Ok(Cancelled::Done)
}

/// Cancels `job`, which has left its state's indexes (or never entered one), with `reason`:
/// the terminal state, its event and metric, saved. The jobs waiting for it are left to the
/// caller (see [`settle_terminal`]).
pub(crate) fn settle_cancelled(
    ctx: &mut TxCtx<'_>,
    id: u64,
    job: &mut JobV1,
    reason: String,
    fx: &mut Effects,
) -> Result<()> {
    let state = JobStateV1::Cancelled {
        reason: reason.clone(),
        at: ctx.now,
    };
    settle_terminal(ctx, id, job, state, fx)?;
    push_event(ctx, id, job, EventKindV1::Cancelled { reason }, fx)?;
    save(ctx, id, job)?;
    crate::job::effects::count(
        ctx,
        fx,
        JobMetric::Cancelled {
            name: job.name.clone(),
        },
    )
}
