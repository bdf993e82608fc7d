//! The dead-letter list by hand: requeue one or all, delete one, purge a queue's.

use redb::ReadableTable;

use crate::error::Result;
use crate::queue::record::MessageState;
use crate::queue::rows::{enter_ready, erase, leave_state, load};
use crate::queue::tables::{QUEUE_AGE, QUEUE_DEAD};
use crate::store::TxCtx;

/// Gives a dead letter a fresh start: back in line with no deliveries counted and a fresh age.
/// Returns the instant it passes its maximum age again; `None` if there is no such dead letter
/// in `queue`.
pub(crate) fn requeue_dead(ctx: &mut TxCtx<'_>, queue: &str, id: u64) -> Result<Option<u64>> {
    let Some(mut m) = load(ctx, id)? else {
        return Ok(None);
    };
    if m.queue != queue || !matches!(m.state, MessageState::Dead { .. }) {
        return Ok(None);
    }
    leave_state(ctx, id, &m)?;
    m.deliveries = 0;
    m.enqueued_at = ctx.now;
    ctx.tx
        .open_table(QUEUE_AGE)?
        .insert((m.expires_at(), id), ())?;
    enter_ready(ctx, id, &mut m)?;
    Ok(Some(m.expires_at()))
}

/// Deletes one dead letter. False if there is no such dead letter in `queue`.
pub(crate) fn delete_dead(ctx: &mut TxCtx<'_>, queue: &str, id: u64) -> Result<bool> {
    let Some(m) = load(ctx, id)? else {
        return Ok(false);
    };
    if m.queue != queue || !matches!(m.state, MessageState::Dead { .. }) {
        return Ok(false);
    }
    erase(ctx, id, &m)?;
    Ok(true)
}

/// Requeues up to `limit` dead letters of `queue`, oldest first, as [`requeue_dead`] does one.
/// Returns how many, and the earliest instant one of them passes its maximum age again.
pub(crate) fn requeue_dead_batch(
    ctx: &mut TxCtx<'_>,
    queue: &str,
    limit: usize,
) -> Result<(usize, Option<u64>)> {
    let ids = dead_ids(ctx, queue, limit)?;
    let mut earliest: Option<u64> = None;
    for &id in &ids {
        if let Some(expires_at) = requeue_dead(ctx, queue, id)? {
            earliest = Some(earliest.map_or(expires_at, |e| e.min(expires_at)));
        }
    }
    Ok((ids.len(), earliest))
}

/// The ids of up to `limit` dead letters of `queue`, oldest first.
fn dead_ids(ctx: &mut TxCtx<'_>, queue: &str, limit: usize) -> Result<Vec<u64>> {
    let dead = ctx.tx.open_table(QUEUE_DEAD)?;
    let mut ids = Vec::new();
    for entry in dead.range((queue, 0u64)..=(queue, u64::MAX))? {
        if ids.len() >= limit {
            break;
        }
        ids.push(entry?.0.value().1);
    }
    Ok(ids)
}

/// Deletes up to `limit` dead letters of `queue`; returns how many.
pub(crate) fn purge_dead(ctx: &mut TxCtx<'_>, queue: &str, limit: usize) -> Result<usize> {
    let ids = dead_ids(ctx, queue, limit)?;
    for &id in &ids {
        if let Some(m) = load(ctx, id)? {
            erase(ctx, id, &m)?;
        }
    }
    Ok(ids.len())
}
