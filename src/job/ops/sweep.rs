//! The job timer's pass: delayed jobs coming due, attempts past their lease or timeout, and
//! terminal jobs past retention, each in bounded batches.

use redb::{ReadableTable, TableDefinition};

use super::{Effects, enter_queued, erase, leave_state, load, save, settle_failure};
use crate::error::{Error, Result};
use crate::job::record::{FailureV1, JobStateV1};
use crate::job::signal::StopReason;
use crate::store::TxCtx;
use crate::store::tables::{JOB_DELAYED, JOB_LEASES, JOB_RETENTION};

/// Does up to `limit` items of each kind of due work. Returns the next instant at which there
/// is work (now, if the limit left some).
pub(crate) fn sweep(ctx: &mut TxCtx<'_>, limit: usize, fx: &mut Effects) -> Result<Option<u64>> {
    let now = ctx.now;
    for id in due(ctx, JOB_DELAYED, now, limit)? {
        let Some(mut job) = load(ctx, id)? else {
            return Err(missing("job_delayed", id));
        };
        leave_state(ctx, id, &job)?;
        enter_queued(ctx, id, &mut job, now, fx)?;
        save(ctx, id, &job)?;
    }
    for id in due(ctx, JOB_LEASES, now, limit)? {
        let Some(mut job) = load(ctx, id)? else {
            return Err(missing("job_leases", id));
        };
        let JobStateV1::Running {
            attempt,
            lease_deadline,
            ..
        } = job.state
        else {
            return Err(Error::Corrupt {
                table: "job_leases",
                detail: format!("job {id} has a lease but is not running"),
            });
        };
        let message = if lease_deadline <= now {
            format!(
                "attempt {attempt} neither finished nor sent a heartbeat within its lease of {} ms",
                job.lease_ms
            )
        } else {
            format!(
                "attempt {attempt} ran past its timeout of {} ms",
                job.timeout_ms.unwrap_or_default()
            )
        };
        fx.signals.push((id, attempt, StopReason::TimedOut));
        let failure = FailureV1 {
            code: "TIMEOUT".into(),
            message,
            attempt,
        };
        settle_failure(ctx, id, &mut job, failure, true, fx)?;
    }
    for id in due(ctx, JOB_RETENTION, now, limit)? {
        let Some(job) = load(ctx, id)? else {
            return Err(missing("job_retention", id));
        };
        erase(ctx, id, &job)?;
    }
    let mut next: Option<u64> = None;
    for table in [JOB_DELAYED, JOB_LEASES, JOB_RETENTION] {
        if let Some(first) = ctx.tx.open_table(table)?.first()? {
            let at = first.0.value().0;
            next = Some(next.map_or(at, |n| n.min(at)));
        }
    }
    Ok(next)
}

fn due(
    ctx: &TxCtx<'_>,
    table: TableDefinition<(u64, u64), ()>,
    now: u64,
    limit: usize,
) -> Result<Vec<u64>> {
    ctx.tx
        .open_table(table)?
        .range(..=(now, u64::MAX))?
        .take(limit)
        .map(|e| e.map(|(k, _)| k.value().1).map_err(Error::from))
        .collect()
}

fn missing(table: &'static str, id: u64) -> Error {
    Error::Corrupt {
        table,
        detail: format!("index entry points at missing job {id}"),
    }
}
