//! Send: store a new message, or find the live one with the same idempotency key.

use redb::ReadableTable;

use crate::error::Result;
use crate::queue::rows::{Became, ID_COUNTER, enter_delayed, enter_ready};
use crate::queue::storage::NewMessage;
use crate::queue::tables::{QUEUE_AGE, QUEUE_KEYS, QUEUE_PAYLOADS};
use crate::store::TxCtx;

/// Outcome of a send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sent {
    pub(crate) id: u64,
    pub(crate) deduplicated: bool,
    pub(crate) became: Became,
}

/// Stores a new message, or returns the id of the live message with the same key.
pub(crate) fn send(ctx: &mut TxCtx<'_>, new: &NewMessage) -> Result<Sent> {
    if let Some(key) = &new.key {
        let keys = ctx.tx.open_table(QUEUE_KEYS)?;
        if let Some(id) = keys.get((new.queue.as_str(), key.as_str()))? {
            return Ok(Sent {
                id: id.value(),
                deduplicated: true,
                became: Became::Nothing,
            });
        }
    }
    let id = ctx.next_id(ID_COUNTER)?;
    if let Some(key) = &new.key {
        ctx.tx
            .open_table(QUEUE_KEYS)?
            .insert((new.queue.as_str(), key.as_str()), id)?;
    }
    let payload_apart = crate::store::apart::goes_apart(new.payload.len());
    if payload_apart {
        ctx.tx
            .open_table(QUEUE_PAYLOADS)?
            .insert(id, new.payload.as_slice())?;
    }
    let mut m = new.record(ctx.now, payload_apart);
    ctx.tx
        .open_table(QUEUE_AGE)?
        .insert((m.expires_at(), id), ())?;
    let became = match new.available_at {
        Some(at) if at > ctx.now => enter_delayed(ctx, id, &mut m, at)?,
        _ => enter_ready(ctx, id, &mut m)?,
    };
    Ok(Sent {
        id,
        deduplicated: false,
        became,
    })
}
