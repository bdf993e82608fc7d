//! The queue's write ops, applied inside the writer's transaction. Each validates before it
//! mutates, and reports what became ready so the caller can wake receivers after the commit.

use redb::ReadableTable;

use super::record::{DeadReason, MessageState, MessageV1, StoredMessage, StoredMessageRef};
use super::tables::{
    QUEUE_AGE, QUEUE_DEAD, QUEUE_DEAD_EXPIRY, QUEUE_DELAYED, QUEUE_KEYS, QUEUE_LEASES,
    QUEUE_MESSAGES, QUEUE_PAYLOADS, QUEUE_READY,
};
use crate::error::{Error, Result};
use crate::store::TxCtx;
use crate::store::codec::{decode, encode, priority_key};

const SEQ_COUNTER: &str = "next:queue_seq";
const ID_COUNTER: &str = "next:queue_message";

/// A message as sent, before it has an id.
#[derive(Debug, Clone)]
pub(crate) struct NewMessage {
    pub(crate) queue: String,
    pub(crate) payload: Vec<u8>,
    pub(crate) priority: i32,
    pub(crate) key: Option<String>,
    pub(crate) available_at: Option<u64>,
    pub(crate) max_age_ms: u64,
    pub(crate) max_deliveries: u32,
    pub(crate) dead_retention_ms: u64,
}

/// Outcome of a send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sent {
    pub(crate) id: u64,
    pub(crate) deduplicated: bool,
    pub(crate) became: Became,
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

/// One message taken for delivery.
#[derive(Debug, Clone)]
pub(crate) struct Taken {
    pub(crate) id: u64,
    pub(crate) payload: Vec<u8>,
    pub(crate) deliveries: u32,
    pub(crate) deadline: u64,
}

/// What a maintenance pass did.
#[derive(Debug, Default)]
pub(crate) struct Maintained {
    /// Queues that gained ready messages, with how many.
    pub(crate) ready: Vec<(String, usize)>,
    /// The earliest instant at which another pass has work, if any.
    pub(crate) next_deadline: Option<u64>,
}

fn load(ctx: &TxCtx<'_>, id: u64) -> Result<Option<MessageV1>> {
    let table = ctx.tx.open_table(QUEUE_MESSAGES)?;
    let Some(bytes) = table.get(id)? else {
        return Ok(None);
    };
    Ok(Some(
        decode::<StoredMessage>("queue_messages", bytes.value())?.into_message(),
    ))
}

/// The message's payload: `m.payload`, or the one stored apart.
fn payload_of(ctx: &TxCtx<'_>, id: u64, m: MessageV1) -> Result<Vec<u8>> {
    if !m.payload_apart {
        return Ok(m.payload);
    }
    crate::store::apart::read(&ctx.tx.open_table(QUEUE_PAYLOADS)?, "queue_payloads", id)
}

fn save(ctx: &TxCtx<'_>, id: u64, m: &MessageV1) -> Result<()> {
    let bytes = encode(&StoredMessageRef::new(m));
    ctx.tx
        .open_table(QUEUE_MESSAGES)?
        .insert(id, bytes.as_slice())?;
    Ok(())
}

