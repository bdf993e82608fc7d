//! What a job write does after its commit, collected while it runs (wake workers, lower the
//! timer, signal attempts, notify watchers, count metrics), and the attempts it hands to
//! workers with the slots reserved for them.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::metrics::JobMetric;
use super::signal::StopReason;
use crate::error::Result;
use crate::store::TxCtx;

/// A started attempt, handed to a worker.
#[derive(Debug, Clone)]
pub(crate) struct Claimed {
    pub(crate) id: u64,
    pub(crate) attempt: u32,
    pub(crate) input: Vec<u8>,
    pub(crate) key: Option<String>,
    pub(crate) meta: Vec<(String, String)>,
}

/// A slot for one attempt: one permit of the definition, one of the global cap.
pub(crate) type Slot = (OwnedSemaphorePermit, OwnedSemaphorePermit);

/// A free slot of a definition with this concurrency under the `global` cap, if there is one
/// now.
pub(crate) fn try_slot(global: &Arc<Semaphore>, concurrency: &Arc<Semaphore>) -> Option<Slot> {
    let own = concurrency.clone().try_acquire_owned().ok()?;
    let global = global.clone().try_acquire_owned().ok()?;
    Some((own, global))
}

/// Where a submit hands an attempt it started to the definition's workers.
#[derive(Debug)]
pub(crate) struct DispatchTarget {
    pub(crate) concurrency: Arc<Semaphore>,
    /// The definition has a start limit: its jobs start through claims, which count them.
    pub(crate) rate_limited: bool,
    pub(crate) handoff: mpsc::UnboundedSender<(Claimed, Slot)>,
}

/// What must happen once the transaction is durable.
#[derive(Debug, Default)]
pub(crate) struct Effects {
    /// Definition names that gained ready jobs.
    pub(crate) ready: Vec<String>,
    /// The earliest new deadline for the job timer.
    pub(crate) deadline: Option<u64>,
    /// Jobs whose state or events changed.
    pub(crate) touched: Vec<u64>,
    /// Attempts running in this process that must stop: (job, attempt, why).
    pub(crate) signals: Vec<(u64, u32, StopReason)>,
    /// Metric events to count and report.
    pub(crate) metrics: Vec<JobMetric>,
    /// Attempts started by a submit, for the worker whose slot they hold.
    pub(crate) handoffs: Vec<Handoff>,
    /// Attempts started: (job, attempt). Their stop signals exist from the commit on, so a
    /// cancel committed right after reaches the handler even before it starts.
    pub(crate) started: Vec<(u64, u32)>,
}

/// An attempt started inside a submit, with the worker slot reserved for it.
#[derive(Debug)]
pub(crate) struct Handoff {
    pub(crate) name: String,
    pub(crate) job: Claimed,
    pub(crate) slot: Slot,
}

impl Effects {
    pub(crate) fn deadline(&mut self, at: u64) {
        self.deadline = Some(self.deadline.map_or(at, |d| d.min(at)));
    }
}

/// Counts `metric` in the file (committed with the op, so the totals always match the stored
/// jobs) and queues it for the metrics callback.
pub(crate) fn count(ctx: &mut TxCtx<'_>, fx: &mut Effects, metric: JobMetric) -> Result<()> {
    ctx.adjust(metric.counter_name(), 1)?;
    fx.metrics.push(metric);
    Ok(())
}

/// What a storage backend needs of the engine's job state in this process: somewhere to
/// apply a commit's effects, the worker slot a submit may hand a new attempt to, and the
/// leadership epoch attempts start under.
pub(crate) trait JobHost: Send + Sync {
    /// Applies what a committed write collected.
    fn effects_done(self: Arc<Self>, fx: Effects);
    /// A free worker slot for a job of `name`, if a handler runs here and a slot is free now.
    fn free_slot(&self, name: &str) -> Option<Slot>;
    /// This leadership's epoch.
    fn epoch(&self) -> u64;
}
