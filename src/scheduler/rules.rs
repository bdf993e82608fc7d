//! The scheduler's rules, the same on every backend: what registering makes of a schedule,
//! and which slots of a due schedule run.

use super::cron::CronSchedule;
use super::metrics::{DispatchReport, SchedulerMetric};
use super::record::{JobTemplateV1, MisfireV1, ScheduleV1};
use super::spec::Registered;
use super::storage::ScheduleRegister;

/// The schedule `r` registers at `now` over the `existing` one: a replaced schedule keeps its
/// next slot and counts when its expression and zone are unchanged.
pub(crate) fn registered(
    existing: Option<&ScheduleV1>,
    r: &ScheduleRegister,
    now: u64,
) -> (ScheduleV1, Registered) {
    let fresh = || r.cron.next_after(now.saturating_sub(1));
    let (next_run, dispatched, dropped, registered) = match existing {
        Some(old) if old.cron == r.cron_text && old.zone == r.zone && old.next_run.is_some() => (
            old.next_run,
            old.dispatched,
            old.dropped,
            Registered::Updated,
        ),
        Some(old) => (fresh(), old.dispatched, old.dropped, Registered::Updated),
        None => (fresh(), 0, 0, Registered::Created),
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
    (s, registered)
}

/// On-time slots submitted at most per schedule and pass; the rest stay due for the next pass.
const MAX_ON_TIME: usize = 10_000;

/// What one pass does with one due schedule.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct SlotPlan {
    /// The slots to submit a job for, in order.
    pub(crate) run: Vec<u64>,
    /// Slots passed without running (misfire policy).
    pub(crate) dropped: u64,
    /// The schedule's next slot once these are submitted.
    pub(crate) next: Option<u64>,
    /// More on-time slots than one pass submits are due: pass again at once.
    pub(crate) more: bool,
}

/// The plan for schedule `s`, due since `slot`, at `now`. Slots inside a `missed` window
/// (`from..to`) came due while no scheduler ran (before the open, or across a suspend or a
/// wall-clock step): the misfire policy decides which of them run. Other slots always run.
pub(crate) fn plan(
    s: &ScheduleV1,
    cron: &CronSchedule,
    slot: u64,
    now: u64,
    missed: &[(u64, u64)],
) -> SlotPlan {
    let mut out = SlotPlan::default();
    let mut catch_up_left = u64::from(s.max_catch_up);
    let mut next = Some(slot);
    while let Some(n) = next.filter(|n| *n <= now) {
        let Some(&(_, window_end)) = missed.iter().find(|(from, to)| *from <= n && n < *to) else {
            out.run.push(n);
            next = cron.next_after(n);
            if out.run.len() >= MAX_ON_TIME {
                out.more = true;
                break;
            }
            continue;
        };
        let end = window_end.min(now.saturating_add(1));
        let missed_here = cron.count_between(n, end);
        let mut ran_here = Vec::new();
        match s.misfire {
            MisfireV1::Skip => {}
            MisfireV1::CatchUpOne => ran_here.extend(cron.prev_before(end)),
            MisfireV1::CatchUpAll => {
                let mut at = Some(n);
                while let Some(m) = at.filter(|m| *m < end && catch_up_left > 0) {
                    ran_here.push(m);
                    catch_up_left -= 1;
                    at = cron.next_after(m);
                }
            }
        }
        out.dropped += missed_here.saturating_sub(ran_here.len() as u64);
        out.run.extend(ran_here);
        next = cron.next_after(end - 1);
    }
    out.next = next;
    out
}

/// The plan for a non-strict schedule whose job has no handler: every due slot is passed.
pub(crate) fn pass_over(cron: &CronSchedule, slot: u64, now: u64) -> SlotPlan {
    SlotPlan {
        run: Vec::new(),
        dropped: cron.count_between(slot, now.saturating_add(1)),
        next: cron.next_after(now),
        more: false,
    }
}

/// Counts the job submitted for `id`'s `slot` (not one a retained job's key answered).
pub(crate) fn count_submitted(
    s: &mut ScheduleV1,
    id: &str,
    slot: u64,
    report: &mut DispatchReport,
) {
    s.dispatched += 1;
    report.submitted += 1;
    report.events.push(SchedulerMetric::DispatchSubmitted {
        id: id.to_string(),
        slot_ms: slot,
    });
}

/// Moves `id`'s schedule on to `next`, counting the `dropped` slots it passed without
/// running; the backend then saves it.
pub(crate) fn advance(
    s: &mut ScheduleV1,
    id: &str,
    next: Option<u64>,
    dropped: u64,
    report: &mut DispatchReport,
) {
    s.dropped += dropped;
    report.dropped += dropped;
    if dropped > 0 {
        report.events.push(SchedulerMetric::DispatchAdvanced {
            id: id.to_string(),
            slots: dropped,
        });
    }
    s.next_run = next;
}

/// Counts a due slot of `id` held back: no handler for its job here.
pub(crate) fn count_held(id: &str, report: &mut DispatchReport) {
    report.held += 1;
    report
        .events
        .push(SchedulerMetric::DispatchSkipped { id: id.to_string() });
}
