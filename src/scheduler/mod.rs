//! The cron scheduler: schedules that submit a typed job for every slot of a cron expression in
//! a time zone, with misfire policies for slots missed while no process held the file.
//!
//! Behind the `cron` feature (on by default), with the time-zone database it needs. Without
//! it the scheduler's tables are still known, so a file with schedules opens, and its
//! schedules wait untouched for a build that runs them.

pub(crate) mod tables;

#[cfg(feature = "cron")]
mod backend;
#[cfg(feature = "cron")]
mod core;
#[cfg(feature = "cron")]
pub(crate) mod cron;
#[cfg(feature = "cron")]
mod failures;
#[cfg(feature = "cron")]
mod handle;
#[cfg(feature = "cron")]
mod metrics;
#[cfg(feature = "cron")]
pub(crate) mod ops;
#[cfg(all(feature = "cron", feature = "postgres"))]
mod postgres;
#[cfg(feature = "cron")]
pub(crate) mod record;
#[cfg(feature = "cron")]
mod redb;
#[cfg(feature = "cron")]
pub(crate) mod rules;
#[cfg(feature = "cron")]
mod schedules;
#[cfg(feature = "cron")]
mod spec;
#[cfg(feature = "cron")]
mod storage;
#[cfg(feature = "testing")]
pub(crate) mod testing;

#[cfg(feature = "cron")]
pub(crate) use self::core::SchedulerCore;
#[cfg(feature = "testing")]
pub(crate) use cron::CronSchedule;
#[cfg(feature = "testing")]
pub(crate) use failures::decode_records as decode_failure_records;
#[cfg(feature = "cron")]
pub use failures::{MAX_DISPATCH_FAILURES, ScheduleDeadLetter};
#[cfg(feature = "cron")]
pub use handle::Scheduler;
#[cfg(feature = "cron")]
pub use metrics::{DispatchReport, SchedulerMetric, SchedulerMetricCallback, SchedulerMetrics};
#[cfg(feature = "cron")]
pub use spec::{Misfire, Registered, ScheduleInfo, ScheduleSpec};

/// The scheduler's tables in a build without the scheduler: known, so a file holding them
/// opens, and left as they are.
#[cfg(not(feature = "cron"))]
#[derive(Debug)]
pub(crate) struct Dormant;

#[cfg(not(feature = "cron"))]
impl crate::primitive::Primitive for Dormant {
    fn name(&self) -> &'static str {
        "scheduler"
    }

    fn tables(&self) -> &'static [&'static dyn crate::store::SchemaTable] {
        tables::TABLES
    }

    fn recover(
        self: std::sync::Arc<Self>,
        _ctx: &mut crate::store::TxCtx<'_>,
        _epoch: u64,
    ) -> crate::Result<()> {
        Ok(())
    }

    fn timer(&self) -> Option<&crate::timer::Timer> {
        None
    }

    fn pass(self: std::sync::Arc<Self>) -> crate::primitive::Work<crate::Result<Option<u64>>> {
        Box::pin(async { Ok(None) })
    }
}
