//! Nack: a delivery gives its message back, or buries it when it is out of deliveries.

use crate::error::Result;
use crate::queue::rows::{Became, leave_state, owned, redeliver_or_bury};
use crate::store::TxCtx;

/// Gives a delivery back: behind the ready messages (or after `delay_ms`), or to the
/// dead-letter list if it is out of deliveries. `None` if the lease was lost.
pub(crate) fn nack(
    ctx: &mut TxCtx<'_>,
    queue: &str,
    id: u64,
    delivery: u32,
    delay_ms: u64,
    error: Option<&str>,
) -> Result<Option<Became>> {
    let Some(mut m) = owned(ctx, queue, id, delivery)? else {
        return Ok(None);
    };
    leave_state(ctx, id, &m)?;
    if let Some(e) = error {
        m.last_error = Some(e.to_string());
    }
    let until = ctx.now.saturating_add(delay_ms);
    redeliver_or_bury(ctx, id, &mut m, Some(until)).map(Some)
}
