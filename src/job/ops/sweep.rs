//! The job timer's pass: delayed jobs coming due, attempts past their lease or timeout, and
//! terminal jobs past retention, each in bounded batches.

use crate::error::{Error, Result};
use crate::index::{due, next_at};
use crate::job::effects::Effects;
use crate::job::record::JobStateV1;
use crate::job::signal::StopReason;
use crate::job::tables::{JOB_DELAYED, JOB_LEASES, JOB_PURGES, JOB_RETENTION};
use crate::job::transition::{
    enter_queued, erase, leave_state, load, purge_at, save, settle_failure,
};
use crate::store::TxCtx;

/// Does up to `limit` items of each kind of due work. Returns the next instant at which there
/// is work (now, if the limit left some).
pub(crate) fn sweep(ctx: &mut TxCtx<'_>, limit: usize, fx: &mut Effects) -> Result<Option<u64>> {
    let now = ctx.now;
    let delayed = ids(due(&**ctx.table(JOB_DELAYED)?, now, limit)?);
    for id in delayed {
        let Some(mut job) = load(ctx, id)? else {
            return Err(missing("job_delayed", id));
        };
        leave_state(ctx, id, &job)?;
        enter_queued(ctx, id, &mut job, now, fx)?;
        save(ctx, id, &job)?;
    }
    let expired = ids(due(&**ctx.table(JOB_LEASES)?, now, limit)?);
    for id in expired {
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
        fx.signals.push((id, attempt, StopReason::TimedOut));
        let failure = job.expired(attempt, lease_deadline, now);
        settle_failure(ctx, id, &mut job, failure, true, fx)?;
    }
    // Entries a file of an earlier version wrote, one row each, then the grouped ones.
    let legacy = due(&**ctx.table(JOB_RETENTION)?, now, limit)?;
    for key in &legacy {
        ctx.table(JOB_RETENTION)?.remove(*key)?;
    }
    let grouped = ctx.take_due_grouped(JOB_PURGES, limit.saturating_sub(legacy.len()))?;
    for (at, id) in legacy.into_iter().chain(grouped) {
        // A job deleted, or re-run (it then has a later entry), since the entry was made is
        // skipped.
        if let Some(job) = load(ctx, id)?
            && purge_at(&job) == Some(at)
        {
            erase(ctx, id, &job)?;
        }
    }
    let firsts = [
        next_at(&**ctx.table(JOB_DELAYED)?)?,
        next_at(&**ctx.table(JOB_LEASES)?)?,
        next_at(&**ctx.table(JOB_RETENTION)?)?,
        next_at(&**ctx.table(JOB_PURGES)?)?,
    ];
    Ok(firsts.into_iter().flatten().min())
}

/// The ids of time-index keys.
fn ids(keys: Vec<(u64, u64)>) -> Vec<u64> {
    keys.into_iter().map(|(_, id)| id).collect()
}

fn missing(table: &'static str, id: u64) -> Error {
    Error::Corrupt {
        table,
        detail: format!("index entry points at missing job {id}"),
    }
}
