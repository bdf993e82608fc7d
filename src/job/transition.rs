//! Job state changes. Every op moves a job through these helpers, which keep the indexes,
//! gauges and event stream in step with the record, and collect in [`Effects`] what must
//! happen after the commit.

use redb::ReadableTable;

use super::effects::{Effects, count};
use super::info::JobState;
use super::metrics::JobMetric;
use super::record::{
    EventKindV1, EventV1, FailureV1, INLINE_EVENTS, JobStateV1, JobV1, StoredEvent, StoredJob,
    encode_job,
};
use super::tables::{
    JOB_DELAYED, JOB_EVENTS, JOB_FINISHED, JOB_INPUTS, JOB_KEYS, JOB_LEASES, JOB_PURGES, JOB_READY,
    JOB_STEPS, JOBS,
};
use crate::error::{Error, Result};
use crate::store::TxCtx;
use crate::store::codec::{decode, encode, priority_key};

pub(crate) const QUEUED_GAUGE: &str = "gauge:jobs_queued";
pub(crate) const RUNNING_GAUGE: &str = "gauge:jobs_running";
/// Meta keys `jobs_in:{state}:{name}`: how many jobs of each definition are in each state.
pub(crate) const TALLY_PREFIX: &str = "jobs_in:";
/// Set once the tallies count every job of the file (files from before them are counted once,
/// at an open).
const TALLIED: &str = "flag:jobs_tallied";
const ID_COUNTER: &str = "next:job";
const SEQ_COUNTER: &str = "next:job_seq";

pub(crate) fn load(ctx: &mut TxCtx<'_>, id: u64) -> Result<Option<JobV1>> {
    let table = ctx.table(JOBS)?;
    let Some(bytes) = table.get(id)? else {
        return Ok(None);
    };
    let stored: StoredJob = decode("jobs", bytes.value())?;
    Ok(Some(stored.into_job()))
}

pub(crate) fn load_known(ctx: &mut TxCtx<'_>, id: u64) -> Result<JobV1> {
    load(ctx, id)?.ok_or(Error::UnknownJob { id })
}

pub(crate) fn save(ctx: &mut TxCtx<'_>, id: u64, job: &JobV1) -> Result<()> {
    let bytes = encode_job(job);
    ctx.table(JOBS)?.insert(id, bytes.as_slice())?;
    Ok(())
}

pub(crate) fn new_id(ctx: &mut TxCtx<'_>) -> Result<u64> {
    ctx.next_id(ID_COUNTER)
}

/// Appends an event to the job's stream: into the record while it is one of the first
/// [`INLINE_EVENTS`], else as a row of the events table. The caller saves the job afterwards.
pub(crate) fn push_event(
    ctx: &mut TxCtx<'_>,
    id: u64,
    job: &mut JobV1,
    kind: EventKindV1,
    fx: &mut Effects,
) -> Result<()> {
    let seq = job.next_event;
    let event = EventV1 { at: ctx.now, kind };
    if job.inline_events.len() == seq as usize && job.inline_events.len() < INLINE_EVENTS {
        job.inline_events.push(event);
    } else {
        let bytes = encode(&StoredEvent::V1(event));
        ctx.table(JOB_EVENTS)?.insert((id, seq), bytes.as_slice())?;
    }
    job.next_event = seq.saturating_add(1);
    job.updated_at = ctx.now;
    fx.touched.push(id);
    Ok(())
}

/// Progress events are coalesced per second of the clock: a progress update in the same second
/// as the job's last event, when that event is a progress event too, replaces it.
const PROGRESS_WINDOW_MS: u64 = 1_000;

