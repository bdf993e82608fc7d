//! The cron scheduler: schedules that submit a typed job for every slot of a cron expression in
//! a time zone, with misfire policies for slots missed while no process held the file.

pub(crate) mod cron;
mod failures;
mod metrics;
pub(crate) mod ops;
pub(crate) mod record;
mod schedules;
pub(crate) mod tables;

use std::sync::Arc;

use redb::ReadableTable;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Result, check_name};
use crate::job::JobHandle;
use crate::job::core::JobCore;
use crate::job::ops::submit;
use crate::primitive::{Primitive, Work};
use crate::store::codec::decode;
use crate::store::{SchemaTable, TxCtx};
use crate::timer::Timer;
pub(crate) use cron::CronSchedule;
pub(crate) use failures::decode_records as decode_failure_records;
pub use failures::{MAX_DISPATCH_FAILURES, ScheduleDeadLetter};
use metrics::Counters;
pub use metrics::DispatchReport;
pub use metrics::{SchedulerMetric, SchedulerMetricCallback, SchedulerMetrics};
use record::{JobTemplateV1, MisfireV1, ScheduleV1, StoredSchedule};
use tables::SCHEDULES;

/// Schedules handled per timer pass.
const DISPATCH_LIMIT: usize = 256;

/// How far the wall clock may move beyond the time that passed between two passes before the
/// difference counts as a jump (a suspend or a clock step) whose slots are misfires; at least
/// 0.1% of the time that passed, twice the most NTP slews the clock.
const JUMP_THRESHOLD_MS: u64 = 1_000;

/// Jump windows kept besides the one before the open; older ones are forgotten.
const MAX_MISSED_WINDOWS: usize = 16;

/// What to do with slots missed while no process held the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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
    id: String,
    cron: String,
    zone: String,
    misfire: Misfire,
    max_catch_up: u32,
    strict: bool,
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

/// What [`Scheduler::register`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registered {
    /// A new schedule.
    Created,
    /// An existing schedule was replaced; its next slot was recomputed only if the cron
    /// expression or zone changed.
    Updated,
}

/// A schedule as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
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

