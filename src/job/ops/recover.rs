//! Hand back running attempts: all of them at open (their process is dead: the lock proves
//! it), or one at graceful shutdown.

use redb::ReadableTable;

use crate::error::{Error, Result};
use crate::job::effects::Effects;
use crate::job::metrics::JobMetric;
use crate::job::record::{EventKindV1, JobStateV1};
use crate::job::tables::JOB_LEASES;
use crate::job::transition::{
    enter_queued, enter_terminal, leave_state, load, owns, push_event, save,
};
use crate::store::TxCtx;

/// Puts every job left running by a dead process back in line at once, charging its crash
/// budget but not its attempts; a job past its budget fails with `CRASH_LOOP`. Returns how many
/// were put back and how many failed.
pub(crate) fn recover(ctx: &mut TxCtx<'_>, fx: &mut Effects) -> Result<(usize, usize)> {
    crate::job::transition::tally_once(ctx)?;
    let running: Vec<u64> = ctx
        .table(JOB_LEASES)?
        .iter()?
        .map(|e| e.map(|(k, _)| k.value().1))
        .collect::<Result<_, _>>()?;
    let (mut requeued, mut failed) = (0, 0);
    for id in running {
        let mut job = load(ctx, id)?.ok_or_else(|| Error::Corrupt {
            table: "job_leases",
            detail: format!("lease entry points at missing job {id}"),
        })?;
        let JobStateV1::Running { attempt, epoch, .. } = job.state else {
            return Err(Error::Corrupt {
                table: "job_leases",
                detail: format!("job {id} has a lease but is not running"),
            });
        };
        leave_state(ctx, id, &job)?;
        job.crashes += 1;
        if job.crashes > job.crash_budget {
            let error = job.crash_loop(attempt);
            job.last_error = Some(error.clone());
            enter_terminal(ctx, id, &mut job, JobStateV1::Failed { at: ctx.now }, fx)?;
            push_event(ctx, id, &mut job, EventKindV1::Failed { error }, fx)?;
            crate::job::effects::count(
                ctx,
                fx,
                JobMetric::Failed {
                    name: job.name.clone(),
                    attempt,
                    code: "CRASH_LOOP".into(),
                    run_ms: 0,
                },
            )?;
            failed += 1;
        } else {
            job.attempts = job.attempts.saturating_sub(1);
            enter_queued(ctx, id, &mut job, ctx.now, fx)?;
            let reason = job.recovered_reason(attempt, &format!("epoch {epoch}"));
            push_event(ctx, id, &mut job, EventKindV1::Recovered { reason }, fx)?;
            crate::job::effects::count(
                ctx,
                fx,
                JobMetric::Recovered {
                    name: job.name.clone(),
                },
            )?;
            requeued += 1;
        }
        save(ctx, id, &job)?;
    }
    Ok((requeued, failed))
}

/// Hands an unfinished attempt back at shutdown, charging neither an attempt nor the crash
/// budget. Returns false when the attempt no longer owns the job.
pub(crate) fn release(
    ctx: &mut TxCtx<'_>,
    id: u64,
    attempt: u32,
    epoch: u64,
    fx: &mut Effects,
) -> Result<bool> {
    let Some(mut job) = load(ctx, id)? else {
        return Ok(false);
    };
    if !owns(&job, attempt, epoch) {
        return Ok(false);
    }
    leave_state(ctx, id, &job)?;
    job.attempts = job.attempts.saturating_sub(1);
    enter_queued(ctx, id, &mut job, ctx.now, fx)?;
    let reason = format!("attempt {attempt} was handed back unfinished at shutdown");
    push_event(ctx, id, &mut job, EventKindV1::Recovered { reason }, fx)?;
    save(ctx, id, &job)?;
    Ok(true)
}

/// Hands back every attempt in `attempts` at once, as [`release`] does one: the attempts a
/// shutdown's deadline left unfinished share one commit. Returns how many were handed back.
pub(crate) fn release_all(
    ctx: &mut TxCtx<'_>,
    attempts: &[(u64, u32)],
    epoch: u64,
    fx: &mut Effects,
) -> Result<usize> {
    let mut released = 0;
    for &(id, attempt) in attempts {
        if release(ctx, id, attempt, epoch, fx)? {
            released += 1;
        }
    }
    Ok(released)
}
