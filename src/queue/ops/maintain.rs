//! The timed pass: expired leases, delayed messages coming due, messages past their maximum
//! age, dead letters past retention.

use crate::error::Result;
use crate::index::{due, next_at};
use crate::queue::record::{DeadReason, MessageState};
use crate::queue::rows::{
    Became, enter_dead, enter_ready, erase, leave_state, load, note_ready, redeliver_or_bury, tally,
};
use crate::queue::tables::{QUEUE_AGE, QUEUE_DEAD_EXPIRY, QUEUE_DELAYED, QUEUE_LEASES};
use crate::store::TxCtx;

/// What a maintenance pass did.
#[derive(Debug, Default)]
pub(crate) struct Maintained {
    /// Queues that gained ready messages, with how many.
    pub(crate) ready: Vec<(String, usize)>,
    /// The earliest instant at which another pass has work, if any.
    pub(crate) next_deadline: Option<u64>,
}

/// Ends leases that are due, or all leases when `all` (at open: the holder is gone), sending
/// each message back to the line or to the dead-letter list.
pub(super) fn end_leases(
    ctx: &mut TxCtx<'_>,
    until: u64,
    limit: usize,
    why: &str,
    out: &mut Maintained,
) -> Result<usize> {
    let entries = due(&*ctx.tx.open_table(QUEUE_LEASES)?, until, limit)?;
    for &(deadline, id) in &entries {
        // Remove the entry itself first, so a stale one can never be met twice.
        ctx.tx.open_table(QUEUE_LEASES)?.remove((deadline, id))?;
        let Some(mut m) = load(ctx, id)? else {
            continue;
        };
        if !matches!(m.state, MessageState::Leased { .. }) {
            continue;
        }
        leave_state(ctx, id, &m)?;
        m.last_error = Some(why.to_string());
        if redeliver_or_bury(ctx, id, &mut m, None)? == Became::Ready {
            note_ready(&mut out.ready, &m.queue);
        }
    }
    Ok(entries.len())
}

/// One pass of timed work: expired leases, due delayed messages, dead letters past retention.
/// Does at most about `limit` messages of each kind.
pub(crate) fn maintain(ctx: &mut TxCtx<'_>, limit: usize) -> Result<Maintained> {
    let mut out = Maintained::default();
    let now = ctx.now;
    let mut busy = end_leases(ctx, now, limit, "lease expired", &mut out)? >= limit;

    let delayed = due(&*ctx.tx.open_table(QUEUE_DELAYED)?, now, limit)?;
    busy |= delayed.len() >= limit;
    for (until, id) in delayed {
        ctx.tx.open_table(QUEUE_DELAYED)?.remove((until, id))?;
        let Some(mut m) = load(ctx, id)? else {
            continue;
        };
        if !matches!(m.state, MessageState::Delayed { .. }) {
            continue;
        }
        // The delayed entry is gone already; only the tally is left of the delayed state.
        tally(ctx, &m.queue, "delayed", -1)?;
        let became = if m.expired(now) {
            enter_dead(ctx, id, &mut m, DeadReason::Expired)?
        } else {
            enter_ready(ctx, id, &mut m)?
        };
        if became == Became::Ready {
            note_ready(&mut out.ready, &m.queue);
        }
    }

    // Ready and delayed messages past their maximum age go to the dead-letter list on time,
    // whether or not anyone receives; a leased one does when its delivery ends.
    let aged = due(&*ctx.tx.open_table(QUEUE_AGE)?, now, limit)?;
    busy |= aged.len() >= limit;
    for (expires_at, id) in aged {
        ctx.tx.open_table(QUEUE_AGE)?.remove((expires_at, id))?;
        let Some(mut m) = load(ctx, id)? else {
            continue;
        };
        if matches!(
            m.state,
            MessageState::Ready { .. } | MessageState::Delayed { .. }
        ) {
            leave_state(ctx, id, &m)?;
            enter_dead(ctx, id, &mut m, DeadReason::Expired)?;
        }
    }

    let buried = due(&*ctx.tx.open_table(QUEUE_DEAD_EXPIRY)?, now, limit)?;
    busy |= buried.len() >= limit;
    for (purge_at, id) in buried {
        ctx.tx
            .open_table(QUEUE_DEAD_EXPIRY)?
            .remove((purge_at, id))?;
        match load(ctx, id)? {
            Some(m) if matches!(m.state, MessageState::Dead { .. }) => erase(ctx, id, &m)?,
            _ => {}
        }
    }

    out.next_deadline = if busy {
        Some(now)
    } else {
        [
            next_at(&*ctx.tx.open_table(QUEUE_LEASES)?)?,
            next_at(&*ctx.tx.open_table(QUEUE_DELAYED)?)?,
            next_at(&*ctx.tx.open_table(QUEUE_DEAD_EXPIRY)?)?,
            next_at(&*ctx.tx.open_table(QUEUE_AGE)?)?,
        ]
        .into_iter()
        .flatten()
        .min()
    };
    Ok(out)
}