/// Emits a `progress` event, or overwrites the job's last event with it when that is a
/// progress event of the same second: a handler that reports per item writes at most one
/// progress event per second, each holding the latest value of its second. (A follower that
/// already read the overwritten event is not sent it again; the record's progress is always
/// the latest.)
pub(crate) fn push_progress(
    ctx: &mut TxCtx<'_>,
    id: u64,
    job: &mut JobV1,
    kind: EventKindV1,
    fx: &mut Effects,
) -> Result<()> {
    let Some(last) = job.next_event.checked_sub(1) else {
        return push_event(ctx, id, job, kind, fx);
    };
    let inline = (last as usize) < job.inline_events.len();
    let previous = if inline {
        Some(job.inline_events[last as usize].clone())
    } else {
        match ctx.table(JOB_EVENTS)?.get((id, last))? {
            Some(bytes) => {
                let StoredEvent::V1(event) = decode("job_events", bytes.value())?;
                Some(event)
            }
            None => None,
        }
    };
    let same_window = previous.is_some_and(|p| {
        matches!(
            p.kind,
            EventKindV1::Progress { .. } | EventKindV1::ProgressItems { .. }
        ) && p.at / PROGRESS_WINDOW_MS == ctx.now / PROGRESS_WINDOW_MS
    });
    if !same_window {
        return push_event(ctx, id, job, kind, fx);
    }
    let event = EventV1 { at: ctx.now, kind };
    if inline {
        job.inline_events[last as usize] = event;
    } else {
        let bytes = encode(&StoredEvent::V1(event));
        ctx.table(JOB_EVENTS)?
            .insert((id, last), bytes.as_slice())?;
    }
    job.updated_at = ctx.now;
    fx.touched.push(id);
    Ok(())
}

/// Removes the index entries of the job's current state.
pub(crate) fn leave_state(ctx: &mut TxCtx<'_>, id: u64, job: &JobV1) -> Result<()> {
    match &job.state {
        JobStateV1::Queued { ready_seq, run_at } => {
            match ready_seq {
                Some(seq) => {
                    ctx.table(JOB_READY)?.remove((
                        job.name.as_str(),
                        priority_key(job.priority),
                        *seq,
                    ))?;
                }
                None => {
                    ctx.table(JOB_DELAYED)?.remove((*run_at, id))?;
                }
            }
            tally(ctx, &job.name, JobState::Queued, -1)?;
        }
        running @ JobStateV1::Running { .. } => {
            if let Some(key) = running.lease_key() {
                ctx.remove_later(JOB_LEASES, (key, id));
            }
            tally(ctx, &job.name, JobState::Running, -1)?;
        }
        JobStateV1::Waiting { .. } => {
            // Its entries in the dependents table go when the jobs it waits for end.
            tally(ctx, &job.name, JobState::Waiting, -1)?;
        }
        terminal => {
            tally(ctx, &job.name, JobState::of(terminal), -1)?;
            if let Some(batch) = job.batch {
                super::ops::batch::member_reopened(ctx, batch, JobState::of(terminal))?;
            }
            // Its retention entry stays, to be skipped when it comes due (see `purge_at`).
            if let Some(code) = terminal.finished_code() {
                // A completed job has an entry only if an earlier version wrote it.
                ctx.table(JOB_FINISHED)?.remove((code, id))?;
            }
        }
    }
    Ok(())
}

/// Queues the job: ready at once when `run_at` has come, else delayed until then.
pub(crate) fn enter_queued(
    ctx: &mut TxCtx<'_>,
    id: u64,
    job: &mut JobV1,
    run_at: u64,
    fx: &mut Effects,
) -> Result<()> {
    if run_at <= ctx.now {
        let seq = ctx.next_id(SEQ_COUNTER)?;
        ctx.insert_ready(
            JOB_READY,
            (job.name.as_str(), priority_key(job.priority), seq),
            id,
        )?;
        job.state = JobStateV1::Queued {
            ready_seq: Some(seq),
            run_at,
        };
        fx.ready.push(job.name.clone());
    } else {
        ctx.table(JOB_DELAYED)?.insert((run_at, id), ())?;
        job.state = JobStateV1::Queued {
            ready_seq: None,
            run_at,
        };
        fx.deadline(run_at);
    }
    tally(ctx, &job.name, JobState::Queued, 1)
}

/// Starts attempt `attempt` under this leadership's `epoch`.
pub(crate) fn enter_running(
    ctx: &mut TxCtx<'_>,
    id: u64,
    job: &mut JobV1,
    attempt: u32,
    epoch: u64,
    fx: &mut Effects,
) -> Result<()> {
    job.state = JobStateV1::Running {
        attempt,
        epoch,
        started_at: ctx.now,
        lease_deadline: ctx.now.saturating_add(job.lease_ms),
        timeout_deadline: job.timeout_ms.map(|t| ctx.now.saturating_add(t)),
    };
    if let Some(key) = job.state.lease_key() {
        ctx.insert_indexed(JOB_LEASES, (key, id))?;
        fx.deadline(key);
    }
    tally(ctx, &job.name, JobState::Running, 1)
}

