//! The operator's writes: retry a failed job with a fresh attempt budget, delete a finished
//! one, and the bulk forms (retry every failed job, cancel every queued one, delete failed
//! ones older than an instant) in bounded batches, one transaction each.

use redb::ReadableTable;

use super::cancel::cancel;
use crate::error::Result;
use crate::index::ready_range;
use crate::job::effects::Effects;
use crate::job::record::{EventKindV1, FailureV1, JobStateV1};
use crate::job::tables::{JOB_DELAYED, JOB_FINISHED, JOB_READY};
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

/// Up to `limit` keys of failed and timed-out jobs in the finished index, after `cursor`.
fn failed_after(
    ctx: &mut TxCtx<'_>,
    cursor: Option<RetryCursor>,
    limit: usize,
) -> Result<Vec<RetryCursor>> {
    let (failed, timed_out) = (JobStateV1::FAILED_CODE, JobStateV1::TIMED_OUT_CODE);
    let start = cursor.map_or((failed, 0), |(code, id)| match id.checked_add(1) {
        Some(next) => (code, next),
        None => (code + 1, 0),
    });
    let index = ctx.table(JOB_FINISHED)?;
    let mut seen = Vec::new();
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
    Ok(seen)
}

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
    let seen = failed_after(ctx, cursor, limit)?;
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
    let next = (seen.len() == limit)
        .then(|| seen.last().copied())
        .flatten();
    Ok((retried, next))
}

/// Deletes a finished job with its events, steps and key.
pub(crate) fn delete(ctx: &mut TxCtx<'_>, id: u64) -> Result<()> {
    let job = load_known(ctx, id)?;
    job.check_deletable(id)?;
    erase(ctx, id, &job)
}

/// Where a bulk cancel of queued jobs goes on: the ready ones first (by the definition's
/// ready index), then the delayed ones, after a key of the delayed index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QueuedCursor {
    /// Among the ready jobs (cancelled ones leave the index, so always from its start).
    Ready,
    /// Among the delayed jobs, after this (run at, id) key.
    Delayed(u64, u64),
}

/// Cancels up to `limit` queued jobs of `name` with `reason`, looking at up to `limit`
/// entries of one index after `cursor`. Returns how many it cancelled and where to go on,
/// `None` once every queued job was looked at.
pub(crate) fn cancel_queued_batch(
    ctx: &mut TxCtx<'_>,
    name: &str,
    reason: &str,
    cursor: Option<QueuedCursor>,
    limit: usize,
    fx: &mut Effects,
) -> Result<(usize, Option<QueuedCursor>)> {
    match cursor.unwrap_or(QueuedCursor::Ready) {
        QueuedCursor::Ready => {
            let ids: Vec<u64> = ctx
                .table(JOB_READY)?
                .range(ready_range(name))?
                .take(limit)
                .map(|e| e.map(|(_, id)| id.value()))
                .collect::<std::result::Result<_, _>>()?;
            for &id in &ids {
                cancel(ctx, id, reason, fx)?;
            }
            let next = if ids.len() == limit {
                QueuedCursor::Ready
            } else {
                QueuedCursor::Delayed(0, 0)
            };
            Ok((ids.len(), Some(next)))
        }
        QueuedCursor::Delayed(at, id) => {
            let keys: Vec<(u64, u64)> = ctx
                .table(JOB_DELAYED)?
                .range((at, id.saturating_add(1))..)?
                .take(limit)
                .map(|e| e.map(|(k, _)| k.value()))
                .collect::<std::result::Result<_, _>>()?;
            let mut cancelled = 0;
            for &(_, id) in &keys {
                let job = load_known(ctx, id)?;
                if job.name == name && matches!(job.state, JobStateV1::Queued { .. }) {
                    cancel(ctx, id, reason, fx)?;
                    cancelled += 1;
                }
            }
            let next = (keys.len() == limit)
                .then(|| keys.last().map(|&(at, id)| QueuedCursor::Delayed(at, id)))
                .flatten();
            Ok((cancelled, next))
        }
    }
}

/// Deletes the failed and timed-out jobs of `name` (all names when `None`) that finished
/// before `before_ms`, looking at up to `limit` of them in index order after `cursor`.
/// Returns how many it deleted and the cursor to go on from, `None` once every one was
/// looked at.
pub(crate) fn delete_failed_batch(
    ctx: &mut TxCtx<'_>,
    name: Option<&str>,
    before_ms: u64,
    cursor: Option<RetryCursor>,
    limit: usize,
) -> Result<(usize, Option<RetryCursor>)> {
    let seen = failed_after(ctx, cursor, limit)?;
    let mut deleted = 0;
    for &(_, id) in &seen {
        let job = load_known(ctx, id)?;
        let old = job.state.finished_at().is_some_and(|at| at < before_ms);
        if old && name.is_none_or(|name| job.name == name) {
            erase(ctx, id, &job)?;
            deleted += 1;
        }
    }
    let next = (seen.len() == limit)
        .then(|| seen.last().copied())
        .flatten();
    Ok((deleted, next))
}
