//! The dead-letter view's writes: retry a failed job with a fresh attempt budget, or delete a
//! finished one.

use crate::error::{Error, Result};
use crate::job::effects::Effects;
use crate::job::record::{EventKindV1, FailureV1, JobStateV1};
use crate::job::transition::{enter_queued, erase, leave_state, load_known, push_event, save};
use crate::store::TxCtx;

/// Queues a failed or timed-out job again, with its attempts and crash budget reset.
pub(crate) fn retry(ctx: &mut TxCtx<'_>, id: u64, fx: &mut Effects) -> Result<()> {
    let mut job = load_known(ctx, id)?;
    if !matches!(
        job.state,
        JobStateV1::Failed { .. } | JobStateV1::TimedOut { .. }
    ) {
        return Err(Error::invalid(
            "job",
            format!(
                "job {id} is {}; only failed or timed-out jobs can be retried",
                crate::job::info::state_name(&job.state)
            ),
        ));
    }
    leave_state(ctx, id, &job)?;
    job.attempts = 0;
    job.crashes = 0;
    enter_queued(ctx, id, &mut job, ctx.now, fx)?;
    let error = job.last_error.clone().unwrap_or(FailureV1 {
        code: "RETRY".into(),
        message: "retried by hand".into(),
        attempt: 0,
    });
    let kind = EventKindV1::RetryScheduled {
        next_at: ctx.now,
        error,
    };
    push_event(ctx, id, &mut job, kind, fx)?;
    save(ctx, id, &job)
}

/// Deletes a finished job with its events, steps and key.
pub(crate) fn delete(ctx: &mut TxCtx<'_>, id: u64) -> Result<()> {
    let job = load_known(ctx, id)?;
    if job.state.finished_code().is_none() {
        return Err(Error::invalid(
            "job",
            format!(
                "job {id} is {}; cancel it before deleting it",
                crate::job::info::state_name(&job.state)
            ),
        ));
    }
    erase(ctx, id, &job)
}
