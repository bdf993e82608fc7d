//! Clear dead letters: a schedule's given-up slots are forgotten.

use redb::ReadableTable;

use crate::error::Result;
use crate::scheduler::tables::SCHEDULE_DEAD;
use crate::store::TxCtx;

/// Removes every dead letter of schedule `id`; returns how many there were.
pub(crate) fn clear_dead(ctx: &TxCtx<'_>, id: &str) -> Result<u64> {
    let mut table = ctx.tx.open_table(SCHEDULE_DEAD)?;
    let slots: Vec<u64> = table
        .range((id, 0)..=(id, u64::MAX))?
        .map(|e| e.map(|(k, _)| k.value().1))
        .collect::<Result<_, _>>()?;
    for slot in &slots {
        table.remove((id, *slot))?;
    }
    Ok(slots.len() as u64)
}
