//! [`Scheduler`]: the handle to register, list and remove schedules.

use std::sync::Arc;

use redb::ReadableTable;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::core::SchedulerCore;
use super::cron::CronSchedule;
use super::failures::{self, ScheduleDeadLetter};
use super::metrics::{DispatchReport, SchedulerMetric, SchedulerMetrics};
use super::record::{JobTemplateV1, ScheduleV1, StoredSchedule};
use super::spec::{Registered, ScheduleInfo, ScheduleSpec, info};
use super::tables::SCHEDULES;
use super::{ops, schedules};
use crate::error::{Result, check_name};
use crate::job::JobHandle;
use crate::job::ops::submit;
use crate::store::codec::decode;

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
        let now = self.core.jobs.clock.now_ms();
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
            .redb()
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
            .redb()
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
        self.core.jobs.redb().store().read(failures::list)
    }

    /// Removes the dead letters of schedule `id`; returns how many there were.
    pub async fn clear_dead_letters(&self, id: &str) -> Result<u64> {
        let owned = id.to_string();
        self.core
            .jobs
            .redb()
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
        self.core.jobs.redb().store().read(|rtx| {
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
        self.core.jobs.redb().store().read(|rtx| {
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
            .redb()
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
