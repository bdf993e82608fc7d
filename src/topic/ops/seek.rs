//! Seek: a group moves to a new position, dropping its uncommitted deliveries.

use redb::ReadableTable;

use crate::error::Result;
use crate::store::TxCtx;
use crate::topic::record::GroupV1;
use crate::topic::rows::write_group;
use crate::topic::tables::TOPIC_PENDING;

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
