//! State shared by the scheduler's handles and its timer: the missed windows, the counters,
//! the parsed expressions; and its part in the engine.

use std::sync::Arc;

use super::backend::ScheduleBackend;
use super::cron;
use super::metrics::{
    Counters, DispatchReport, SchedulerMetric, SchedulerMetricCallback, SchedulerMetrics,
};
use super::redb::RedbSchedules;
use super::storage::{DispatchHost, ScheduleStorage};
use super::tables;
use crate::error::Result;
use crate::job::core::JobCore;
use crate::primitive::{Primitive, Work};
use crate::store::{SchemaTable, TxCtx};
use crate::timer::Timer;

/// Schedules handled per timer pass.
const DISPATCH_LIMIT: usize = 256;

/// How far the wall clock may move beyond the time that passed between two passes before the
/// difference counts as a jump (a suspend or a clock step) whose slots are misfires; at least
/// 0.1% of the time that passed, twice the most NTP slews the clock.
const JUMP_THRESHOLD_MS: u64 = 1_000;

/// Jump windows kept besides the one before the open; older ones are forgotten.
const MAX_MISSED_WINDOWS: usize = 16;

#[derive(Debug)]
pub(crate) struct SchedulerCore {
    pub(crate) jobs: Arc<JobCore>,
    pub(super) backend: ScheduleBackend,
    pub(crate) timer: Timer,
    /// Windows (`from..to`) of wall-clock time in which no scheduler ran: before the open,
    /// and each jump seen since (newest last, at most [`MAX_MISSED_WINDOWS`]).
    missed: std::sync::Mutex<Vec<(u64, u64)>>,
    /// The wall clock and the elapsed count at the last pass; see [`Clock::now_with_elapsed_ms`](crate::Clock::now_with_elapsed_ms).
    observed: std::sync::Mutex<(u64, u64)>,
    pub(super) counters: Counters,
    /// Parsed expressions, for the passes (which run on the writer thread, one at a time).
    crons: std::sync::Mutex<cron::CronCache>,
}

impl SchedulerCore {
    pub(crate) fn new(jobs: Arc<JobCore>, callback: Option<SchedulerMetricCallback>) -> Self {
        let backend = match jobs.redb() {
            Some(_) => ScheduleBackend::Redb(RedbSchedules::new(jobs.clone())),
            #[cfg(feature = "postgres")]
            None => ScheduleBackend::Postgres(super::postgres::PgSchedules::new(jobs.clone())),
            #[cfg(not(feature = "postgres"))]
            None => unreachable!("jobs are in the file when PostgreSQL is not built in"),
        };
        SchedulerCore {
            backend,
            jobs,
            timer: Timer::new(None),
            missed: std::sync::Mutex::new(Vec::new()),
            observed: std::sync::Mutex::new((0, 0)),
            counters: Counters {
                values: std::sync::Mutex::new(SchedulerMetrics::default()),
                callback,
            },
            crons: std::sync::Mutex::new(cron::CronCache::default()),
        }
    }

    /// One dispatch pass; returns the next deadline.
    pub(crate) async fn pass(self: &Arc<Self>) -> Result<Option<u64>> {
        Ok(self.pass_with_report().await?.0)
    }

    pub(super) async fn pass_with_report(
        self: &Arc<Self>,
    ) -> Result<(Option<u64>, DispatchReport)> {
        let host: Arc<dyn DispatchHost> = self.clone();
        let outcome = self.backend.dispatch(host, DISPATCH_LIMIT).await;
        match &outcome {
            Ok((_, report)) => {
                for event in &report.events {
                    self.counters.record(event.clone());
                }
            }
            Err(e) => self.counters.record(SchedulerMetric::TickFailed {
                error: e.to_string(),
            }),
        }
        outcome
    }
}

impl SchedulerCore {
    /// Notes that no scheduler of this process ran until now (the file opened, or the node
    /// joined); the first pass, at once, settles the slots missed meanwhile by their misfire
    /// policies.
    pub(crate) fn started(&self) {
        let (opened_at, elapsed_at_open) = self.jobs.clock.now_with_elapsed_ms();
        *self.missed.lock().unwrap_or_else(|p| p.into_inner()) = vec![(0, opened_at)];
        *self.observed.lock().unwrap_or_else(|p| p.into_inner()) = (opened_at, elapsed_at_open);
        self.timer.lower(opened_at);
        self.counters.record(SchedulerMetric::LeaderAcquired);
    }
}

impl DispatchHost for SchedulerCore {
    /// Notes a jump of the wall clock since the last pass (it moved further than the time
    /// that passed) as a window of missed slots, and returns the windows.
    fn missed_windows(&self) -> Vec<(u64, u64)> {
        let clock = &self.jobs.clock;
        let (wall, elapsed) = clock.now_with_elapsed_ms();
        let mut missed = self.missed.lock().unwrap_or_else(|p| p.into_inner());
        let mut observed = self.observed.lock().unwrap_or_else(|p| p.into_inner());
        let (last_wall, last_elapsed) = *observed;
        let passed = elapsed.saturating_sub(last_elapsed);
        let jump = wall.saturating_sub(last_wall).saturating_sub(passed);
        // NTP slews the wall clock by up to 0.05%: between passes a day apart that is over
        // 40 s, which must not pass for a jump (it would drop a slot due at the pass).
        if jump > JUMP_THRESHOLD_MS.max(passed / 1_000) {
            tracing::warn!(
                jump_ms = jump,
                "the wall clock jumped (a suspend or a clock step); slots due inside the jump follow their misfire policy"
            );
            missed.push((wall - jump, wall));
            if missed.len() > MAX_MISSED_WINDOWS {
                missed.remove(1);
            }
        }
        *observed = (wall, elapsed);
        missed.clone()
    }

    fn has_handler(&self, name: &str) -> bool {
        self.jobs.has_handler(name)
    }

    fn crons(&self) -> std::sync::MutexGuard<'_, cron::CronCache> {
        self.crons.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Primitive for SchedulerCore {
    fn name(&self) -> &'static str {
        "scheduler"
    }

    fn tables(&self) -> &'static [&'static dyn SchemaTable] {
        tables::TABLES
    }

    /// Notes that no scheduler ran until now; the first pass, at once, settles the slots
    /// missed meanwhile by their misfire policies.
    fn recover(self: Arc<Self>, ctx: &mut TxCtx<'_>, _epoch: u64) -> Result<()> {
        ctx.after_commit(move || self.started());
        Ok(())
    }

    fn timer(&self) -> Option<&Timer> {
        Some(&self.timer)
    }

    fn pass(self: Arc<Self>) -> Work<Result<Option<u64>>> {
        Box::pin(async move { SchedulerCore::pass(&self).await })
    }

    fn stopped(&self) {
        self.counters.record(SchedulerMetric::LeaderLost);
    }
}
