//! The scheduler's write ops: each due slot becomes one job, submitted with the key
//! `{schedule_id}:{slot_ms}` in the same transaction that advances the schedule, so a slot is
//! never lost and never run twice, whatever crashes.

use redb::ReadableTable;

use crate::error::{Error, Result};
use crate::job::effects::Effects;
use crate::job::ops::submit;
use crate::scheduler::cron::CronCache;
use crate::scheduler::failures;
use crate::scheduler::metrics::DispatchReport;
use crate::scheduler::record::ScheduleV1;
use crate::scheduler::rules;
use crate::scheduler::schedules::{load, save};
use crate::scheduler::tables::SCHEDULE_DUE;
use crate::store::TxCtx;

/// Due-index entries read per pass, as a multiple of the schedules handled: room to pass over
/// schedules that are held or waiting to retry.
const SCAN_FACTOR: usize = 16;

/// Submits the due slots of up to `limit` schedules. Slots inside a `missed` window
/// (`from..to`) came due while no scheduler ran (before the open, or across a suspend or a
/// wall-clock step): the misfire policy decides which of them run. Other slots always run.
/// Returns the next instant with work.
pub(crate) fn dispatch(
    ctx: &mut TxCtx<'_>,
    missed: &[(u64, u64)],
    limit: usize,
    has_handler: &dyn Fn(&str) -> bool,
    crons: &mut CronCache,
    fx: &mut Effects,
    report: &mut DispatchReport,
) -> Result<Option<u64>> {
    let now = ctx.now;
    let due: Vec<(u64, String)> = ctx
        .tx
        .open_table(SCHEDULE_DUE)?
        .range(..=(now, "\u{10FFFF}"))?
        .take(limit.saturating_mul(SCAN_FACTOR))
        .map(|e| e.map(|(k, _)| (k.value().0, k.value().1.to_string())))
        .collect::<Result<_, _>>()?;
    let mut retry_at: Option<u64> = None;
    let mut lower = |at: u64| retry_at = Some(retry_at.map_or(at, |r: u64| r.min(at)));
    if due.len() == limit.saturating_mul(SCAN_FACTOR) {
        // Schedules past the scanned range are looked at again within a second, even when
        // every scanned one is waiting.
        lower(now.saturating_add(1_000));
    }
    let any_failing = failures::any(ctx)?;
    // Schedules held or waiting to retry are passed over without counting against `limit`.
    let mut passed_over = 0;
    for (i, (slot, id)) in due.into_iter().enumerate() {
        if i - passed_over == limit {
            lower(now);
            break;
        }
        let before = if any_failing {
            failures::failing(ctx, &id)?
        } else {
            None
        };
        if let Some(f) = before.as_ref().filter(|f| f.retry_at > now) {
            lower(f.retry_at);
            passed_over += 1;
            continue;
        }
        // A record or expression this build cannot read fails this schedule only; nothing of
        // it has been written yet, so the pass goes on with the others.
        let (mut s, cron) = match load(ctx, &id).and_then(|s| match s {
            Some(s) => crons.get(&s.cron, &s.zone).map(|c| Some((s, c))),
            None => Ok(None),
        }) {
            Ok(Some(loaded)) => loaded,
            Ok(None) => {
                ctx.tx
                    .open_table(SCHEDULE_DUE)?
                    .remove((slot, id.as_str()))?;
                continue;
            }
            Err(e @ (Error::Corrupt { .. } | Error::InvalidArgument { .. })) => {
                let stored = load(ctx, &id).ok().flatten();
                if let Some(at) = failures::record(ctx, &id, slot, stored, &e, before, report)? {
                    lower(at);
                }
                continue;
            }
            Err(e) => return Err(e),
        };
        if before.is_some() {
            failures::clear(ctx, &id)?;
        }
        if !has_handler(&s.job.name) {
            if s.strict {
                rules::count_held(&id, report);
                lower(now.saturating_add(1_000));
                passed_over += 1;
                continue;
            }
            // Non-strict: advance past every due slot without running it.
            let passed = rules::pass_over(cron, slot, now);
            advance(ctx, &id, &mut s, passed.next, passed.dropped, report)?;
            continue;
        }
        // The slots due now. Those inside a misfire window came due while no scheduler ran
        // (the file was closed, the process was suspended, the wall clock stepped): the
        // policy decides which of them run. The others are on time and always run.
        let planned = rules::plan(&s, cron, slot, now, missed);
        if planned.more {
            // The rest stays due for the next pass, which comes at once.
            lower(now);
        }
        for slot in planned.run {
            let job = s.job.job_with_key(format!("{id}:{slot}"));
            let outcome = submit::submit(ctx, &job, None, fx)?;
            if !outcome.deduplicated {
                rules::count_submitted(&mut s, &id, slot, report);
            }
        }
        advance(ctx, &id, &mut s, planned.next, planned.dropped, report)?;
    }
    let first = ctx
        .tx
        .open_table(SCHEDULE_DUE)?
        .first()?
        .map(|(k, _)| k.value().0);
    Ok([first.filter(|f| *f > now), retry_at]
        .into_iter()
        .flatten()
        .min())
}

/// Moves the schedule on to `next` and saves it.
fn advance(
    ctx: &TxCtx<'_>,
    id: &str,
    s: &mut ScheduleV1,
    next: Option<u64>,
    dropped: u64,
    report: &mut DispatchReport,
) -> Result<()> {
    let old = s.next_run;
    rules::advance(s, id, next, dropped, report);
    save(ctx, id, s, old)
}
