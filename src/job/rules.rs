//! What every job backend decides the same way about a record, whatever stores it: the record
//! a submit makes, which jobs may be retried or deleted, the failures and reasons recorded when
//! an attempt's process dies or its time runs out, what a progress report changes, and how a
//! claim applies a definition's start limit.

use super::effects::Claimed;
use super::info::JobState;
use super::ops::submit::NewJob;
use super::record::{DependencyV1, EventKindV1, FailureV1, JobStateV1, JobV1};
use super::storage::{Claim, ProgressUpdate};
use crate::error::{Error, Result};
use crate::ratelimit::window::{Counts, Window};

impl JobV1 {
    /// The record of `new`, stored at `now`, before its first event and its queued state.
    pub(crate) fn submitted(new: &NewJob, input: Vec<u8>, input_apart: bool, now: u64) -> JobV1 {
        JobV1 {
            name: new.name.clone(),
            input,
            priority: new.priority,
            key: new.key.clone(),
            meta: new.meta.clone(),
            max_attempts: new.max_attempts,
            backoff: new.backoff,
            lease_ms: new.lease_ms,
            timeout_ms: new.timeout_ms,
            retention_ms: new.retention_ms,
            crash_budget: new.crash_budget,
            created_at: now,
            attempts: 0,
            crashes: 0,
            state: JobStateV1::Queued {
                ready_seq: None,
                run_at: 0,
            },
            last_error: None,
            progress: None,
            progress_items: None,
            next_event: 0,
            updated_at: now,
            inline_events: Vec::new(),
            input_apart,
            after: new.after.clone(),
            has_dependents: false,
            batch: None,
        }
    }

    /// Only a failed or timed-out job may be retried.
    pub(crate) fn check_retryable(&self, id: u64) -> Result<()> {
        if matches!(
            self.state,
            JobStateV1::Failed { .. } | JobStateV1::TimedOut { .. }
        ) {
            return Ok(());
        }
        Err(Error::invalid(
            "job",
            format!(
                "job {id} is {}; only failed or timed-out jobs can be retried",
                super::info::state_name(&self.state)
            ),
        ))
    }

    /// Only a finished job may be deleted.
    pub(crate) fn check_deletable(&self, id: u64) -> Result<()> {
        if self.state.finished_code().is_some() {
            return Ok(());
        }
        Err(Error::invalid(
            "job",
            format!(
                "job {id} is {}; cancel it before deleting it",
                super::info::state_name(&self.state)
            ),
        ))
    }

    /// The failure of a job whose process died more often than its crash budget allows
    /// (`crashes` already counts this death).
    pub(crate) fn crash_loop(&self, attempt: u32) -> FailureV1 {
        FailureV1 {
            code: "CRASH_LOOP".into(),
            message: format!(
                "the process running this job died {} times, more than its crash budget of {}",
                self.crashes, self.crash_budget
            ),
            attempt,
        }
    }

    /// Why a job whose process died is back in line; `runner` names what ran it
    /// (`epoch 3`, `node 7`).
    pub(crate) fn recovered_reason(&self, attempt: u32, runner: &str) -> String {
        format!(
            "the process running attempt {attempt} ({runner}) died; crash {} of {} allowed",
            self.crashes, self.crash_budget
        )
    }

    /// The failure of an attempt found past its lease (at `lease_deadline`) or its timeout
    /// at `now`.
    pub(crate) fn expired(&self, attempt: u32, lease_deadline: u64, now: u64) -> FailureV1 {
        let message = if lease_deadline <= now {
            format!(
                "attempt {attempt} neither finished nor sent a heartbeat within its lease of {} ms",
                self.lease_ms
            )
        } else {
            format!(
                "attempt {attempt} ran past its timeout of {} ms",
                self.timeout_ms.unwrap_or_default()
            )
        };
        FailureV1 {
            code: "TIMEOUT".into(),
            message,
            attempt,
        }
    }
}

impl ProgressUpdate {
    /// Stores this report as the job's latest progress; the event that records it.
    pub(crate) fn apply(&self, job: &mut JobV1) -> EventKindV1 {
        let (percent, stage) = (self.percent, self.stage.clone());
        job.progress = Some((percent, stage.clone()));
        job.progress_items = self.items;
        match self.items {
            None => EventKindV1::Progress { percent, stage },
            Some((done, total)) => EventKindV1::ProgressItems {
                percent,
                stage,
                done,
                total,
            },
        }
    }
}

/// How many of `max` free slots may take a job now under the start limit `rate`, whose
/// window's counts are `stored`; with the window, for [`settle_claim`].
pub(crate) fn start_room(
    rate: Option<Window>,
    stored: Option<Counts>,
    now: u64,
    max: usize,
) -> (usize, Option<(Window, Counts)>) {
    match rate {
        None => (max, None),
        Some(rate) => {
            let (counts, room) = rate.room(stored, now);
            let room = usize::try_from(room).unwrap_or(usize::MAX).min(max);
            (room, Some((rate, counts)))
        }
    }
}

/// The claim that started `jobs` with `room` of `max` slots allowed (`left`: ready jobs
/// remain), and the start limit's counts to store when any started.
pub(crate) fn settle_claim(
    jobs: Vec<Claimed>,
    (room, max): (usize, usize),
    left: bool,
    window: Option<(Window, Counts)>,
    now: u64,
) -> (Claim, Option<Counts>) {
    let mut claim = Claim {
        more: left && room == max,
        jobs,
        limited_until: None,
    };
    let Some((rate, mut counts)) = window else {
        return (claim, None);
    };
    counts.current = counts.current.saturating_add(claim.jobs.len() as u64);
    // The window held ready jobs back: the workers claim again when it has room.
    if left && !claim.more {
        claim.limited_until = Some(now.saturating_add(rate.wait(&counts, now)));
    }
    let started = !claim.jobs.is_empty();
    (claim, started.then_some(counts))
}

/// How a job that another runs after stands for that dependent.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DependencyVerdict {
    /// It has not ended.
    Pending,
    /// It ended as the dependent needs: completed, or any way with `allow_failure`.
    Met,
    /// It ended another way: the dependent is cancelled with this reason.
    Broken(String),
}

/// What dependency `dep` (job `name`, in `state`) means for the job that runs after it.
pub(crate) fn dependency_verdict(
    dep: &DependencyV1,
    name: &str,
    state: JobState,
) -> DependencyVerdict {
    match state {
        JobState::Waiting | JobState::Queued | JobState::Running => DependencyVerdict::Pending,
        JobState::Completed => DependencyVerdict::Met,
        _ if dep.allow_failure => DependencyVerdict::Met,
        ended => DependencyVerdict::Broken(format!(
            "job {} ({name}), which this job runs after, ended {}",
            dep.id,
            ended.as_str()
        )),
    }
}
