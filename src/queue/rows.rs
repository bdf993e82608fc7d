//! Message state changes: every op moves a message through these helpers, which keep the
//! record and its index entries (ready, delayed, leased, dead, age) in step.

use redb::ReadableTable;

use super::record::{DeadReason, MessageState, MessageV1, StoredMessage, StoredMessageRef};
use super::tables::{
    QUEUE_AGE, QUEUE_DEAD, QUEUE_DEAD_EXPIRY, QUEUE_DELAYED, QUEUE_KEYS, QUEUE_LEASES,
    QUEUE_MESSAGES, QUEUE_PAYLOADS, QUEUE_READY,
};
use crate::error::Result;
use crate::store::TxCtx;
use crate::store::codec::{decode, encode, priority_key};

pub(crate) const SEQ_COUNTER: &str = "next:queue_seq";
pub(crate) const ID_COUNTER: &str = "next:queue_message";
/// Meta keys `queue_in:{state}:{queue}`: how many messages of each queue are in each state.
pub(crate) const TALLY_PREFIX: &str = "queue_in:";
/// Set once the tallies count every message of the file (older files are counted once, at an
/// open).
const TALLIED: &str = "flag:queue_tallied";

/// The state names of the tallies.
pub(crate) fn state_name(state: &MessageState) -> &'static str {
    match state {
        MessageState::Ready { .. } => "ready",
        MessageState::Delayed { .. } => "delayed",
        MessageState::Leased { .. } => "leased",
        MessageState::Dead { .. } => "dead",
    }
}

/// Counts `delta` messages of `queue` into or out of the state named `state`.
pub(crate) fn tally(
    ctx: &mut TxCtx<'_>,
    queue: &str,
    state: &'static str,
    delta: i64,
) -> Result<()> {
    ctx.adjust_joined(&[TALLY_PREFIX, state, ":", queue], delta)
}

/// Counts every message of a file whose messages were never tallied: a walk of all messages,
/// once, at the open.
pub(crate) fn tally_once(ctx: &mut TxCtx<'_>) -> Result<()> {
    if crate::store::meta::read_counter(ctx.tx, TALLIED)? != 0 {
        return Ok(());
    }
    let mut counts: std::collections::HashMap<(&'static str, String), u64> = Default::default();
    for entry in ctx.tx.open_table(QUEUE_MESSAGES)?.iter()? {
        let (_, bytes) = entry?;
        let m = decode::<StoredMessage>("queue_messages", bytes.value())?.into_message();
        *counts.entry((state_name(&m.state), m.queue)).or_default() += 1;
    }
    for ((state, queue), n) in counts {
        ctx.set_gauge(format!("{TALLY_PREFIX}{state}:{queue}"), n)?;
    }
    ctx.set_gauge(TALLIED, 1)
}

/// Where a message went, for waking after the commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Became {
    Ready,
    DelayedUntil(u64),
    LeasedUntil(u64),
    Dead,
    Nothing,
}

pub(crate) fn load(ctx: &TxCtx<'_>, id: u64) -> Result<Option<MessageV1>> {
    let table = ctx.tx.open_table(QUEUE_MESSAGES)?;
    let Some(bytes) = table.get(id)? else {
        return Ok(None);
    };
    Ok(Some(
        decode::<StoredMessage>("queue_messages", bytes.value())?.into_message(),
    ))
}

/// The message's payload: `m.payload`, or the one stored apart.
pub(crate) fn payload_of(ctx: &TxCtx<'_>, id: u64, m: MessageV1) -> Result<Vec<u8>> {
    if !m.payload_apart {
        return Ok(m.payload);
    }
    crate::store::apart::read(&*ctx.tx.open_table(QUEUE_PAYLOADS)?, "queue_payloads", id)
}

pub(crate) fn save(ctx: &TxCtx<'_>, id: u64, m: &MessageV1) -> Result<()> {
    let bytes = encode(&StoredMessageRef::new(m));
    ctx.tx
        .open_table(QUEUE_MESSAGES)?
        .insert(id, bytes.as_slice())?;
    Ok(())
}

/// Removes the index entry of the message's current state.
pub(crate) fn leave_state(ctx: &mut TxCtx<'_>, id: u64, m: &MessageV1) -> Result<()> {
    tally(ctx, &m.queue, state_name(&m.state), -1)?;
    match m.state {
        MessageState::Ready { seq } => {
            ctx.tx.open_table(QUEUE_READY)?.remove((
                m.queue.as_str(),
                priority_key(m.priority),
                seq,
            ))?;
        }
        MessageState::Delayed { until } => {
            ctx.tx.open_table(QUEUE_DELAYED)?.remove((until, id))?;
        }
        MessageState::Leased { deadline } => {
            ctx.tx.open_table(QUEUE_LEASES)?.remove((deadline, id))?;
        }
        MessageState::Dead { purge_at, .. } => {
            ctx.tx
                .open_table(QUEUE_DEAD)?
                .remove((m.queue.as_str(), id))?;
            ctx.tx
                .open_table(QUEUE_DEAD_EXPIRY)?
                .remove((purge_at, id))?;
        }
    }
    Ok(())
}