fn info(id: String, s: ScheduleV1) -> ScheduleInfo {
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

#[derive(Debug)]
pub(crate) struct SchedulerCore {
    pub(crate) jobs: Arc<JobCore>,
    pub(crate) timer: Timer,
    /// Windows (`from..to`) of wall-clock time in which no scheduler ran: before the open,
    /// and each jump seen since (newest last, at most [`MAX_MISSED_WINDOWS`]).
    missed: std::sync::Mutex<Vec<(u64, u64)>>,
    /// The wall clock and the elapsed count at the last pass; see [`Clock::now_with_elapsed_ms`](crate::Clock::now_with_elapsed_ms).
    observed: std::sync::Mutex<(u64, u64)>,
    counters: Counters,
    /// Parsed expressions, for the passes (which run on the writer thread, one at a time).
    crons: std::sync::Mutex<cron::CronCache>,
}

impl SchedulerCore {
    pub(crate) fn new(jobs: Arc<JobCore>, callback: Option<SchedulerMetricCallback>) -> Self {
        SchedulerCore {
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

    /// Notes a jump of the wall clock since the last pass (it moved further than the time
    /// that passed) as a window of missed slots, and returns the windows.
    fn missed_windows(&self) -> Vec<(u64, u64)> {
        let clock = self.jobs.store.clock();
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

    async fn pass_with_report(self: &Arc<Self>) -> Result<(Option<u64>, DispatchReport)> {
        let core = self.clone();
        let outcome = self
            .jobs
            .write(move |ctx, fx| {
                // Looked at in the writer, after the transaction's `now` was read: a jump seen
                // by an earlier look would otherwise be missing from this pass.
                let missed = core.missed_windows();
                let mut report = DispatchReport::default();
                let has_handler = |name: &str| core.jobs.has_handler(name);
                let mut crons = core.crons.lock().unwrap_or_else(|p| p.into_inner());
                let next = ops::dispatch::dispatch(
                    ctx,
                    &missed,
                    DISPATCH_LIMIT,
                    &has_handler,
                    &mut crons,
                    fx,
                    &mut report,
                )?;
                Ok((next, report))
            })
            .await;
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
        ctx.after_commit(move || {
            let (opened_at, elapsed_at_open) = self.jobs.store.clock().now_with_elapsed_ms();
            *self.missed.lock().unwrap_or_else(|p| p.into_inner()) = vec![(0, opened_at)];
            *self.observed.lock().unwrap_or_else(|p| p.into_inner()) = (opened_at, elapsed_at_open);
            self.timer.lower(opened_at);
            self.counters.record(SchedulerMetric::LeaderAcquired);
        });
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

/// The cron scheduler of an engine. Get it from [`Engine::scheduler`](crate::Engine::scheduler).
#[derive(Debug, Clone)]
pub struct Scheduler {
    core: Arc<SchedulerCore>,
}

impl Scheduler {
    pub(crate) fn new(core: Arc<SchedulerCore>) -> Self {
        Scheduler { core }
    }

    /// Registers (or replaces) the schedule `spec.id`, submitting `input` to `job` for every
    /// slot. Idempotent by id: when the expression and zone are unchanged the next slot is
    /// kept; otherwise it is recomputed from now.
    ///
    /// Errors: [`Error::InvalidArgument`](crate::Error::InvalidArgument) naming the `cron` expression or the `time zone` that
    /// does not parse, an expression that never matches (`0 0 30 2 *`), or a bad id; nothing
    /// is written then.
    pub async fn register<I, O>(
        &self,
        spec: ScheduleSpec,
        job: &JobHandle<I, O>,
        input: I,
    ) -> Result<Registered>
    where
        I: Serialize + DeserializeOwned + Send + 'static,
        O: Serialize + DeserializeOwned + Send + 'static,
    {
        check_name("schedule id", &spec.id)?;
        let cron = CronSchedule::parse(&spec.cron, &spec.zone)?;
        // An expression that never matches (February 30) is a mistake, not a schedule. The
        // day and month fields tell at once; a search for its next slot would take croner
        // long, and better here than in the writer.
        let now = self.core.jobs.store.clock().now_ms();
        if !cron.ever_matches(now) || cron.next_after(now).is_none() {
            return Err(crate::Error::invalid(
                "cron",
                format!(
                    "{:?} in {} never matches from now on; check the day and month fields",
                    spec.cron, spec.zone
                ),
            ));
        }
        let template = JobTemplateV1::from_new_job(job.submit(input).prepare()?);
        let id_for_metrics = spec.id.clone();
        let core = self.core.clone();
        let registered = self
            .core
            .jobs
            .write(move |ctx, _| {
                let existing = schedules::load(ctx, &spec.id)?;
                let now = ctx.now;
                let (next_run, dispatched, dropped, old_next, created) = match &existing {
                    Some(old)
                        if old.cron == spec.cron
                            && old.zone == spec.zone
                            && old.next_run.is_some() =>
                    {
                        (
                            old.next_run,
                            old.dispatched,
                            old.dropped,
                            old.next_run,
                            false,
                        )
                    }
                    Some(old) => (
                        cron.next_after(now.saturating_sub(1)),
                        old.dispatched,
                        old.dropped,
                        old.next_run,
                        false,
                    ),
                    None => (cron.next_after(now.saturating_sub(1)), 0, 0, None, true),
                };
                let s = ScheduleV1 {
                    cron: spec.cron.clone(),
                    zone: spec.zone.clone(),
                    job: template.clone(),
                    misfire: spec.misfire.into(),
                    max_catch_up: spec.max_catch_up,
                    strict: spec.strict,
                    next_run,
                    dispatched,
                    dropped,
                };
                schedules::save(ctx, &spec.id, &s, old_next)?;
                failures::clear(ctx, &spec.id)?;
                if let Some(at) = next_run {
                    let core = core.clone();
                    ctx.after_commit(move || core.timer.lower(at));
                }
                Ok(if created {
                    Registered::Created
                } else {
                    Registered::Updated
                })
            })
            .await?;
        let id = id_for_metrics;
        self.core.counters.record(match registered {
            Registered::Created => SchedulerMetric::ScheduleRegistered { id },
            Registered::Updated => SchedulerMetric::ScheduleUpdated { id },
        });
        Ok(registered)
    }

    /// Removes a schedule; returns whether it existed. Jobs it already submitted go on.
    pub async fn unregister(&self, id: &str) -> Result<bool> {
        let owned = id.to_string();
        let removed = self
            .core
            .jobs
            .write(move |ctx, _| ops::remove::remove(ctx, &owned))
            .await?;
        if removed {
            self.core
                .counters
                .record(SchedulerMetric::ScheduleUnregistered { id: id.to_string() });
        }
        Ok(removed)
    }

    /// The dead-letter list: slots given up after
    /// [`MAX_DISPATCH_FAILURES`](crate::MAX_DISPATCH_FAILURES) failed dispatches in a row, by
    /// schedule id and slot. Such a schedule is stopped (`next_run_ms` is `None`) until it is
    /// registered again.
    pub fn dead_letters(&self) -> Result<Vec<ScheduleDeadLetter>> {
        self.core.jobs.store.read(failures::list)
    }

    /// Removes the dead letters of schedule `id`; returns how many there were.
    pub async fn clear_dead_letters(&self, id: &str) -> Result<u64> {
        let owned = id.to_string();
        self.core
            .jobs
            .write(move |ctx, _| failures::clear_dead(ctx, &owned))
            .await
    }

    /// Counters since this engine opened.
    pub fn metrics(&self) -> SchedulerMetrics {
        self.core
            .counters
            .values
            .lock()
            .map(|m| *m)
            .unwrap_or_default()
    }

    /// The schedule `id`, if registered.
    pub fn get(&self, id: &str) -> Result<Option<ScheduleInfo>> {
        self.core.jobs.store.read(|rtx| {
            let table = rtx.open_table(SCHEDULES)?;
            let Some(b) = table.get(id)? else {
                return Ok(None);
            };
            let StoredSchedule::V1(s) = decode("schedules", b.value())?;
            Ok(Some(info(id.to_string(), s)))
        })
    }

    /// Every schedule, by id.
    pub fn list(&self) -> Result<Vec<ScheduleInfo>> {
        self.core.jobs.store.read(|rtx| {
            let table = rtx.open_table(SCHEDULES)?;
            let mut out = Vec::new();
            for item in table.iter()? {
                let (k, v) = item?;
                let StoredSchedule::V1(s) = decode("schedules", v.value())?;
                out.push(info(k.value().to_string(), s));
            }
            Ok(out)
        })
    }

    /// Submits the schedule's job now with its stored input and the key
    /// `manual:{id}:{key}`, leaving the cron position alone. The same key gives the same job.
    ///
    /// Errors: [`Error::InvalidArgument`](crate::Error::InvalidArgument) for an unknown schedule.
    pub async fn trigger_now(&self, id: &str, key: &str) -> Result<crate::job::Submitted> {
        check_name("trigger key", key)?;
        let schedule = id.to_string();
        let (owned, key) = (id.to_string(), key.to_string());
        let outcome = self
            .core
            .jobs
            .write(move |ctx, fx| {
                let Some(s) = schedules::load(ctx, &owned)? else {
                    return Ok(Err(schedules::unknown(&owned)));
                };
                let job = s.job.job_with_key(format!("manual:{owned}:{key}"));
                let out = submit::submit(ctx, &job, None, fx)?;
                Ok(Ok((out.id, out.deduplicated)))
            })
            .await
            .and_then(|r| r);
        let id = schedule;
        match &outcome {
            Ok((_, false)) => self
                .core
                .counters
                .record(SchedulerMetric::TriggerSubmitted { id }),
            Ok((_, true)) => self
                .core
                .counters
                .record(SchedulerMetric::TriggerRejected { id }),
            Err(e) => self.core.counters.record(SchedulerMetric::TriggerFailed {
                id,
                error: e.to_string(),
            }),
        }
        let (job_id, deduplicated) = outcome?;
        Ok(crate::job::Submitted {
            id: job_id,
            deduplicated,
        })
    }

    /// Runs the dispatch that is due now and waits for it to commit (with a manual clock,
    /// call it after advancing the clock). Returns what it did.
    pub async fn tick(&self) -> Result<DispatchReport> {
        let (next, report) = self.core.pass_with_report().await?;
        if let Some(at) = next {
            self.core.timer.lower(at);
        }
        Ok(report)
    }
}
