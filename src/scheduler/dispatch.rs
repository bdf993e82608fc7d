//! The scheduler's write ops: each due slot becomes one job, submitted with the key
//! `{schedule_id}:{slot_ms}` in the same transaction that advances the schedule, so a slot is
//! never lost and never run twice, whatever crashes.

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::cron::CronCache;
use super::failures;
use super::tables::{SCHEDULE_DUE, SCHEDULES};
use crate::error::{Error, Result};
use crate::job::ops::Effects;
use crate::job::ops::submit::{self, NewJob};
use crate::job::record::BackoffV1;
use crate::store::TxCtx;
use crate::store::codec::{decode, encode};

/// On-time slots submitted at most per schedule and pass; the rest stay due for the next pass.
const MAX_ON_TIME: usize = 10_000;

/// Due-index entries read per pass, as a multiple of the schedules handled: room to pass over
/// schedules that are held or waiting to retry.
const SCAN_FACTOR: usize = 16;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum StoredSchedule {
    V1(ScheduleV1),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ScheduleV1 {
    pub(crate) cron: String,
    pub(crate) zone: String,
    pub(crate) job: JobTemplateV1,
    pub(crate) misfire: MisfireV1,
    pub(crate) max_catch_up: u32,
    pub(crate) strict: bool,
    pub(crate) next_run: Option<u64>,
    pub(crate) dispatched: u64,
    pub(crate) dropped: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum MisfireV1 {
    Skip,
    CatchUpOne,
    CatchUpAll,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct JobTemplateV1 {
    pub(crate) name: String,
    pub(crate) input: Vec<u8>,
    pub(crate) priority: i32,
    pub(crate) meta: Vec<(String, String)>,
    pub(crate) max_attempts: u32,
    pub(crate) backoff: BackoffV1,
    pub(crate) lease_ms: u64,
    pub(crate) timeout_ms: Option<u64>,
    pub(crate) retention_ms: u64,
    pub(crate) crash_budget: u32,
}

impl JobTemplateV1 {
    pub(crate) fn from_new_job(j: NewJob) -> Self {
        JobTemplateV1 {
            name: j.name,
            input: j.input,
            priority: j.priority,
            meta: j.meta,
            max_attempts: j.max_attempts,
            backoff: j.backoff,
            lease_ms: j.lease_ms,
            timeout_ms: j.timeout_ms,
            retention_ms: j.retention_ms,
            crash_budget: j.crash_budget,
        }
    }

    pub(crate) fn job_with_key(&self, key: String) -> NewJob {
        NewJob {
            name: self.name.clone(),
            input: self.input.clone(),
            priority: self.priority,
            key: Some(key),
            meta: self.meta.clone(),
            max_attempts: self.max_attempts,
            backoff: self.backoff,
            lease_ms: self.lease_ms,
            timeout_ms: self.timeout_ms,
            retention_ms: self.retention_ms,
            crash_budget: self.crash_budget,
            run_at: None,
        }
    }
}

pub(crate) fn load(ctx: &TxCtx<'_>, id: &str) -> Result<Option<ScheduleV1>> {
    let table = ctx.tx.open_table(SCHEDULES)?;
    let Some(b) = table.get(id)? else {
        return Ok(None);
    };
    let StoredSchedule::V1(s) = decode("schedules", b.value())?;
    Ok(Some(s))
}

/// Stores the schedule and moves its due-index entry from `old_next` to its `next_run`.
pub(crate) fn save(ctx: &TxCtx<'_>, id: &str, s: &ScheduleV1, old_next: Option<u64>) -> Result<()> {
    let bytes = encode(&StoredSchedule::V1(s.clone()));
    ctx.tx.open_table(SCHEDULES)?.insert(id, bytes.as_slice())?;
    let mut due = ctx.tx.open_table(SCHEDULE_DUE)?;
    if let Some(old) = old_next {
        due.remove((old, id))?;
    }
    if let Some(next) = s.next_run {
        due.insert((next, id), ())?;
    }
    Ok(())
}

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

/// What a dispatch pass did, for metrics and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DispatchReport {
    /// Jobs submitted for slots.
    pub submitted: u64,
    /// Missed slots dropped by the misfire policy, or advanced past without a handler.
    pub dropped: u64,
    /// Due slots held back because no handler for the job runs here (strict schedules).
    pub held: u64,
    /// Schedules whose due slot could not be dispatched (see
    /// [`SchedulerMetric::DispatchFailed`](crate::SchedulerMetric::DispatchFailed)).
    pub failed: u64,
    /// What happened, schedule by schedule, for the metrics callback.
    pub(crate) events: Vec<super::SchedulerMetric>,
}

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
                report.held += 1;
                report
                    .events
                    .push(super::SchedulerMetric::DispatchSkipped { id: id.clone() });
                lower(now.saturating_add(1_000));
                passed_over += 1;
                continue;
            }
            // Non-strict: advance past every due slot without running it.
            let dropped = cron.count_between(slot, now.saturating_add(1));
            let next = cron.next_after(now);
            advance(ctx, &id, &mut s, next, dropped, report)?;
            continue;
        }
        // The slots due now. Those inside a misfire window came due while no scheduler ran
        // (the file was closed, the process was suspended, the wall clock stepped): the
        // policy decides which of them run. The others are on time and always run.
        let mut run = Vec::new();
        let mut dropped = 0;
        let mut catch_up_left = u64::from(s.max_catch_up);
        let mut next = Some(slot);
        while let Some(n) = next.filter(|n| *n <= now) {
            let Some(&(_, window_end)) = missed.iter().find(|(from, to)| *from <= n && n < *to)
            else {
                run.push(n);
                next = cron.next_after(n);
                if run.len() >= MAX_ON_TIME {
                    // The rest stays due for the next pass, which comes at once.
                    lower(now);
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
            dropped += missed_here.saturating_sub(ran_here.len() as u64);
            run.extend(ran_here);
            next = cron.next_after(end - 1);
        }
        for slot in run {
            let job = s.job.job_with_key(format!("{id}:{slot}"));
            let outcome = submit::submit(ctx, &job, None, fx)?;
            if !outcome.deduplicated {
                s.dispatched += 1;
                report.submitted += 1;
                report
                    .events
                    .push(super::SchedulerMetric::DispatchSubmitted {
                        id: id.clone(),
                        slot_ms: slot,
                    });
            }
        }
        advance(ctx, &id, &mut s, next, dropped, report)?;
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

/// Moves the schedule on to `next`, counting the `dropped` slots it passed without running.
fn advance(
    ctx: &TxCtx<'_>,
    id: &str,
    s: &mut ScheduleV1,
    next: Option<u64>,
    dropped: u64,
    report: &mut DispatchReport,
) -> Result<()> {
    s.dropped += dropped;
    report.dropped += dropped;
    if dropped > 0 {
        report
            .events
            .push(super::SchedulerMetric::DispatchAdvanced {
                id: id.to_string(),
                slots: dropped,
            });
    }
    let old = s.next_run;
    s.next_run = next;
    save(ctx, id, s, old)
}

pub(crate) fn unknown(id: &str) -> Error {
    Error::invalid("schedule", format!("no schedule {id:?}"))
}

/// Checks that `bytes` decode as a stored schedule, for the fuzz targets.
pub(crate) fn decode_schedule_record(bytes: &[u8]) -> Result<()> {
    decode::<StoredSchedule>("schedules", bytes).map(|_| ())
}

/// Rewrites the stored expression and zone of schedule `id` in the closed file at `path`,
/// without checking them, the way a build with other cron or time-zone rules may have left
/// them. Returns whether the schedule existed.
pub(crate) fn rewrite_expression(
    path: &std::path::Path,
    id: &str,
    cron: &str,
    zone: &str,
) -> Result<bool> {
    let db = redb::Database::open(path).map_err(|e| Error::Storage(e.to_string()))?;
    let tx = db.begin_write()?;
    let found = {
        let mut table = tx.open_table(SCHEDULES)?;
        let stored = match table.get(id)? {
            Some(b) => Some(decode::<StoredSchedule>("schedules", b.value())?),
            None => None,
        };
        match stored {
            Some(StoredSchedule::V1(mut s)) => {
                s.cron = cron.to_string();
                s.zone = zone.to_string();
                table.insert(id, encode(&StoredSchedule::V1(s)).as_slice())?;
                true
            }
            None => false,
        }
    };
    tx.commit()?;
    Ok(found)
}
