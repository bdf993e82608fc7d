//! Take: hand up to `max` events to a group member.

use redb::ReadableTable;

use crate::error::Result;
use crate::store::TxCtx;
use crate::store::codec::decode;
use crate::topic::record::{PendingV1, StoredPending};
use crate::topic::rows::{group, read_event, read_topic, write_group, write_pending};
use crate::topic::tables::TOPIC_PENDING;

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
