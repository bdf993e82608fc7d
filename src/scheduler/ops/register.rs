//! Register: a schedule is stored (or replaced) with its next slot in the due index; a
//! replaced one keeps its position when its expression and zone are unchanged.

use crate::error::Result;
use crate::scheduler::failures;
use crate::scheduler::rules;
use crate::scheduler::schedules::{load, save};
use crate::scheduler::spec::Registered;
use crate::scheduler::storage::ScheduleRegister;
use crate::store::TxCtx;

/// Stores the schedule; whether it was created or updated, and its next slot.
pub(crate) fn register(ctx: &TxCtx<'_>, r: &ScheduleRegister) -> Result<(Registered, Option<u64>)> {
    let existing = load(ctx, &r.id)?;
    let (s, registered) = rules::registered(existing.as_ref(), r, ctx.now);
    save(ctx, &r.id, &s, existing.and_then(|old| old.next_run))?;
    failures::clear(ctx, &r.id)?;
    Ok((registered, s.next_run))
}
