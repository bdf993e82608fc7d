//! The scheduler's counters: a snapshot, and a callback told of every event.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Something the scheduler did, as told to a metrics callback
/// ([`EngineOptions::on_scheduler_metric`](crate::EngineOptions::on_scheduler_metric)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SchedulerMetric {
    /// This process took the file and runs the scheduler.
    LeaderAcquired,
    /// This process closed the file and stopped scheduling.
    LeaderLost,
    /// A new schedule.
    ScheduleRegistered {
        /// The schedule id.
        id: String,
    },
    /// A schedule replaced.
    ScheduleUpdated {
        /// The schedule id.
        id: String,
    },
    /// A schedule removed.
    ScheduleUnregistered {
        /// The schedule id.
        id: String,
    },
    /// A slot's job was submitted.
    DispatchSubmitted {
        /// The schedule id.
        id: String,
        /// The slot (UTC ms).
        slot_ms: u64,
    },
    /// A due slot was held: strict, and no handler for its job here.
    DispatchSkipped {
        /// The schedule id.
        id: String,
    },
    /// Slots were advanced past without running (misfire policy, or non-strict without a
    /// handler).
    DispatchAdvanced {
        /// The schedule id.
        id: String,
        /// How many.
        slots: u64,
    },
    /// A schedule's due slot could not be dispatched (its stored expression, zone or record
    /// does not read). It is tried again after 1, 2, 4 and 8 s; the fifth failure in a row
    /// dead-letters it.
    DispatchFailed {
        /// The schedule id.
        id: String,
        /// The slot (UTC ms).
        slot_ms: u64,
        /// Failures in a row so far, this one included.
        failures: u32,
        /// What went wrong.
        error: String,
    },
    /// A schedule failed [`MAX_DISPATCH_FAILURES`](crate::MAX_DISPATCH_FAILURES) times in a
    /// row: its slot went to the dead-letter list
    /// ([`Scheduler::dead_letters`](crate::Scheduler::dead_letters)) and the schedule stopped.
    DeadLettered {
        /// The schedule id.
        id: String,
        /// The slot (UTC ms).
        slot_ms: u64,
        /// The last error.
        error: String,
    },
    /// A whole dispatch pass failed (a storage error); it is tried again on the next pass.
    TickFailed {
        /// What went wrong.
        error: String,
    },
    /// `trigger_now` submitted a job.
    TriggerSubmitted {
        /// The schedule id.
        id: String,
    },
    /// `trigger_now` found its key already used: nothing new was submitted.
    TriggerRejected {
        /// The schedule id.
        id: String,
    },
    /// `trigger_now` failed.
    TriggerFailed {
        /// The schedule id.
        id: String,
        /// What went wrong.
        error: String,
    },
}

/// Scheduler counters since this engine opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SchedulerMetrics {
    /// Leaderships taken (1 once open).
    pub leader_acquired: u64,
    /// Schedules created.
    pub registered: u64,
    /// Schedules replaced.
    pub updated: u64,
    /// Schedules removed.
    pub unregistered: u64,
    /// Slot jobs submitted.
    pub dispatch_submitted: u64,
    /// Due slots held for want of a handler (strict).
    pub dispatch_skipped: u64,
    /// Slots advanced past without running.
    pub dispatch_advanced: u64,
    /// Failed dispatch attempts of single schedules.
    pub dispatch_failed: u64,
    /// Slots sent to the dead-letter list.
    pub dead_lettered: u64,
    /// Dispatch passes that failed as a whole.
    pub tick_failed: u64,
    /// Manual triggers submitted.
    pub trigger_submitted: u64,
    /// Manual triggers whose key was already used.
    pub trigger_rejected: u64,
    /// Manual triggers that failed.
    pub trigger_failed: u64,
}

/// The callback type of
/// [`EngineOptions::on_scheduler_metric`](crate::EngineOptions::on_scheduler_metric).
pub type SchedulerMetricCallback = Arc<dyn Fn(&SchedulerMetric) + Send + Sync>;

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) values: std::sync::Mutex<SchedulerMetrics>,
    pub(crate) callback: Option<SchedulerMetricCallback>,
}

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counters").finish_non_exhaustive()
    }
}

impl Counters {
    pub(crate) fn record(&self, event: SchedulerMetric) {
        if let Ok(mut m) = self.values.lock() {
            match &event {
                SchedulerMetric::LeaderAcquired => m.leader_acquired += 1,
                SchedulerMetric::LeaderLost => {}
                SchedulerMetric::ScheduleRegistered { .. } => m.registered += 1,
                SchedulerMetric::ScheduleUpdated { .. } => m.updated += 1,
                SchedulerMetric::ScheduleUnregistered { .. } => m.unregistered += 1,
                SchedulerMetric::DispatchSubmitted { .. } => m.dispatch_submitted += 1,
                SchedulerMetric::DispatchSkipped { .. } => m.dispatch_skipped += 1,
                SchedulerMetric::DispatchAdvanced { slots, .. } => m.dispatch_advanced += slots,
                SchedulerMetric::DispatchFailed { .. } => m.dispatch_failed += 1,
                SchedulerMetric::DeadLettered { .. } => m.dead_lettered += 1,
                SchedulerMetric::TickFailed { .. } => m.tick_failed += 1,
                SchedulerMetric::TriggerSubmitted { .. } => m.trigger_submitted += 1,
                SchedulerMetric::TriggerRejected { .. } => m.trigger_rejected += 1,
                SchedulerMetric::TriggerFailed { .. } => m.trigger_failed += 1,
            }
        }
        if let Some(cb) = &self.callback {
            // A panicking callback must not take the scheduler down with it.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cb(&event)));
        }
    }
}

/// What a dispatch pass did, for metrics and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DispatchReport {
    /// Jobs submitted for slots.
    pub submitted: u64,
    /// Missed slots dropped by the misfire policy, or advanced past without a handler.
    pub dropped: u64,
    /// Due slots held back because no handler for the job runs here (strict schedules).
    pub held: u64,
    /// Schedules whose due slot could not be dispatched (see
    /// [`SchedulerMetric::DispatchFailed`](crate::SchedulerMetric::DispatchFailed)).
    pub failed: u64,
    /// What happened, schedule by schedule, for the metrics callback.
    pub(crate) events: Vec<SchedulerMetric>,
}
