//! Commit: a group marks a delivered event done; its cursor moves over every committed event in a row.

use redb::ReadableTable;

use crate::error::{Error, Result};
use crate::store::TxCtx;
use crate::store::codec::decode;
use crate::topic::record::StoredPending;
use crate::topic::rows::{group, write_group, write_pending};
use crate::topic::tables::{TOPIC_EVENTS, TOPIC_PENDING};

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
