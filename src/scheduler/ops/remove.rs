//! Remove: a schedule, its due entry and its failure record go together.

use crate::error::{Error, Result};
use crate::scheduler::failures;
use crate::scheduler::schedules::load;
use crate::scheduler::tables::{SCHEDULE_DUE, SCHEDULES};
use crate::store::TxCtx;

/// Removes a schedule, even one whose record no longer decodes (its due entry, if any, is
/// dropped by the next dispatch pass, which finds no record for it).
pub(crate) fn remove(ctx: &TxCtx<'_>, id: &str) -> Result<bool> {
    let next = match load(ctx, id) {
        Ok(Some(s)) => s.next_run,
        Ok(None) => return Ok(false),
        Err(Error::Corrupt { .. }) => None,
        Err(e) => return Err(e),
    };
    ctx.tx.open_table(SCHEDULES)?.remove(id)?;
    if let Some(next) = next {
        ctx.tx.open_table(SCHEDULE_DUE)?.remove((next, id))?;
    }
    failures::clear(ctx, id)?;
    Ok(true)
}
