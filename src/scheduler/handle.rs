//! [`Scheduler`]: the handle to register, list and remove schedules.

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::core::SchedulerCore;
use super::cron::CronSchedule;
use super::failures::ScheduleDeadLetter;
use super::metrics::{DispatchReport, SchedulerMetric, SchedulerMetrics};
use super::spec::{Registered, ScheduleInfo, ScheduleSpec};
use super::storage::{ScheduleRegister, ScheduleStorage};
use crate::error::{Result, check_name};
use crate::job::{JobHandle, Submitted};

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
        let register = ScheduleRegister {
            id: spec.id.clone(),
            cron_text: spec.cron,
            zone: spec.zone,
            cron,
            job: job.submit(input).prepare()?,
            misfire: spec.misfire,
            max_catch_up: spec.max_catch_up,
            strict: spec.strict,
        };
        let (registered, next_run) = self.core.backend.register(register).await?;
        if let Some(at) = next_run {
            self.core.timer.lower(at);
        }
        let id = spec.id;
        self.core.counters.record(match registered {
            Registered::Created => SchedulerMetric::ScheduleRegistered { id },
            Registered::Updated => SchedulerMetric::ScheduleUpdated { id },
        });
        Ok(registered)
    }

    /// Removes a schedule; returns whether it existed. Jobs it already submitted go on.
    pub async fn unregister(&self, id: &str) -> Result<bool> {
        let removed = self.core.backend.remove(id).await?;
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
    pub async fn dead_letters(&self) -> Result<Vec<ScheduleDeadLetter>> {
        self.core.backend.dead_letters().await
    }

    /// Removes the dead letters of schedule `id`; returns how many there were.
    pub async fn clear_dead_letters(&self, id: &str) -> Result<u64> {
        self.core.backend.clear_dead_letters(id).await
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
    pub async fn get(&self, id: &str) -> Result<Option<ScheduleInfo>> {
        self.core.backend.get(id).await
    }

    /// Every schedule, by id.
    pub async fn list(&self) -> Result<Vec<ScheduleInfo>> {
        self.core.backend.list().await
    }

    /// Submits the schedule's job now with its stored input and the key
    /// `manual:{id}:{key}`, leaving the cron position alone. The same key gives the same job.
    ///
    /// Errors: [`Error::UnknownSchedule`](crate::Error::UnknownSchedule).
    pub async fn trigger_now(&self, id: &str, key: &str) -> Result<Submitted> {
        check_name("trigger key", key)?;
        let outcome = self.core.backend.trigger(id, key).await;
        let id = id.to_string();
        match &outcome {
            Ok(Submitted {
                deduplicated: false,
                ..
            }) => self
                .core
                .counters
                .record(SchedulerMetric::TriggerSubmitted { id }),
            Ok(Submitted {
                deduplicated: true, ..
            }) => self
                .core
                .counters
                .record(SchedulerMetric::TriggerRejected { id }),
            Err(e) => self.core.counters.record(SchedulerMetric::TriggerFailed {
                id,
                error: e.to_string(),
            }),
        }
        outcome
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
