//! Trigger: the schedule's job is submitted now with a manual key; the cron position stays.

use crate::error::Result;
use crate::job::Submitted;
use crate::job::effects::Effects;
use crate::job::ops::submit;
use crate::scheduler::schedules::load;
use crate::store::TxCtx;

/// Submits schedule `id`'s job with the key `manual:{id}:{key}`; `None` if no such schedule
/// is registered (an answer, not a failed op: the batch it rides in goes on).
pub(crate) fn trigger(
    ctx: &mut TxCtx<'_>,
    id: &str,
    key: &str,
    fx: &mut Effects,
) -> Result<Option<Submitted>> {
    let Some(s) = load(ctx, id)? else {
        return Ok(None);
    };
    let job = s.job.job_with_key(format!("manual:{id}:{key}"));
    let out = submit::submit(ctx, &job, None, fx)?;
    Ok(Some(Submitted {
        id: out.id,
        deduplicated: out.deduplicated,
    }))
}