/// Moves the job to a terminal state and starts its retention; in the same transaction, the
/// jobs waiting for it are queued or cancelled (see [`depend`](super::ops::depend)). The
/// caller saves the job.
pub(crate) fn enter_terminal(
    ctx: &mut TxCtx<'_>,
    id: u64,
    job: &mut JobV1,
    state: JobStateV1,
    fx: &mut Effects,
) -> Result<()> {
    settle_terminal(ctx, id, job, state, fx)?;
    if std::mem::take(&mut job.has_dependents) {
        super::ops::depend::release_dependents(ctx, id, &job.name, JobState::of(&job.state), fx)?;
    }
    Ok(())
}

/// Moves the job to a terminal state and starts its retention, and counts it in its batch
/// (which may submit the batch's callbacks), leaving the jobs waiting for it to the caller.
pub(crate) fn settle_terminal(
    ctx: &mut TxCtx<'_>,
    id: u64,
    job: &mut JobV1,
    state: JobStateV1,
    fx: &mut Effects,
) -> Result<()> {
    tally(ctx, &job.name, JobState::of(&state), 1)?;
    job.state = state;
    if let (Some(code), Some(purge_at)) = (job.state.finished_code(), purge_at(job)) {
        if job.state.indexed_as_finished() {
            ctx.table(JOB_FINISHED)?.insert((code, id), ())?;
        }
        ctx.insert_grouped(JOB_PURGES, (purge_at, id));
        fx.deadline(purge_at);
    }
    if let Some(batch) = job.batch {
        super::ops::batch::member_ended(ctx, batch, JobState::of(&job.state), fx)?;
    }
    Ok(())
}

/// When a terminal job's retention ends; `None` for a job not ended. A retention entry for
/// another instant is stale: the job was re-run (or its record replaced) since.
pub(crate) fn purge_at(job: &JobV1) -> Option<u64> {
    let at = job.state.finished_at()?;
    Some(at.saturating_add(job.retention_ms))
}

/// Counts `delta` jobs of definition `name` into or out of `state`, and into the engine-wide
/// gauges of queued and running jobs.
pub(crate) fn tally(ctx: &mut TxCtx<'_>, name: &str, state: JobState, delta: i64) -> Result<()> {
    match state {
        JobState::Queued => ctx.adjust(QUEUED_GAUGE, delta)?,
        JobState::Running => ctx.adjust(RUNNING_GAUGE, delta)?,
        _ => {}
    }
    ctx.adjust_joined(&[TALLY_PREFIX, state.as_str(), ":", name], delta)
}

/// Counts every job of a file whose jobs were never tallied (one written before the tallies):
/// a walk of all jobs, once, at the open.
pub(crate) fn tally_once(ctx: &mut TxCtx<'_>) -> Result<()> {
    if crate::store::meta::read_counter(ctx.tx, TALLIED)? != 0 {
        return Ok(());
    }
    let mut counts: std::collections::HashMap<(JobState, String), u64> = Default::default();
    for entry in ctx.table(JOBS)?.iter()? {
        let (_, bytes) = entry?;
        let job = decode::<StoredJob>("jobs", bytes.value())?.into_job();
        *counts
            .entry((JobState::of(&job.state), job.name))
            .or_default() += 1;
    }
    for ((state, name), n) in counts {
        ctx.set_gauge(format!("{TALLY_PREFIX}{}:{name}", state.as_str()), n)?;
    }
    ctx.set_gauge(TALLIED, 1)
}

/// The running attempt's number, if `job` is running attempt `attempt` of leadership `epoch`.
pub(crate) fn owns(job: &JobV1, attempt: u32, epoch: u64) -> bool {
    matches!(job.state, JobStateV1::Running { attempt: a, epoch: e, .. } if a == attempt && e == epoch)
}

