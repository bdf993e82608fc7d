//! Extend: a delivery that still owns its message pushes its lease deadline.

use crate::error::Result;
use crate::queue::record::MessageState;
use crate::queue::rows::{leave_state, owned, save, tally};
use crate::queue::tables::QUEUE_LEASES;
use crate::store::TxCtx;

/// Extends a delivery's lease to `now + lease_ms`. The new deadline, or `None` if it was lost.
pub(crate) fn extend(
    ctx: &mut TxCtx<'_>,
    queue: &str,
    id: u64,
    delivery: u32,
    lease_ms: u64,
) -> Result<Option<u64>> {
    let Some(mut m) = owned(ctx, queue, id, delivery)? else {
        return Ok(None);
    };
    leave_state(ctx, id, &m)?;
    let deadline = ctx.now.saturating_add(lease_ms);
    m.state = MessageState::Leased { deadline };
    tally(ctx, queue, "leased", 1)?;
    ctx.tx
        .open_table(QUEUE_LEASES)?
        .insert((deadline, id), ())?;
    save(ctx, id, &m)?;
    Ok(Some(deadline))
}
