//! The scheduler's storage seam: its named operations and reads.

use super::cron::{CronCache, CronSchedule};
use super::failures::ScheduleDeadLetter;
use super::metrics::DispatchReport;
use super::spec::{Misfire, Registered, ScheduleInfo};
use crate::error::Result;
use crate::job::Submitted;
use crate::job::ops::submit::NewJob;

/// A schedule to register (or replace).
#[derive(Debug, Clone)]
pub(crate) struct ScheduleRegister {
    pub(crate) id: String,
    /// The expression and zone as given, and parsed.
    pub(crate) cron_text: String,
    pub(crate) zone: String,
    pub(crate) cron: CronSchedule,
    /// The job each slot submits (its key is set per slot).
    pub(crate) job: NewJob,
    pub(crate) misfire: Misfire,
    pub(crate) max_catch_up: u32,
    pub(crate) strict: bool,
}

/// What a dispatch pass needs from the engine's process-local scheduler state.
pub(crate) trait DispatchHost: Send + Sync {
    /// The windows (`from..to`) of wall-clock time in which no scheduler ran, looked at once
    /// the pass's `now` is fixed.
    fn missed_windows(&self) -> Vec<(u64, u64)>;
    /// Whether this process has a handler for job definition `name`.
    fn has_handler(&self, name: &str) -> bool;
    /// The parsed expressions, kept between passes.
    fn crons(&self) -> std::sync::MutexGuard<'_, CronCache>;
}

/// The named operations and reads of the scheduler.
pub(crate) trait ScheduleStorage {
    /// Registers or replaces a schedule; what happened, and its next slot.
    async fn register(&self, register: ScheduleRegister) -> Result<(Registered, Option<u64>)>;
    /// Removes a schedule; whether it existed.
    async fn remove(&self, id: &str) -> Result<bool>;
    /// Submits the schedule's job now with the key `manual:{id}:{key}`.
    async fn trigger(&self, id: &str, key: &str) -> Result<Submitted>;
    /// The schedule `id`, if registered.
    async fn get(&self, id: &str) -> Result<Option<ScheduleInfo>>;
    /// Every schedule, by id.
    async fn list(&self) -> Result<Vec<ScheduleInfo>>;
    /// The slots given up after failing to dispatch, by schedule id and slot.
    async fn dead_letters(&self) -> Result<Vec<ScheduleDeadLetter>>;
    /// Removes the dead letters of schedule `id`; how many there were.
    async fn clear_dead_letters(&self, id: &str) -> Result<u64>;
    /// One dispatch pass over at most `limit` due schedules; the next instant with work.
    async fn dispatch(
        &self,
        host: std::sync::Arc<dyn DispatchHost>,
        limit: usize,
    ) -> Result<(Option<u64>, DispatchReport)>;
}