/// Settles a failed attempt: a retry after the backoff while attempts remain and the failure is
/// retryable, else the terminal state (`timed_out` for a timeout, `failed` otherwise).
pub(crate) fn settle_failure(
    ctx: &mut TxCtx<'_>,
    id: u64,
    job: &mut JobV1,
    failure: FailureV1,
    retryable: bool,
    fx: &mut Effects,
) -> Result<()> {
    let attempt = failure.attempt;
    let timed_out = failure.code == "TIMEOUT";
    let run_ms = match job.state {
        JobStateV1::Running { started_at, .. } => ctx.now.saturating_sub(started_at),
        _ => 0,
    };
    leave_state(ctx, id, job)?;
    job.last_error = Some(failure.clone());
    if retryable && job.attempts < job.max_attempts {
        let backoff: super::backoff::Backoff = job.backoff.into();
        let seed = id.rotate_left(17) ^ u64::from(attempt);
        let next_at = ctx.now.saturating_add(backoff.delay_ms(attempt, seed));
        enter_queued(ctx, id, job, next_at, fx)?;
        count(
            ctx,
            fx,
            JobMetric::Retried {
                name: job.name.clone(),
                attempt,
                code: failure.code.clone(),
                run_ms,
            },
        )?;
        push_event(
            ctx,
            id,
            job,
            EventKindV1::RetryScheduled {
                next_at,
                error: failure,
            },
            fx,
        )?;
    } else if timed_out {
        enter_terminal(ctx, id, job, JobStateV1::TimedOut { at: ctx.now }, fx)?;
        count(
            ctx,
            fx,
            JobMetric::TimedOut {
                name: job.name.clone(),
                attempt,
                run_ms,
            },
        )?;
        push_event(ctx, id, job, EventKindV1::TimedOut { error: failure }, fx)?;
    } else {
        enter_terminal(ctx, id, job, JobStateV1::Failed { at: ctx.now }, fx)?;
        count(
            ctx,
            fx,
            JobMetric::Failed {
                name: job.name.clone(),
                attempt,
                code: failure.code.clone(),
                run_ms,
            },
        )?;
        push_event(ctx, id, job, EventKindV1::Failed { error: failure }, fx)?;
    }
    save(ctx, id, job)
}

/// The job's input: `inline` from its record, or the one stored apart.
pub(crate) fn input_of(
    ctx: &mut TxCtx<'_>,
    id: u64,
    inline: Vec<u8>,
    apart: bool,
) -> Result<Vec<u8>> {
    if !apart {
        return Ok(inline);
    }
    crate::store::apart::read(&**ctx.table(JOB_INPUTS)?, "job_inputs", id)
}

/// Deletes the job with its events, steps, input and key.
pub(crate) fn erase(ctx: &mut TxCtx<'_>, id: u64, job: &JobV1) -> Result<()> {
    leave_state(ctx, id, job)?;
    if let Some(batch) = job.batch {
        super::ops::batch::member_removed(ctx, batch, id)?;
    }
    if job.input_apart {
        ctx.table(JOB_INPUTS)?.remove(id)?;
    }
    if let Some(key) = &job.key {
        let keys = ctx.table(JOB_KEYS)?;
        // Only remove the key if it still points at this job.
        let points_here = keys
            .get((job.name.as_str(), key.as_str()))?
            .is_some_and(|v| v.value() == id);
        if points_here {
            keys.remove((job.name.as_str(), key.as_str()))?;
        }
    }
    if job.next_event as usize > job.inline_events.len() {
        let events = ctx.table(JOB_EVENTS)?;
        let keys: Vec<(u64, u32)> = events
            .range((id, 0)..=(id, u32::MAX))?
            .map(|e| e.map(|(k, _)| k.value()))
            .collect::<Result<_, _>>()?;
        for k in keys {
            events.remove(k)?;
        }
    }
    {
        let steps = ctx.table(JOB_STEPS)?;
        let names: Vec<String> = steps
            .range((id, "")..)?
            .map_while(|e| match e {
                Ok((k, _)) if k.value().0 == id => Some(Ok(k.value().1.to_string())),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            })
            .collect::<Result<_, _>>()?;
        for name in names {
            steps.remove((id, name.as_str()))?;
        }
    }
    ctx.table(JOBS)?.remove(id)?;
    Ok(())
}
