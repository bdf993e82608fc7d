//! What a caller says and sees of a schedule: its spec, its misfire policy, its stored form.

use super::record::{MisfireV1, ScheduleV1};
use serde::{Deserialize, Serialize};

/// What to do with slots missed while no process held the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Misfire {
    /// Drop missed slots; the next on-time slot runs (the default). A slot that comes due
    /// while the engine runs is never dropped.
    #[default]
    Skip,
    /// Run the latest missed slot, then continue on time.
    CatchUpOne,
    /// Run every missed slot, oldest first, at most `max_catch_up` in all; the rest are
    /// dropped and counted.
    CatchUpAll,
}

impl From<Misfire> for MisfireV1 {
    fn from(m: Misfire) -> Self {
        match m {
            Misfire::Skip => MisfireV1::Skip,
            Misfire::CatchUpOne => MisfireV1::CatchUpOne,
            Misfire::CatchUpAll => MisfireV1::CatchUpAll,
        }
    }
}

impl From<MisfireV1> for Misfire {
    fn from(m: MisfireV1) -> Self {
        match m {
            MisfireV1::Skip => Misfire::Skip,
            MisfireV1::CatchUpOne => Misfire::CatchUpOne,
            MisfireV1::CatchUpAll => Misfire::CatchUpAll,
        }
    }
}

/// A schedule: its id, cron expression and options. Defaults: zone UTC, [`Misfire::Skip`],
/// at most 100 catch-up runs, strict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleSpec {
    pub(super) id: String,
    pub(super) cron: String,
    pub(super) zone: String,
    pub(super) misfire: Misfire,
    pub(super) max_catch_up: u32,
    pub(super) strict: bool,
}

impl ScheduleSpec {
    /// A schedule `id` on `cron`: 5 fields (`0 * * * *`: minute hour day month weekday) or 6
    /// with seconds first.
    pub fn new(id: impl Into<String>, cron: impl Into<String>) -> Self {
        ScheduleSpec {
            id: id.into(),
            cron: cron.into(),
            zone: "UTC".into(),
            misfire: Misfire::Skip,
            max_catch_up: 100,
            strict: true,
        }
    }

    /// The IANA time zone the expression is read in. Default `UTC`.
    pub fn zone(mut self, zone: impl Into<String>) -> Self {
        self.zone = zone.into();
        self
    }

    /// The misfire policy. Default [`Misfire::Skip`].
    pub fn misfire(mut self, misfire: Misfire) -> Self {
        self.misfire = misfire;
        self
    }

    /// The most missed slots [`Misfire::CatchUpAll`] runs. Default 100.
    pub fn max_catch_up(mut self, n: u32) -> Self {
        self.max_catch_up = n;
        self
    }

    /// Strict (the default): while no handler for the job runs in this process, a due slot
    /// stays due (checked again every second). Non-strict: such slots are advanced past and
    /// counted as dropped.
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }
}

/// What [`Scheduler::register`](crate::Scheduler::register) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Registered {
    /// A new schedule.
    Created,
    /// An existing schedule was replaced; its next slot was recomputed only if the cron
    /// expression or zone changed.
    Updated,
}

/// A schedule as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ScheduleInfo {
    /// Its id.
    pub id: String,
    /// The cron expression.
    pub cron: String,
    /// The time zone.
    pub zone: String,
    /// The job definition it submits.
    pub job: String,
    /// The misfire policy.
    pub misfire: Misfire,
    /// The next slot (UTC ms), if the expression matches again.
    pub next_run_ms: Option<u64>,
    /// Jobs submitted for slots so far.
    pub dispatched: u64,
    /// Slots dropped (misfire policy, or no handler on a non-strict schedule).
    pub dropped: u64,
}

pub(super) fn info(id: String, s: ScheduleV1) -> ScheduleInfo {
    ScheduleInfo {
        id,
        cron: s.cron,
        zone: s.zone,
        job: s.job.name,
        misfire: s.misfire.into(),
        next_run_ms: s.next_run,
        dispatched: s.dispatched,
        dropped: s.dropped,
    }
}
