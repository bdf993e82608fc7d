//! Dependencies: a job submitted to run after others waits until they have ended, then is
//! queued, or cancelled when one it needed to complete did not.
//!
//! Both happen in the transaction that ends the job waited for (see
//! [`enter_terminal`](crate::job::transition::enter_terminal)), so no crash can leave a
//! dependent waiting for a job that has ended, or release it twice.

use redb::ReadableTable;

use crate::error::{Error, Result};
use crate::job::effects::Effects;
use crate::job::info::JobState;
use crate::job::record::{DependencyV1, EventKindV1, JobStateV1};
use crate::job::rules::{DependencyVerdict, dependency_verdict};
use crate::job::tables::JOB_DEPENDENTS;
use crate::job::transition::{enter_queued, leave_state, load, push_event, save};
use crate::store::TxCtx;

/// How a new job's dependencies stand at its submit.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AtSubmit {
    /// All have ended as it needs: queue it.
    Met,
    /// This many have not ended: it waits, listed under each of them.
    Wait(u32),
    /// One ended in a way it cannot run after: cancel it with this reason.
    Broken(String),
}

/// Reads the jobs that job `id` (being submitted) runs after: each must exist. When some have
/// not ended, lists `id` under each of those in the dependents table.
pub(crate) fn at_submit(ctx: &mut TxCtx<'_>, id: u64, after: &[DependencyV1]) -> Result<AtSubmit> {
    if after.is_empty() {
        return Ok(AtSubmit::Met);
    }
    let mut pending = Vec::new();
    for dep in after {
        let mut job = load(ctx, dep.id)?.ok_or_else(|| {
            Error::invalid(
                "after",
                format!(
                    "job {} does not exist (or was already removed); \
                     a job can run only after jobs that exist",
                    dep.id
                ),
            )
        })?;
        match dependency_verdict(dep, &job.name, JobState::of(&job.state)) {
            DependencyVerdict::Pending => {
                if !job.has_dependents {
                    job.has_dependents = true;
                    save(ctx, dep.id, &job)?;
                }
                pending.push(dep.id);
            }
            DependencyVerdict::Met => {}
            DependencyVerdict::Broken(reason) => return Ok(AtSubmit::Broken(reason)),
        }
    }
    if pending.is_empty() {
        return Ok(AtSubmit::Met);
    }
    let dependents = ctx.table(JOB_DEPENDENTS)?;
    for &dep in &pending {
        dependents.insert((dep, id), ())?;
    }
    Ok(AtSubmit::Wait(pending.len() as u32))
}

/// Job `ended` (of definition `name`) has just reached terminal `state`: each job waiting
/// for it counts it off, and is queued when it was the last one, or is cancelled when it
/// needed it to complete, and the jobs waiting for that one in turn likewise (a worklist, not
/// a recursion, so a long chain cancels in one pass).
pub(crate) fn release_dependents(
    ctx: &mut TxCtx<'_>,
    ended: u64,
    name: &str,
    state: JobState,
    fx: &mut Effects,
) -> Result<()> {
    let mut ended_jobs = vec![(ended, name.to_string(), state)];
    while let Some((ended, name, state)) = ended_jobs.pop() {
        let waiting: Vec<u64> = {
            let dependents = ctx.table(JOB_DEPENDENTS)?;
            let ids = dependents
                .range((ended, 0)..=(ended, u64::MAX))?
                .map(|e| e.map(|(k, _)| k.value().1))
                .collect::<Result<Vec<_>, _>>()?;
            for &id in &ids {
                dependents.remove((ended, id))?;
            }
            ids
        };
        for id in waiting {
            // Gone (deleted) or no longer waiting (cancelled by hand): nothing to release.
            let Some(mut job) = load(ctx, id)? else {
                continue;
            };
            let JobStateV1::Waiting { run_at, remaining } = job.state else {
                continue;
            };
            let dep = job
                .after
                .iter()
                .find(|d| d.id == ended)
                .copied()
                .unwrap_or(DependencyV1 {
                    id: ended,
                    allow_failure: false,
                });
            match dependency_verdict(&dep, &name, state) {
                DependencyVerdict::Broken(reason) => {
                    if cancel_waiting(ctx, id, &mut job, reason, fx)? {
                        ended_jobs.push((id, job.name, JobState::Cancelled));
                    }
                }
                _ if remaining > 1 => {
                    job.state = JobStateV1::Waiting {
                        run_at,
                        remaining: remaining - 1,
                    };
                    save(ctx, id, &job)?;
                }
                _ => {
                    leave_state(ctx, id, &job)?;
                    enter_queued(ctx, id, &mut job, run_at.max(ctx.now), fx)?;
                    push_event(ctx, id, &mut job, EventKindV1::DependenciesMet, fx)?;
                    save(ctx, id, &job)?;
                }
            }
        }
    }
    Ok(())
}

/// Cancels a waiting job whose dependency ended the wrong way; whether jobs wait for it, which
/// the caller then releases in turn.
fn cancel_waiting(
    ctx: &mut TxCtx<'_>,
    id: u64,
    job: &mut crate::job::record::JobV1,
    reason: String,
    fx: &mut Effects,
) -> Result<bool> {
    let has_dependents = std::mem::take(&mut job.has_dependents);
    leave_state(ctx, id, job)?;
    super::cancel::settle_cancelled(ctx, id, job, reason, fx)?;
    Ok(has_dependents)
}
