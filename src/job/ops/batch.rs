//! Batches: jobs grouped so that callback jobs run once all of them have ended.
//!
//! A member's end is counted in the transaction that ends it (see
//! [`settle_terminal`](crate::job::transition::settle_terminal)), and the member that ends a
//! sealed batch submits its callbacks in that same transaction: no crash can lose them or
//! submit them twice.

use redb::ReadableTable;

use super::submit::submit;
use crate::error::{Error, Result};
use crate::job::batch::BatchOutcome;
use crate::job::effects::Effects;
use crate::job::info::JobState;
use crate::job::record::{BatchV1, JobTemplateV1, JobV1, StoredBatch};
use crate::job::tables::{JOB_BATCH_MEMBERS, JOB_BATCHES};
use crate::store::TxCtx;
use crate::store::codec::{decode, encode};

const BATCH_COUNTER: &str = "next:batch";

impl BatchV1 {
    /// Members ended, however.
    pub(crate) fn done(&self) -> u64 {
        self.ended.iter().sum()
    }

    /// The outcome of batch `id` as its callbacks get it.
    pub(crate) fn outcome(&self, id: u64) -> BatchOutcome {
        BatchOutcome {
            batch: id,
            total: self.total,
            completed: self.ended[0],
            failed: self.ended[1],
            cancelled: self.ended[2],
            timed_out: self.ended[3],
        }
    }
}

/// The slot of `ended` in [`BatchV1::ended`].
fn slot(ended: JobState) -> Option<usize> {
    match ended {
        JobState::Completed => Some(0),
        JobState::Failed => Some(1),
        JobState::Cancelled => Some(2),
        JobState::TimedOut => Some(3),
        _ => None,
    }
}

pub(crate) fn load(ctx: &mut TxCtx<'_>, id: u64) -> Result<Option<BatchV1>> {
    match ctx.table(JOB_BATCHES)?.get(id)? {
        Some(bytes) => {
            let StoredBatch::V1(batch) = decode("job_batches", bytes.value())?;
            Ok(Some(batch))
        }
        None => Ok(None),
    }
}

fn load_known(ctx: &mut TxCtx<'_>, id: u64) -> Result<BatchV1> {
    load(ctx, id)?.ok_or_else(|| unknown(id))
}

pub(crate) fn unknown(id: u64) -> Error {
    Error::UnknownBatch { id }
}

fn save(ctx: &mut TxCtx<'_>, id: u64, batch: &BatchV1) -> Result<()> {
    let bytes = encode(&StoredBatch::V1(batch.clone()));
    ctx.table(JOB_BATCHES)?.insert(id, bytes.as_slice())?;
    Ok(())
}

/// Stores a new, open batch with its callbacks; its id.
pub(crate) fn open(
    ctx: &mut TxCtx<'_>,
    on_complete: Option<JobTemplateV1>,
    on_success: Option<JobTemplateV1>,
) -> Result<u64> {
    let id = ctx.next_id(BATCH_COUNTER)?;
    let batch = BatchV1 {
        created_at: ctx.now,
        sealed: false,
        total: 0,
        ended: [0; 4],
        on_complete,
        on_success,
        finished_at: None,
        callbacks: Vec::new(),
    };
    save(ctx, id, &batch)?;
    Ok(id)
}

/// Makes job `id` (being submitted) a member of batch `batch_id`, which must be open.
pub(crate) fn join(ctx: &mut TxCtx<'_>, batch_id: u64, id: u64, job: &mut JobV1) -> Result<()> {
    let mut batch = load_known(ctx, batch_id)?;
    if batch.sealed {
        return Err(Error::invalid(
            "batch",
            format!("batch {batch_id} is sealed; jobs join a batch only before it is sealed"),
        ));
    }
    batch.total += 1;
    save(ctx, batch_id, &batch)?;
    ctx.table(JOB_BATCH_MEMBERS)?.insert((batch_id, id), ())?;
    job.batch = Some(batch_id);
    Ok(())
}

/// Seals batch `id`: no member joins from now on. Its callbacks fire now if every member has
/// ended already. False if it was sealed before.
pub(crate) fn seal(ctx: &mut TxCtx<'_>, id: u64, fx: &mut Effects) -> Result<bool> {
    let mut batch = load_known(ctx, id)?;
    if batch.sealed {
        return Ok(false);
    }
    batch.sealed = true;
    finish_if_done(ctx, id, &mut batch, fx)?;
    save(ctx, id, &batch)?;
    Ok(true)
}

