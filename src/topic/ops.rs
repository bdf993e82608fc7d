//! The topic write ops: publish, a group's take and commit, and the retention sweep.

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::tables::{TOPIC_EVENTS, TOPIC_GROUPS, TOPIC_KEYS, TOPIC_PENDING, TOPICS};
use crate::error::{Error, Result};
use crate::store::TxCtx;
use crate::store::codec::{decode, encode};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum StoredEvent {
    V1(EventV1),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EventV1 {
    pub(crate) at: u64,
    pub(crate) key: Option<String>,
    pub(crate) payload: Vec<u8>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) enum StoredTopic {
    #[default]
    Empty,
    V1(TopicV1),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct TopicV1 {
    /// The last sequence number given out (0: none yet).
    pub(crate) last_seq: u64,
    /// Every event at or below this sequence was pruned.
    pub(crate) pruned_through: u64,
    /// Retention of this topic's events, as last published with.
    pub(crate) retention_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum StoredGroup {
    V1(GroupV1),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct GroupV1 {
    /// Events up to here were handed to a member at least once.
    pub(crate) delivered_through: u64,
    /// Events up to here are committed: the durable cursor.
    pub(crate) committed_through: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum StoredPending {
    V1(PendingV1),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PendingV1 {
    pub(crate) deadline: u64,
    pub(crate) deliveries: u32,
    pub(crate) committed: bool,
}

pub(crate) fn read_topic(ctx: &TxCtx<'_>, topic: &str) -> Result<TopicV1> {
    let table = ctx.tx.open_table(TOPICS)?;
    let stored = match table.get(topic)? {
        Some(b) => decode("topics", b.value())?,
        None => StoredTopic::Empty,
    };
    Ok(match stored {
        StoredTopic::Empty => TopicV1::default(),
        StoredTopic::V1(t) => t,
    })
}

fn write_topic(ctx: &TxCtx<'_>, topic: &str, t: &TopicV1) -> Result<()> {
    let bytes = encode(&StoredTopic::V1(t.clone()));
    ctx.tx.open_table(TOPICS)?.insert(topic, bytes.as_slice())?;
    Ok(())
}

fn read_event(ctx: &TxCtx<'_>, topic: &str, seq: u64) -> Result<Option<EventV1>> {
    let table = ctx.tx.open_table(TOPIC_EVENTS)?;
    let Some(b) = table.get((topic, seq))? else {
        return Ok(None);
    };
    let StoredEvent::V1(e) = decode("topic_events", b.value())?;
    Ok(Some(e))
}

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

fn prune_one(ctx: &TxCtx<'_>, topic: &str, seq: u64) -> Result<()> {
    if let Some(e) = read_event(ctx, topic, seq)? {
        if let Some(key) = &e.key {
            ctx.tx
                .open_table(TOPIC_KEYS)?
                .remove((topic, key.as_str()))?;
        }
        ctx.tx.open_table(TOPIC_EVENTS)?.remove((topic, seq))?;
    }
    Ok(())
}

/// A group's view: creates it positioned after `start_after` if new.
pub(crate) fn group(
    ctx: &TxCtx<'_>,
    topic: &str,
    group: &str,
    start_after: u64,
) -> Result<GroupV1> {
    let table = ctx.tx.open_table(TOPIC_GROUPS)?;
    Ok(match table.get((topic, group))? {
        Some(b) => {
            let StoredGroup::V1(g) = decode("topic_groups", b.value())?;
            g
        }
        None => GroupV1 {
            delivered_through: start_after,
            committed_through: start_after,
        },
    })
}

fn write_group(ctx: &TxCtx<'_>, topic: &str, name: &str, g: &GroupV1) -> Result<()> {
    let bytes = encode(&StoredGroup::V1(g.clone()));
    ctx.tx
        .open_table(TOPIC_GROUPS)?
        .insert((topic, name), bytes.as_slice())?;
    Ok(())
}

fn write_pending(ctx: &TxCtx<'_>, topic: &str, group: &str, seq: u64, p: &PendingV1) -> Result<()> {
    let bytes = encode(&StoredPending::V1(p.clone()));
    ctx.tx
        .open_table(TOPIC_PENDING)?
        .insert((topic, group, seq), bytes.as_slice())?;
    Ok(())
}

/// One event handed to a group member.
#[derive(Debug, Clone)]
pub(crate) struct Taken {
    pub(crate) seq: u64,
    pub(crate) at: u64,
    pub(crate) key: Option<String>,
    pub(crate) payload: Vec<u8>,
    pub(crate) deliveries: u32,
    pub(crate) deadline: u64,
}

/// What a take found.
#[derive(Debug)]
pub(crate) enum Take {
    /// Deliveries (maybe none), and the earliest reclaim deadline still pending.
    Got(Vec<Taken>, Option<u64>),
    /// The group's next event was pruned; it must seek.
    Lagged { requested: u64, next_available: u64 },
}

/// Hands up to `max` events to a member: first uncommitted deliveries whose reclaim time
/// passed, then new events.
pub(crate) fn take(
    ctx: &mut TxCtx<'_>,
    topic: &str,
    name: &str,
    start_after: u64,
    max: usize,
    reclaim_ms: u64,
) -> Result<Take> {
    let now = ctx.now;
    let mut g = group(ctx, topic, name, start_after)?;
    let t = read_topic(ctx, topic)?;
    let mut out = Vec::new();
    let mut next_deadline: Option<u64> = None;
    let pending: Vec<(u64, PendingV1)> = {
        let table = ctx.tx.open_table(TOPIC_PENDING)?;
        let mut v = Vec::new();
        for item in table.range((topic, name, 0)..=(topic, name, u64::MAX))? {
            let (k, b) = item?;
            let StoredPending::V1(p) = decode("topic_pending", b.value())?;
            v.push((k.value().2, p));
        }
        v
    };
    // A delivery that was never committed and is due again, but whose event retention pruned
    // meanwhile, is lost to the group: say so (the group seeks on), never skip it silently.
    // Checked before anything is written, so the answer changes nothing.
    if let Some((seq, _)) = pending
        .iter()
        .find(|(seq, p)| !p.committed && p.deadline <= now && *seq <= t.pruned_through)
    {
        return Ok(Take::Lagged {
            requested: *seq,
            next_available: t.pruned_through + 1,
        });
    }
    for (seq, mut p) in pending {
        if p.committed {
            continue;
        }
        if p.deadline > now || out.len() >= max {
            next_deadline = Some(next_deadline.map_or(p.deadline, |d| d.min(p.deadline)));
            continue;
        }
        let Some(e) = read_event(ctx, topic, seq)? else {
            // Pruned while pending: nothing left to deliver.
            ctx.tx
                .open_table(TOPIC_PENDING)?
                .remove((topic, name, seq))?;
            continue;
        };
        p.deadline = now.saturating_add(reclaim_ms);
        p.deliveries += 1;
        write_pending(ctx, topic, name, seq, &p)?;
        next_deadline = Some(next_deadline.map_or(p.deadline, |d| d.min(p.deadline)));
        out.push(Taken {
            seq,
            at: e.at,
            key: e.key,
            payload: e.payload,
            deliveries: p.deliveries,
            deadline: p.deadline,
        });
    }
    if out.len() < max && g.delivered_through < t.last_seq && g.delivered_through < t.pruned_through
    {
        return Ok(Take::Lagged {
            requested: g.delivered_through + 1,
            next_available: t.pruned_through + 1,
        });
    }
    while out.len() < max && g.delivered_through < t.last_seq {
        let seq = g.delivered_through + 1;
        g.delivered_through = seq;
        let Some(e) = read_event(ctx, topic, seq)? else {
            continue;
        };
        let p = PendingV1 {
            deadline: now.saturating_add(reclaim_ms),
            deliveries: 1,
            committed: false,
        };
        write_pending(ctx, topic, name, seq, &p)?;
        next_deadline = Some(next_deadline.map_or(p.deadline, |d| d.min(p.deadline)));
        out.push(Taken {
            seq,
            at: e.at,
            key: e.key,
            payload: e.payload,
            deliveries: 1,
            deadline: p.deadline,
        });
    }
    write_group(ctx, topic, name, &g)?;
    Ok(Take::Got(out, next_deadline))
}

/// Commits a delivered event; returns false if it was already committed. Moves the durable
/// cursor over every committed event in a row.
pub(crate) fn commit(ctx: &mut TxCtx<'_>, topic: &str, name: &str, seq: u64) -> Result<bool> {
    let mut g = group(ctx, topic, name, 0)?;
    let pending = {
        let table = ctx.tx.open_table(TOPIC_PENDING)?;
        match table.get((topic, name, seq))? {
            Some(b) => {
                let StoredPending::V1(p) = decode("topic_pending", b.value())?;
                Some(p)
            }
            None => None,
        }
    };
    let mut p = match pending {
        Some(p) if !p.committed => p,
        Some(_) => return Ok(false),
        None if seq <= g.committed_through => return Ok(false),
        None => {
            return Err(Error::invalid(
                "sequence",
                format!("event {seq} of topic {topic:?} was never delivered to group {name:?}"),
            ));
        }
    };
    p.committed = true;
    write_pending(ctx, topic, name, seq, &p)?;
    loop {
        let next = g.committed_through + 1;
        let done = {
            let table = ctx.tx.open_table(TOPIC_PENDING)?;
            match table.get((topic, name, next))? {
                Some(b) => {
                    let StoredPending::V1(p) = decode("topic_pending", b.value())?;
                    p.committed
                }
                // A pruned or skipped sequence that was never pending does not hold the cursor.
                None => {
                    next <= g.delivered_through
                        && ctx
                            .tx
                            .open_table(TOPIC_EVENTS)?
                            .get((topic, next))?
                            .is_none()
                }
            }
        };
        if !done {
            break;
        }
        ctx.tx
            .open_table(TOPIC_PENDING)?
            .remove((topic, name, next))?;
        g.committed_through = next;
    }
    write_group(ctx, topic, name, &g)?;
    Ok(true)
}

/// Moves a group to start after `seq` (dropping its pending deliveries).
pub(crate) fn seek(ctx: &mut TxCtx<'_>, topic: &str, name: &str, after: u64) -> Result<()> {
    let seqs: Vec<u64> = ctx
        .tx
        .open_table(TOPIC_PENDING)?
        .range((topic, name, 0)..=(topic, name, u64::MAX))?
        .map(|e| e.map(|(k, _)| k.value().2))
        .collect::<Result<_, _>>()?;
    let mut table = ctx.tx.open_table(TOPIC_PENDING)?;
    for seq in seqs {
        table.remove((topic, name, seq))?;
    }
    drop(table);
    let g = GroupV1 {
        delivered_through: after,
        committed_through: after,
    };
    write_group(ctx, topic, name, &g)
}

/// Prunes events past their topic's retention, up to `limit` per topic. Returns the next
/// instant with work.
pub(crate) fn sweep(ctx: &mut TxCtx<'_>, limit: usize) -> Result<Option<u64>> {
    let now = ctx.now;
    let topics: Vec<String> = ctx
        .tx
        .open_table(TOPICS)?
        .iter()?
        .map(|e| e.map(|(k, _)| k.value().to_string()))
        .collect::<Result<_, _>>()?;
    let mut next: Option<u64> = None;
    for topic in topics {
        let mut t = read_topic(ctx, &topic)?;
        let mut pruned = 0;
        while t.pruned_through < t.last_seq {
            let seq = t.pruned_through + 1;
            let Some(e) = read_event(ctx, &topic, seq)? else {
                t.pruned_through = seq;
                continue;
            };
            let due = e.at.saturating_add(t.retention_ms);
            if due > now || pruned >= limit {
                next = Some(next.map_or(due, |n| n.min(due)));
                break;
            }
            prune_one(ctx, &topic, seq)?;
            t.pruned_through = seq;
            pruned += 1;
        }
        write_topic(ctx, &topic, &t)?;
    }
    Ok(next)
}

/// Decodes `bytes` as each stored topic record kind (for the fuzz targets).
#[cfg(feature = "testing")]
pub(crate) fn decode_records(bytes: &[u8]) -> [(&'static str, Result<()>); 4] {
    [
        (
            "topic_events",
            decode::<StoredEvent>("topic_events", bytes).map(|_| ()),
        ),
        ("topics", decode::<StoredTopic>("topics", bytes).map(|_| ())),
        (
            "topic_groups",
            decode::<StoredGroup>("topic_groups", bytes).map(|_| ()),
        ),
        (
            "topic_pending",
            decode::<StoredPending>("topic_pending", bytes).map(|_| ()),
        ),
    ]
}
