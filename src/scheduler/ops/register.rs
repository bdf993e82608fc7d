//! Register: a schedule is stored (or replaced) with its next slot in the due index; a
//! replaced one keeps its position when its expression and zone are unchanged.

use crate::error::Result;
use crate::scheduler::failures;
use crate::scheduler::record::{JobTemplateV1, ScheduleV1};
use crate::scheduler::schedules::{load, save};
use crate::scheduler::spec::Registered;
use crate::scheduler::storage::ScheduleRegister;
use crate::store::TxCtx;

/// Stores the schedule; whether it was created or updated, and its next slot.
pub(crate) fn register(ctx: &TxCtx<'_>, r: &ScheduleRegister) -> Result<(Registered, Option<u64>)> {
    let existing = load(ctx, &r.id)?;
    let now = ctx.now;
    let fresh = || r.cron.next_after(now.saturating_sub(1));
    let (next_run, dispatched, dropped, old_next, registered) = match &existing {
        Some(old) if old.cron == r.cron_text && old.zone == r.zone && old.next_run.is_some() => (
            old.next_run,
            old.dispatched,
            old.dropped,
            old.next_run,
            Registered::Updated,
        ),
        Some(old) => (
            fresh(),
            old.dispatched,
            old.dropped,
            old.next_run,
            Registered::Updated,
        ),
        None => (fresh(), 0, 0, None, Registered::Created),
    };
    let s = ScheduleV1 {
        cron: r.cron_text.clone(),
        zone: r.zone.clone(),
        job: JobTemplateV1::from_new_job(r.job.clone()),
        misfire: r.misfire.into(),
        max_catch_up: r.max_catch_up,
        strict: r.strict,
        next_run,
        dispatched,
        dropped,
    };
    save(ctx, &r.id, &s, old_next)?;
    failures::clear(ctx, &r.id)?;
    Ok((registered, next_run))
}