/// A member of batch `id` has just ended in state `ended`: counts it, and when it was the last
/// of a sealed batch, submits the callbacks.
pub(crate) fn member_ended(
    ctx: &mut TxCtx<'_>,
    id: u64,
    ended: JobState,
    fx: &mut Effects,
) -> Result<()> {
    let (Some(mut batch), Some(slot)) = (load(ctx, id)?, slot(ended)) else {
        return Ok(());
    };
    batch.ended[slot] += 1;
    finish_if_done(ctx, id, &mut batch, fx)?;
    save(ctx, id, &batch)
}

/// A member of batch `id` leaves its terminal state `ended` (retried by hand, or removed):
/// it no longer counts as ended. A batch that already finished does not finish again.
pub(crate) fn member_reopened(ctx: &mut TxCtx<'_>, id: u64, ended: JobState) -> Result<()> {
    let (Some(mut batch), Some(slot)) = (load(ctx, id)?, slot(ended)) else {
        return Ok(());
    };
    batch.ended[slot] = batch.ended[slot].saturating_sub(1);
    save(ctx, id, &batch)
}

/// Member `job` of batch `id` is removed: the batch counts it no more, and goes too once it
/// has finished and has no member left.
pub(crate) fn member_removed(ctx: &mut TxCtx<'_>, id: u64, job: u64) -> Result<()> {
    ctx.table(JOB_BATCH_MEMBERS)?.remove((id, job))?;
    let Some(mut batch) = load(ctx, id)? else {
        return Ok(());
    };
    batch.total = batch.total.saturating_sub(1);
    if batch.total == 0 && batch.finished_at.is_some() {
        ctx.table(JOB_BATCHES)?.remove(id)?;
        return Ok(());
    }
    save(ctx, id, &batch)
}

/// Submits the callbacks of a sealed batch whose members have all ended, once.
fn finish_if_done(
    ctx: &mut TxCtx<'_>,
    id: u64,
    batch: &mut BatchV1,
    fx: &mut Effects,
) -> Result<()> {
    if !batch.sealed || batch.finished_at.is_some() || batch.done() < batch.total {
        return Ok(());
    }
    batch.finished_at = Some(ctx.now);
    let outcome = batch.outcome(id);
    let input = serde_json::to_vec(&outcome)
        .map_err(|e| Error::Internal(format!("encoding a batch outcome: {e}")))?;
    let all_completed = outcome.completed == outcome.total;
    let callbacks = batch
        .on_complete
        .iter()
        .chain(batch.on_success.iter().filter(|_| all_completed))
        .map(|c| c.job(input.clone(), None))
        .collect::<Vec<_>>();
    for new in callbacks {
        let done = submit(ctx, &new, None, fx)?;
        batch.callbacks.push(done.id);
    }
    Ok(())
}

/// Up to `limit` members of batch `id` after member `after`, with whether more follow.
pub(crate) fn members(
    members: &impl ReadableTable<(u64, u64), ()>,
    id: u64,
    after: Option<u64>,
    limit: usize,
) -> Result<(Vec<u64>, bool)> {
    let from = after.map_or(0, |a| a.saturating_add(1));
    let mut ids = Vec::with_capacity(limit.min(1024));
    for entry in members.range((id, from)..=(id, u64::MAX))? {
        if ids.len() == limit {
            return Ok((ids, true));
        }
        ids.push(entry?.0.value().1);
    }
    Ok((ids, false))
}

/// Cancels the members of batch `id` that have not ended, looking at up to `limit` members
/// after member `after`; how many it cancelled and where to go on.
pub(crate) fn cancel_page(
    ctx: &mut TxCtx<'_>,
    id: u64,
    reason: &str,
    after: Option<u64>,
    limit: usize,
    fx: &mut Effects,
) -> Result<(usize, Option<u64>)> {
    load_known(ctx, id)?;
    let (ids, more) = members(&**ctx.table(JOB_BATCH_MEMBERS)?, id, after, limit)?;
    let mut cancelled = 0;
    for &job in &ids {
        if super::cancel::cancel(ctx, job, reason, fx)? == super::cancel::Cancelled::Done {
            cancelled += 1;
        }
    }
    Ok((cancelled, more.then(|| ids.last().copied()).flatten()))
}
