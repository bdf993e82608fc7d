//! Take: lease up to `max` ready messages of one queue.

use redb::ReadableTable;

use crate::error::{Error, Result};
use crate::index::{has_ready, ready_range};
use crate::queue::record::{DeadReason, MessageState};
use crate::queue::rows::{enter_dead, load, payload_of, save, tally};
use crate::queue::storage::Taken;
use crate::queue::tables::{QUEUE_LEASES, QUEUE_READY};
use crate::store::TxCtx;

/// Takes up to `max` ready messages of `queue`, leasing each until `now + lease_ms`. Messages
/// found past their maximum age are dead-lettered instead. Returns the deliveries and whether
/// more are ready.
pub(crate) fn take(
    ctx: &mut TxCtx<'_>,
    queue: &str,
    lease_ms: u64,
    max: usize,
) -> Result<(Vec<Taken>, bool)> {
    let mut out = Vec::new();
    if super::pause::is_paused(ctx, queue)? {
        return Ok((out, false));
    }
    while out.len() < max {
        let next = {
            let mut ready = ctx.tx.open_table(QUEUE_READY)?;
            let first = ready
                .range(ready_range(queue))?
                .next()
                .transpose()?
                .map(|(k, v)| (k.value().1, k.value().2, v.value()));
            if let Some((prio, seq, _)) = first {
                ready.remove((queue, prio, seq))?;
            }
            first.map(|(_, _, id)| id)
        };
        let Some(id) = next else { break };
        let Some(mut m) = load(ctx, id)? else {
            return Err(Error::Corrupt {
                table: "queue_ready",
                detail: format!("ready entry points at missing message {id}"),
            });
        };
        // The ready entry is gone already; only the tally is left of the ready state.
        tally(ctx, queue, "ready", -1)?;
        if m.expired(ctx.now) {
            enter_dead(ctx, id, &mut m, DeadReason::Expired)?;
            continue;
        }
        let deadline = ctx.now.saturating_add(lease_ms);
        m.deliveries += 1;
        m.state = MessageState::Leased { deadline };
        tally(ctx, queue, "leased", 1)?;
        ctx.tx
            .open_table(QUEUE_LEASES)?
            .insert((deadline, id), ())?;
        save(ctx, id, &m)?;
        let deliveries = m.deliveries;
        out.push(Taken {
            id,
            payload: payload_of(ctx, id, m)?,
            deliveries,
            deadline,
        });
    }
    let more = has_ready(&*ctx.tx.open_table(QUEUE_READY)?, queue)?;
    Ok((out, more))
}
