//! Dispatch failures of single schedules, and the scheduler's dead-letter list.
//!
//! A schedule fails to dispatch when its stored record, expression or zone no longer reads (a
//! damaged file, or a build whose cron or time-zone rules differ from the one that stored it).
//! Such a failure is found before anything of the schedule is written, so the pass goes on
//! with the other schedules. The schedule is tried again after 1, 2, 4 and 8 s; the fifth
//! failure in a row moves its slot to the dead-letter list and stops the schedule until it is
//! registered again.

use redb::{ReadableTable, ReadableTableMetadata};
use serde::{Deserialize, Serialize};

use super::metrics::DispatchReport;
use super::metrics::SchedulerMetric;
use super::record::ScheduleV1;
use super::schedules;
use super::tables::{SCHEDULE_DEAD, SCHEDULE_DUE, SCHEDULE_FAILURES};
use crate::error::{Error, Result};
use crate::store::TxCtx;
use crate::store::codec::{decode, encode};

/// Failures in a row after which a schedule's slot is dead-lettered and the schedule stops.
pub const MAX_DISPATCH_FAILURES: u32 = 5;

/// The wait before the first retry; each further retry waits twice as long.
const FIRST_RETRY_MS: u64 = 1_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
enum StoredFailure {
    V1(FailureV1),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct FailureV1 {
    slot: u64,
    count: u32,
    retry_at: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum StoredDeadLetter {
    V1(DeadLetterV1),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct DeadLetterV1 {
    failures: u32,
    error: String,
    at: u64,
}

/// A slot that could not be dispatched, from [`Scheduler::dead_letters`](crate::Scheduler::dead_letters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ScheduleDeadLetter {
    /// The schedule id.
    pub id: String,
    /// The slot that failed (UTC ms).
    pub slot_ms: u64,
    /// Failures in a row before it was given up.
    pub failures: u32,
    /// The last error.
    pub error: String,
    /// When it was given up (engine clock, ms).
    pub at_ms: u64,
}

/// A schedule's failure count so far, if its last attempt failed.
pub(crate) struct Failing {
    count: u32,
    /// Not before this instant is the schedule tried again.
    pub(crate) retry_at: u64,
}

/// Whether any schedule is failing: when none is, a pass need not look each one up.
pub(crate) fn any(ctx: &TxCtx<'_>) -> Result<bool> {
    Ok(!ctx.tx.open_table(SCHEDULE_FAILURES)?.is_empty()?)
}

pub(crate) fn failing(ctx: &TxCtx<'_>, id: &str) -> Result<Option<Failing>> {
    let table = ctx.tx.open_table(SCHEDULE_FAILURES)?;
    let Some(b) = table.get(id)? else {
        return Ok(None);
    };
    let StoredFailure::V1(f) = decode("schedule_failures", b.value())?;
    Ok(Some(Failing {
        count: f.count,
        retry_at: f.retry_at,
    }))
}

/// Forgets a schedule's failures: it dispatched, or was registered or removed.
pub(crate) fn clear(ctx: &TxCtx<'_>, id: &str) -> Result<()> {
    ctx.tx.open_table(SCHEDULE_FAILURES)?.remove(id)?;
    Ok(())
}

/// Counts a failed dispatch of `id`'s due `slot`. `schedule` is the stored schedule when its
/// record still decodes. Returns when to try again, or `None` once the slot is dead-lettered.
pub(crate) fn record(
    ctx: &TxCtx<'_>,
    id: &str,
    slot: u64,
    schedule: Option<ScheduleV1>,
    error: &Error,
    before: Option<Failing>,
    report: &mut DispatchReport,
) -> Result<Option<u64>> {
    let count = before.map_or(0, |f| f.count).saturating_add(1);
    let message = error.to_string();
    if let Some(retry_at) = failed(report, id, slot, count, &message, ctx.now) {
        let bytes = encode(&StoredFailure::V1(FailureV1 {
            slot,
            count,
            retry_at,
        }));
        ctx.tx
            .open_table(SCHEDULE_FAILURES)?
            .insert(id, bytes.as_slice())?;
        return Ok(Some(retry_at));
    }
    let bytes = encode(&StoredDeadLetter::V1(DeadLetterV1 {
        failures: count,
        error: message.clone(),
        at: ctx.now,
    }));
    ctx.tx
        .open_table(SCHEDULE_DEAD)?
        .insert((id, slot), bytes.as_slice())?;
    clear(ctx, id)?;
    // The failure is in what this build cannot read, so no next slot can be computed: the
    // schedule stops here until it is registered again.
    match schedule {
        Some(mut s) => {
            let old = s.next_run.take();
            schedules::save(ctx, id, &s, old)?;
        }
        None => {
            ctx.tx.open_table(SCHEDULE_DUE)?.remove((slot, id))?;
        }
    }
    dead_lettered(report, id, slot, count, message);
    Ok(None)
}

/// Reports the `count`th failure in a row of `id`'s `slot`; when to try again, or `None` when
/// the slot is to be dead-lettered (the backend then stores it, and stops the schedule).
pub(crate) fn failed(
    report: &mut DispatchReport,
    id: &str,
    slot: u64,
    count: u32,
    message: &str,
    now: u64,
) -> Option<u64> {
    tracing::warn!(schedule = id, slot_ms = slot, failures = count, error = %message, "schedule dispatch failed");
    report.failed += 1;
    report.events.push(SchedulerMetric::DispatchFailed {
        id: id.to_string(),
        slot_ms: slot,
        failures: count,
        error: message.to_string(),
    });
    (count < MAX_DISPATCH_FAILURES)
        .then(|| now.saturating_add(FIRST_RETRY_MS << (count - 1).min(20)))
}

/// Reports that `id`'s `slot` was dead-lettered after `count` failures.
pub(crate) fn dead_lettered(
    report: &mut DispatchReport,
    id: &str,
    slot: u64,
    count: u32,
    message: String,
) {
    tracing::error!(
        schedule = id,
        slot_ms = slot,
        "schedule dead-lettered after {count} failed dispatches"
    );
    report.events.push(SchedulerMetric::DeadLettered {
        id: id.to_string(),
        slot_ms: slot,
        error: message,
    });
}

/// The dead-letter list, by schedule id and slot.
pub(crate) fn list(rtx: &redb::ReadTransaction) -> Result<Vec<ScheduleDeadLetter>> {
    let table = rtx.open_table(SCHEDULE_DEAD)?;
    let mut out = Vec::new();
    for item in table.iter()? {
        let (k, v) = item?;
        let (id, slot) = k.value();
        let StoredDeadLetter::V1(d) = decode("schedule_dead", v.value())?;
        out.push(ScheduleDeadLetter {
            id: id.to_string(),
            slot_ms: slot,
            failures: d.failures,
            error: d.error,
            at_ms: d.at,
        });
    }
    Ok(out)
}

/// Checks that `bytes` decode as a stored failure and as a dead letter, for the fuzz targets.
#[cfg(feature = "testing")]
pub(crate) fn decode_records(bytes: &[u8]) -> [Result<()>; 2] {
    [
        decode::<StoredFailure>("schedule_failures", bytes).map(|_| ()),
        decode::<StoredDeadLetter>("schedule_dead", bytes).map(|_| ()),
    ]
}
