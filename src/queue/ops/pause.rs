//! Pause and resume: a paused queue delivers nothing; sends, acks and timed work go on.

use redb::ReadableTable;

use crate::error::Result;
use crate::queue::tables::QUEUE_PAUSED;
use crate::store::TxCtx;

/// Whether `queue` is paused.
pub(crate) fn is_paused(ctx: &TxCtx<'_>, queue: &str) -> Result<bool> {
    Ok(ctx.tx.open_table(QUEUE_PAUSED)?.get(queue)?.is_some())
}

/// Pauses or resumes `queue`; false if it already was.
pub(crate) fn set_paused(ctx: &mut TxCtx<'_>, queue: &str, paused: bool) -> Result<bool> {
    let now = ctx.now;
    let mut table = ctx.tx.open_table(QUEUE_PAUSED)?;
    let was = table.get(queue)?.is_some();
    if was == paused {
        return Ok(false);
    }
    if paused {
        table.insert(queue, now)?;
    } else {
        table.remove(queue)?;
    }
    Ok(true)
}
