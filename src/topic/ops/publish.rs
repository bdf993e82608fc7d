//! Publish: store an event, or find the retained one with the same key.

use redb::ReadableTable;

use crate::error::Result;
use crate::store::TxCtx;
use crate::store::codec::encode;
use crate::topic::record::{EventV1, StoredEvent};
use crate::topic::rows::{prune_one, read_topic, write_topic};
use crate::topic::tables::{TOPIC_EVENTS, TOPIC_KEYS};

/// Stores an event; returns its sequence number and whether its key matched a retained one.
pub(crate) fn publish(
    ctx: &mut TxCtx<'_>,
    topic: &str,
    key: Option<&str>,
    payload: &[u8],
    retention_ms: u64,
    max_events: Option<u64>,
) -> Result<(u64, bool)> {
    if let Some(key) = key
        && let Some(seq) = ctx.tx.open_table(TOPIC_KEYS)?.get((topic, key))?
    {
        return Ok((seq.value(), true));
    }
    let mut t = read_topic(ctx, topic)?;
    t.last_seq += 1;
    t.retention_ms = retention_ms;
    let seq = t.last_seq;
    let event = EventV1 {
        at: ctx.now,
        key: key.map(str::to_string),
        payload: payload.to_vec(),
    };
    let bytes = encode(&StoredEvent::V1(event));
    ctx.tx
        .open_table(TOPIC_EVENTS)?
        .insert((topic, seq), bytes.as_slice())?;
    if let Some(key) = key {
        ctx.tx.open_table(TOPIC_KEYS)?.insert((topic, key), seq)?;
    }
    if let Some(max) = max_events {
        // Keep at most `max` events: prune from the front.
        let first_kept = seq.saturating_sub(max.max(1)) + 1;
        while t.pruned_through + 1 < first_kept {
            prune_one(ctx, topic, t.pruned_through + 1)?;
            t.pruned_through += 1;
        }
    }
    write_topic(ctx, topic, &t)?;
    Ok((seq, false))
}
