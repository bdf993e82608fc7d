//! Dead-letter: a delivery moves its message to the dead-letter list at once.

use crate::error::Result;
use crate::queue::record::DeadReason;
use crate::queue::rows::{enter_dead, leave_state, owned};
use crate::store::TxCtx;

/// Moves a delivery straight to the dead-letter list (reason `nacked`).
pub(crate) fn dead_letter(
    ctx: &mut TxCtx<'_>,
    queue: &str,
    id: u64,
    delivery: u32,
    error: &str,
) -> Result<bool> {
    let Some(mut m) = owned(ctx, queue, id, delivery)? else {
        return Ok(false);
    };
    leave_state(ctx, id, &m)?;
    m.last_error = Some(error.to_string());
    enter_dead(ctx, id, &mut m, DeadReason::Nacked)?;
    Ok(true)
}
