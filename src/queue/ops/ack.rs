//! Ack: a delivery that still owns its message deletes it.

use crate::error::Result;
use crate::queue::rows::{erase, owned};
use crate::store::TxCtx;

/// Acknowledges a delivery: the message is gone. False if the lease was lost.
pub(crate) fn ack(ctx: &mut TxCtx<'_>, queue: &str, id: u64, delivery: u32) -> Result<bool> {
    let Some(m) = owned(ctx, queue, id, delivery)? else {
        return Ok(false);
    };
    erase(ctx, id, &m)?;
    Ok(true)
}