/// Removes the index entry of the message's current state.
fn leave_state(ctx: &TxCtx<'_>, id: u64, m: &MessageV1) -> Result<()> {
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
fn enter_ready(ctx: &mut TxCtx<'_>, id: u64, m: &mut MessageV1) -> Result<Became> {
    let seq = ctx.next_id(SEQ_COUNTER)?;
    ctx.tx
        .open_table(QUEUE_READY)?
        .insert((m.queue.as_str(), priority_key(m.priority), seq), id)?;
    m.state = MessageState::Ready { seq };
    save(ctx, id, m)?;
    Ok(Became::Ready)
}

fn enter_delayed(ctx: &TxCtx<'_>, id: u64, m: &mut MessageV1, until: u64) -> Result<Became> {
    ctx.tx.open_table(QUEUE_DELAYED)?.insert((until, id), ())?;
    m.state = MessageState::Delayed { until };
    save(ctx, id, m)?;
    Ok(Became::DelayedUntil(until))
}

fn enter_dead(ctx: &TxCtx<'_>, id: u64, m: &mut MessageV1, reason: DeadReason) -> Result<Became> {
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
    save(ctx, id, m)?;
    tracing::debug!(queue = %m.queue, id, %reason, "message dead-lettered");
    Ok(Became::Dead)
}

/// Deletes the message and everything pointing at it.
fn erase(ctx: &TxCtx<'_>, id: u64, m: &MessageV1) -> Result<()> {
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
fn redeliver_or_bury(
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
    let mut m = MessageV1 {
        queue: new.queue.clone(),
        payload: if payload_apart {
            Vec::new()
        } else {
            new.payload.clone()
        },
        priority: new.priority,
        key: new.key.clone(),
        enqueued_at: ctx.now,
        max_age_ms: new.max_age_ms,
        max_deliveries: new.max_deliveries,
        dead_retention_ms: new.dead_retention_ms,
        deliveries: 0,
        state: MessageState::Ready { seq: 0 },
        last_error: None,
        payload_apart,
    };
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
    let range = (queue, 0u32, 0u64)..=(queue, u32::MAX, u64::MAX);
    while out.len() < max {
        let next = {
            let mut ready = ctx.tx.open_table(QUEUE_READY)?;
            let first = ready
                .range(range.clone())?
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
        if m.expired(ctx.now) {
            enter_dead(ctx, id, &mut m, DeadReason::Expired)?;
            continue;
        }
        let deadline = ctx.now.saturating_add(lease_ms);
        m.deliveries += 1;
        m.state = MessageState::Leased { deadline };
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
    let more = ctx
        .tx
        .open_table(QUEUE_READY)?
        .range(range)?
        .next()
        .is_some();
    Ok((out, more))
}

/// Loads a message if `delivery` still owns its lease at `now`.
fn owned(ctx: &TxCtx<'_>, queue: &str, id: u64, delivery: u32) -> Result<Option<MessageV1>> {
    let Some(m) = load(ctx, id)? else {
        return Ok(None);
    };
    let live = matches!(m.state, MessageState::Leased { deadline } if deadline > ctx.now);
    Ok((live && m.deliveries == delivery && m.queue == queue).then_some(m))
}

/// Acknowledges a delivery: the message is gone. False if the lease was lost.
pub(crate) fn ack(ctx: &mut TxCtx<'_>, queue: &str, id: u64, delivery: u32) -> Result<bool> {
    let Some(m) = owned(ctx, queue, id, delivery)? else {
        return Ok(false);
    };
    erase(ctx, id, &m)?;
    Ok(true)
}

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
    ctx.tx
        .open_table(QUEUE_LEASES)?
        .insert((deadline, id), ())?;
    save(ctx, id, &m)?;
    Ok(Some(deadline))
}

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

fn due(
    ctx: &TxCtx<'_>,
    table: redb::TableDefinition<(u64, u64), ()>,
    until: u64,
    limit: usize,
) -> Result<Vec<(u64, u64)>> {
    let t = ctx.tx.open_table(table)?;
    let mut out = Vec::new();
    for entry in t.range((0u64, 0u64)..=(until, u64::MAX))? {
        if out.len() >= limit {
            break;
        }
        let (k, _) = entry?;
        out.push(k.value());
    }
    Ok(out)
}

fn first_time(
    ctx: &TxCtx<'_>,
    table: redb::TableDefinition<(u64, u64), ()>,
) -> Result<Option<u64>> {
    let t = ctx.tx.open_table(table)?;
    Ok(t.first()?.map(|(k, _)| k.value().0))
}

fn note_ready(ready: &mut Vec<(String, usize)>, queue: &str) {
    match ready.iter_mut().find(|(q, _)| q == queue) {
        Some((_, n)) => *n += 1,
        None => ready.push((queue.to_string(), 1)),
    }
}

/// Ends leases that are due, or all leases when `all` (at open: the holder is gone), sending
/// each message back to the line or to the dead-letter list.
fn end_leases(
    ctx: &mut TxCtx<'_>,
    until: u64,
    limit: usize,
    why: &str,
    out: &mut Maintained,
) -> Result<usize> {
    let entries = due(ctx, QUEUE_LEASES, until, limit)?;
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

    let delayed = due(ctx, QUEUE_DELAYED, now, limit)?;
    busy |= delayed.len() >= limit;
    for (until, id) in delayed {
        ctx.tx.open_table(QUEUE_DELAYED)?.remove((until, id))?;
        let Some(mut m) = load(ctx, id)? else {
            continue;
        };
        if !matches!(m.state, MessageState::Delayed { .. }) {
            continue;
        }
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
    let aged = due(ctx, QUEUE_AGE, now, limit)?;
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

    let buried = due(ctx, QUEUE_DEAD_EXPIRY, now, limit)?;
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
            first_time(ctx, QUEUE_LEASES)?,
            first_time(ctx, QUEUE_DELAYED)?,
            first_time(ctx, QUEUE_DEAD_EXPIRY)?,
            first_time(ctx, QUEUE_AGE)?,
        ]
        .into_iter()
        .flatten()
        .min()
    };
    Ok(out)
}

/// The meta key set once the age index holds every live message (files written before the
/// index existed get it built at their first open by this build).
const AGE_INDEXED: &str = "index:queue_age";

/// Builds the age index of a file written before it existed: one entry per live message.
fn index_ages_once(ctx: &mut TxCtx<'_>) -> Result<()> {
    if crate::store::meta::read_counter(ctx.tx, AGE_INDEXED)? != 0 {
        return Ok(());
    }
    let live: Vec<(u64, u64)> =
        ctx.tx
            .open_table(QUEUE_MESSAGES)?
            .iter()?
            .map(|e| {
                let (k, v) = e?;
                let m = decode::<StoredMessage>("queue_messages", v.value())?.into_message();
                Ok((!matches!(m.state, MessageState::Dead { .. }))
                    .then(|| (m.expires_at(), k.value())))
            })
            .filter_map(Result::transpose)
            .collect::<Result<_>>()?;
    let mut age = ctx.tx.open_table(QUEUE_AGE)?;
    for key in live {
        age.insert(key, ())?;
    }
    drop(age);
    crate::store::meta::write_counter(ctx.tx, AGE_INDEXED, 1)
}

/// At open: every leased message belonged to a process that is gone, so it is redelivered now.
pub(crate) fn recover(ctx: &mut TxCtx<'_>) -> Result<usize> {
    index_ages_once(ctx)?;
    let mut out = Maintained::default();
    let mut total = 0;
    loop {
        let n = end_leases(
            ctx,
            u64::MAX,
            10_000,
            "the process holding the lease ended",
            &mut out,
        )?;
        total += n;
        if n < 10_000 {
            return Ok(total);
        }
    }
}

/// Gives a dead letter a fresh start: back in line with no deliveries counted and a fresh age.
/// Returns the instant it passes its maximum age again; `None` if there is no such dead letter
/// in `queue`.
pub(crate) fn requeue_dead(ctx: &mut TxCtx<'_>, queue: &str, id: u64) -> Result<Option<u64>> {
    let Some(mut m) = load(ctx, id)? else {
        return Ok(None);
    };
    if m.queue != queue || !matches!(m.state, MessageState::Dead { .. }) {
        return Ok(None);
    }
    leave_state(ctx, id, &m)?;
    m.deliveries = 0;
    m.enqueued_at = ctx.now;
    ctx.tx
        .open_table(QUEUE_AGE)?
        .insert((m.expires_at(), id), ())?;
    enter_ready(ctx, id, &mut m)?;
    Ok(Some(m.expires_at()))
}

/// Deletes one dead letter. False if there is no such dead letter in `queue`.
pub(crate) fn delete_dead(ctx: &mut TxCtx<'_>, queue: &str, id: u64) -> Result<bool> {
    let Some(m) = load(ctx, id)? else {
        return Ok(false);
    };
    if m.queue != queue || !matches!(m.state, MessageState::Dead { .. }) {
        return Ok(false);
    }
    erase(ctx, id, &m)?;
    Ok(true)
}

/// Deletes up to `limit` dead letters of `queue`; returns how many.
pub(crate) fn purge_dead(ctx: &mut TxCtx<'_>, queue: &str, limit: usize) -> Result<usize> {
    let ids: Vec<u64> = {
        let dead = ctx.tx.open_table(QUEUE_DEAD)?;
        let mut ids = Vec::new();
        for entry in dead.range((queue, 0u64)..=(queue, u64::MAX))? {
            if ids.len() >= limit {
                break;
            }
            ids.push(entry?.0.value().1);
        }
        ids
    };
    for &id in &ids {
        if let Some(m) = load(ctx, id)? {
            erase(ctx, id, &m)?;
        }
    }
    Ok(ids.len())
}
