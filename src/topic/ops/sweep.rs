//! The timed pass: events past their topic's retention are pruned.

use redb::ReadableTable;

use crate::error::Result;
use crate::store::TxCtx;
use crate::topic::rows::{prune_one, read_event, read_topic, write_topic};
use crate::topic::tables::TOPICS;

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
