//! The dead-letter view's writes: retry a failed job with a fresh attempt budget, or delete a
//! finished one.

use redb::ReadableTable;

use crate::error::Result;
use crate::job::effects::Effects;
use crate::job::record::{EventKindV1, FailureV1, JobStateV1};
use crate::job::tables::JOB_FINISHED;
use crate::job::transition::{enter_queued, erase, leave_state, load_known, push_event, save};
use crate::store::TxCtx;

/// Queues a failed or timed-out job again, with its attempts and crash budget reset.
pub(crate) fn retry(ctx: &mut TxCtx<'_>, id: u64, fx: &mut Effects) -> Result<()> {
    let mut job = load_known(ctx, id)?;
    job.check_retryable(id)?;
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

/// Where a bulk retry goes on: the finished-index key after which it looks next.
pub(crate) type RetryCursor = (u8, u64);

/// Retries the failed and timed-out jobs named `name` (all names when `None`), looking at up
/// to `limit` of them in index order after `cursor`. Returns how many it retried and the
/// cursor to go on from, `None` once every one was looked at.
pub(crate) fn retry_failed_batch(
    ctx: &mut TxCtx<'_>,
    name: Option<&str>,
    cursor: Option<RetryCursor>,
    limit: usize,
    fx: &mut Effects,
) -> Result<(usize, Option<RetryCursor>)> {
    let (failed, timed_out) = (JobStateV1::FAILED_CODE, JobStateV1::TIMED_OUT_CODE);
    let start = cursor.map_or((failed, 0), |(code, id)| match id.checked_add(1) {
        Some(next) => (code, next),
        None => (code + 1, 0),
    });
    let mut seen = Vec::new();
    {
        let index = ctx.table(JOB_FINISHED)?;
        for entry in index.range(start..=(timed_out, u64::MAX))? {
            let key = entry?.0.value();
            if key.0 != failed && key.0 != timed_out {
                continue;
            }
            if seen.len() == limit {
                break;
            }
            seen.push(key);
        }
    }
    let mut retried = 0;
    for &(_, id) in &seen {
        let matches = match name {
            None => true,
            Some(name) => load_known(ctx, id)?.name == name,
        };
        if matches {
            retry(ctx, id, fx)?;
            retried += 1;
        }
    }
    let next = if seen.len() == limit {
        seen.last().copied()
    } else {
        None
    };
    Ok((retried, next))
}

/// Deletes a finished job with its events, steps and key.
pub(crate) fn delete(ctx: &mut TxCtx<'_>, id: u64) -> Result<()> {
    let job = load_known(ctx, id)?;
    job.check_deletable(id)?;
    erase(ctx, id, &job)
}