/// Puts the message at the back of its priority's line. Saves the record.
pub(crate) fn enter_ready(ctx: &mut TxCtx<'_>, id: u64, m: &mut MessageV1) -> Result<Became> {
    let seq = ctx.next_id(SEQ_COUNTER)?;
    ctx.tx
        .open_table(QUEUE_READY)?
        .insert((m.queue.as_str(), priority_key(m.priority), seq), id)?;
    m.state = MessageState::Ready { seq };
    tally(ctx, &m.queue, "ready", 1)?;
    save(ctx, id, m)?;
    Ok(Became::Ready)
}

pub(crate) fn enter_delayed(
    ctx: &mut TxCtx<'_>,
    id: u64,
    m: &mut MessageV1,
    until: u64,
) -> Result<Became> {
    ctx.tx.open_table(QUEUE_DELAYED)?.insert((until, id), ())?;
    m.state = MessageState::Delayed { until };
    tally(ctx, &m.queue, "delayed", 1)?;
    save(ctx, id, m)?;
    Ok(Became::DelayedUntil(until))
}

pub(crate) fn enter_dead(
    ctx: &mut TxCtx<'_>,
    id: u64,
    m: &mut MessageV1,
    reason: DeadReason,
) -> Result<Became> {
    ctx.tx.open_table(QUEUE_AGE)?.remove((m.expires_at(), id))?;
    let at = ctx.now;
    let purge_at = at.saturating_add(m.dead_retention_ms);
    ctx.tx
        .open_table(QUEUE_DEAD)?
        .insert((m.queue.as_str(), id), ())?;
    ctx.tx
        .open_table(QUEUE_DEAD_EXPIRY)?
        .insert((purge_at, id), ())?;
    m.state = MessageState::Dead {
        reason,
        at,
        purge_at,
    };
    tally(ctx, &m.queue, "dead", 1)?;
    save(ctx, id, m)?;
    tracing::debug!(queue = %m.queue, id, %reason, "message dead-lettered");
    Ok(Became::Dead)
}

/// Deletes the message and everything pointing at it.
pub(crate) fn erase(ctx: &mut TxCtx<'_>, id: u64, m: &MessageV1) -> Result<()> {
    leave_state(ctx, id, m)?;
    ctx.tx.open_table(QUEUE_AGE)?.remove((m.expires_at(), id))?;
    if m.payload_apart {
        ctx.tx.open_table(QUEUE_PAYLOADS)?.remove(id)?;
    }
    if let Some(key) = &m.key {
        ctx.tx
            .open_table(QUEUE_KEYS)?
            .remove((m.queue.as_str(), key.as_str()))?;
    }
    ctx.tx.open_table(QUEUE_MESSAGES)?.remove(id)?;
    Ok(())
}

/// Sends a message back to the line after a delivery ended without an ack, or to the
/// dead-letter list when it is out of deliveries or too old.
pub(crate) fn redeliver_or_bury(
    ctx: &mut TxCtx<'_>,
    id: u64,
    m: &mut MessageV1,
    delay_until: Option<u64>,
) -> Result<Became> {
    if m.expired(ctx.now) {
        enter_dead(ctx, id, m, DeadReason::Expired)
    } else if m.deliveries >= m.max_deliveries {
        enter_dead(ctx, id, m, DeadReason::MaxDeliveries)
    } else {
        match delay_until {
            Some(until) if until > ctx.now => enter_delayed(ctx, id, m, until),
            _ => enter_ready(ctx, id, m),
        }
    }
}

/// Loads a message if `delivery` still owns its lease at `now`.
pub(crate) fn owned(
    ctx: &TxCtx<'_>,
    queue: &str,
    id: u64,
    delivery: u32,
) -> Result<Option<MessageV1>> {
    let Some(m) = load(ctx, id)? else {
        return Ok(None);
    };
    let live = matches!(m.state, MessageState::Leased { deadline } if deadline > ctx.now);
    Ok((live && m.deliveries == delivery && m.queue == queue).then_some(m))
}

pub(crate) fn note_ready(ready: &mut Vec<(String, usize)>, queue: &str) {
    match ready.iter_mut().find(|(q, _)| q == queue) {
        Some((_, n)) => *n += 1,
        None => ready.push((queue.to_string(), 1)),
    }
}
