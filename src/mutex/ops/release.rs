//! Release: the live lease, and only it, ends.

use super::live_holder;
use crate::error::Result;
use crate::mutex::lease::MutexLease;
use crate::mutex::tables::MUTEXES;
use crate::store::TxCtx;

pub(crate) fn release(ctx: &mut TxCtx<'_>, held: &MutexLease) -> Result<bool> {
    let current = live_holder(ctx, &held.name)?;
    if !current.is_some_and(|l| l.owner == held.owner && l.token == held.token) {
        return Ok(false);
    }
    ctx.tx.open_table(MUTEXES)?.remove(held.name.as_str())?;
    Ok(true)
}
