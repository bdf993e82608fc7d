//! Writes a running attempt makes about itself: a step result, progress, a heartbeat. Each is
//! refused (returns false, writes nothing) once the attempt no longer owns the job.

use crate::error::Result;
use crate::job::effects::Effects;
use crate::job::record::{EventKindV1, JobStateV1};
use crate::job::storage::ProgressUpdate;
use crate::job::tables::{JOB_LEASES, JOB_STEPS};
use crate::job::transition::{leave_state, load_known, owns, push_event, push_progress, save};
use crate::store::TxCtx;

/// Stores a step's result and emits `step_completed`.
pub(crate) fn record_step(
    ctx: &mut TxCtx<'_>,
    id: u64,
    attempt: u32,
    epoch: u64,
    step: &str,
    value: &[u8],
    fx: &mut Effects,
) -> Result<bool> {
    let mut job = load_known(ctx, id)?;
    if !owns(&job, attempt, epoch) {
        return Ok(false);
    }
    ctx.table(JOB_STEPS)?.insert((id, step), value)?;
    let kind = EventKindV1::StepCompleted {
        step: step.to_string(),
    };
    push_event(ctx, id, &mut job, kind, fx)?;
    save(ctx, id, &job)?;
    Ok(true)
}

/// Stores the latest progress and emits `progress` (coalesced per second; see
/// [`push_progress`]).
pub(crate) fn record_progress(
    ctx: &mut TxCtx<'_>,
    id: u64,
    attempt: u32,
    epoch: u64,
    update: &ProgressUpdate,
    fx: &mut Effects,
) -> Result<bool> {
    let mut job = load_known(ctx, id)?;
    if !owns(&job, attempt, epoch) {
        return Ok(false);
    }
    let kind = update.apply(&mut job);
    push_progress(ctx, id, &mut job, kind, fx)?;
    save(ctx, id, &job)?;
    Ok(true)
}

/// Extends the lease, and the attempt timeout if there is one, from now; emits `heartbeat`.
pub(crate) fn heartbeat(
    ctx: &mut TxCtx<'_>,
    id: u64,
    attempt: u32,
    epoch: u64,
    fx: &mut Effects,
) -> Result<bool> {
    let mut job = load_known(ctx, id)?;
    if !owns(&job, attempt, epoch) {
        return Ok(false);
    }
    let old_key = job.state.lease_key();
    leave_state(ctx, id, &job)?;
    let now = ctx.now;
    if let JobStateV1::Running {
        lease_deadline,
        timeout_deadline,
        ..
    } = &mut job.state
    {
        *lease_deadline = now.saturating_add(job.lease_ms);
        *timeout_deadline = job.timeout_ms.map(|t| now.saturating_add(t));
    }
    if let Some(key) = job.state.lease_key() {
        ctx.insert_indexed(JOB_LEASES, (key, id))?;
        if old_key.is_some_and(|old| key < old) {
            fx.deadline = Some(fx.deadline.map_or(key, |d| d.min(key)));
        }
    }
    crate::job::transition::tally(ctx, &job.name, crate::job::JobState::Running, 1)?;
    push_event(ctx, id, &mut job, EventKindV1::Heartbeat, fx)?;
    save(ctx, id, &job)?;
    Ok(true)
}
