//! State shared by every job handle, worker and attempt of one engine: the wake-ups, the
//! running attempts' signals, the watchers of job changes, the counters.

use rustc_hash::FxHashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{Notify, Semaphore, watch};

use super::StopReason;
use super::backend::JobBackend;
use super::effects::{DispatchTarget, Effects, JobHost, Slot, try_slot};
use super::info::CancelOutcome;
use super::metrics::{JobMetric, MetricCallback, Reporter};
use super::redb::RedbJobs;
use super::signal::AttemptSignal;
use super::storage::JobStorage;
use crate::clock::Clock;
use crate::error::Result;
use crate::primitive::{Primitive, Work};
use crate::store::{SchemaTable, Store, TxCtx};
use crate::timer::Timer;
use crate::wakeups::Wakeups;

pub(crate) struct JobCore {
    pub(crate) backend: JobBackend,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) timer: Timer,
    /// This leadership's epoch, set when the file is opened; every attempt started here
    /// carries it.
    epoch: AtomicU64,
    /// Caps handlers running at once across all definitions.
    pub(crate) global: Arc<Semaphore>,
    pub(crate) reporter: Reporter,
    /// Fires when the engine stops: workers stop claiming.
    pub(crate) stop: watch::Receiver<bool>,
    /// The workers waiting on each definition, woken by jobs becoming ready.
    ready: Wakeups<String>,
    watchers: Mutex<FxHashMap<u64, watch::Sender<u64>>>,
    running: Mutex<FxHashMap<u64, Arc<AttemptSignal>>>,
    registered: Mutex<Vec<String>>,
    /// The registered handlers, in the order they were registered (for [`Engine::drain`](crate::Engine::drain)).
    definitions: Mutex<Vec<Arc<super::worker::Definition>>>,
    /// Handlers start no workers: jobs run only when drained.
    manual: std::sync::atomic::AtomicBool,
    targets: Mutex<FxHashMap<String, Arc<DispatchTarget>>>,
    active: AtomicUsize,
    idle: Notify,
    /// Waiting for a slot that an ending attempt must leave free: workers waiting for a
    /// permit of the global cap, attempts already started waiting for any permit.
    pub(crate) waiting: AtomicUsize,
}

impl std::fmt::Debug for JobCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobCore")
            .field("epoch", &self.epoch())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl JobCore {
    pub(crate) fn new(
        store: Arc<Store>,
        max_running: usize,
        callback: Option<MetricCallback>,
        stop: watch::Receiver<bool>,
    ) -> Arc<Self> {
        let clock = store.clock().clone();
        Self::with_backend(clock, max_running, callback, stop, |core| {
            JobBackend::Redb(RedbJobs::new(store, core))
        })
    }

    /// The job state of an engine whose storage `backend` builds (given the state, weakly).
    pub(crate) fn with_backend(
        clock: Arc<dyn Clock>,
        max_running: usize,
        callback: Option<MetricCallback>,
        stop: watch::Receiver<bool>,
        backend: impl FnOnce(std::sync::Weak<dyn JobHost>) -> JobBackend,
    ) -> Arc<Self> {
        Arc::new_cyclic(|core: &std::sync::Weak<JobCore>| JobCore {
            backend: backend(core.clone()),
            clock,
            timer: Timer::new(None),
            epoch: AtomicU64::new(0),
            global: Arc::new(Semaphore::new(max_running.max(1))),
            reporter: Reporter::new(callback),
            stop,
            ready: Wakeups::default(),
            watchers: Mutex::new(FxHashMap::default()),
            running: Mutex::new(FxHashMap::default()),
            registered: Mutex::new(Vec::new()),
            definitions: Mutex::new(Vec::new()),
            manual: std::sync::atomic::AtomicBool::new(false),
            targets: Mutex::new(FxHashMap::default()),
            active: AtomicUsize::new(0),
            idle: Notify::new(),
            waiting: AtomicUsize::new(0),
        })
    }

    /// Sets the epoch attempts start under (a PostgreSQL node's id, known before any work).
    #[cfg(feature = "postgres")]
    pub(crate) fn set_epoch(&self, epoch: u64) {
        self.epoch.store(epoch, Ordering::Relaxed);
    }

    /// This leadership's epoch (0 until the file is open).
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Relaxed)
    }

    /// The file's job storage, for the primitives that write jobs in their own ops; `None`
    /// on another backend.
    pub(crate) fn redb(&self) -> Option<&RedbJobs> {
        match &self.backend {
            JobBackend::Redb(b) => Some(b),
            #[cfg(feature = "postgres")]
            JobBackend::Postgres(_) => None,
        }
    }

    /// The PostgreSQL job storage, for the primitives that write jobs in their own
    /// transactions; `None` on another backend.
    #[cfg(feature = "postgres")]
    pub(crate) fn postgres(&self) -> Option<&super::postgres::PgJobs> {
        match &self.backend {
            JobBackend::Postgres(b) => Some(b),
            JobBackend::Redb(_) => None,
        }
    }

    /// What the workers of definition `name` wait on.
    pub(crate) fn ready_notify(&self, name: &str) -> Arc<Notify> {
        self.ready.waiter(name)
    }

    /// A receiver that changes whenever job `id` changes (state, events, progress). The
    /// job's entry is removed when its last watcher is dropped.
    pub(crate) fn watch(self: &Arc<Self>, id: u64) -> JobWatch {
        let rx = lock(&self.watchers)
            .entry(id)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe();
        JobWatch {
            core: self.clone(),
            id,
            rx: Some(rx),
        }
    }

    /// Whether a handler for `name` runs in this process.
    #[cfg_attr(not(feature = "cron"), allow(dead_code))]
    pub(crate) fn has_handler(&self, name: &str) -> bool {
        lock(&self.registered).iter().any(|n| n == name)
    }

    /// Claims `name` for a handler; false if one is registered already.
    pub(crate) fn register_name(&self, name: &str) -> bool {
        let mut names = lock(&self.registered);
        if names.iter().any(|n| n == name) {
            return false;
        }
        names.push(name.to_string());
        true
    }

    /// Makes registered handlers start no workers (jobs run only when drained).
    pub(crate) fn set_manual_workers(&self, manual: bool) {
        self.manual.store(manual, Ordering::Relaxed);
    }

    /// Whether registered handlers start workers.
    pub(crate) fn manual_workers(&self) -> bool {
        self.manual.load(Ordering::Relaxed)
    }

    /// Keeps a registered handler, for [`Engine::drain`](crate::Engine::drain).
    pub(crate) fn add_definition(&self, def: Arc<super::worker::Definition>) {
        lock(&self.definitions).push(def);
    }

    /// The registered handlers, in the order they were registered.
    pub(crate) fn definitions(&self) -> Vec<Arc<super::worker::Definition>> {
        lock(&self.definitions).clone()
    }

    /// Lets submits of `name` start attempts directly for these workers.
    pub(crate) fn add_target(&self, name: &str, target: DispatchTarget) {
        lock(&self.targets).insert(name.to_string(), Arc::new(target));
    }

    /// Creates the stop signal of a started attempt and counts it as running here.
    pub(crate) fn attempt_registered(&self, id: u64, attempt: u32) -> Arc<AttemptSignal> {
        let signal = Arc::new(AttemptSignal::new(attempt));
        self.active.fetch_add(1, Ordering::SeqCst);
        lock(&self.running).insert(id, signal.clone());
        signal
    }

    pub(crate) fn attempt_ended(&self, id: u64, signal: &Arc<AttemptSignal>) {
        {
            let mut running = lock(&self.running);
            if running.get(&id).is_some_and(|s| Arc::ptr_eq(s, signal)) {
                running.remove(&id);
            }
        }
        if self.active.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.idle.notify_waiters();
        }
    }

    /// The signal of the attempt of `id` running in this process, if any.
    pub(crate) fn running_signal(&self, id: u64) -> Option<Arc<AttemptSignal>> {
        lock(&self.running).get(&id).cloned()
    }

    pub(crate) fn running_signals(&self) -> Vec<(u64, Arc<AttemptSignal>)> {
        lock(&self.running)
            .iter()
            .map(|(id, s)| (*id, s.clone()))
            .collect()
    }

    /// Wakes this process's workers of `name` (another node made jobs of it ready).
    #[cfg(feature = "postgres")]
    pub(crate) fn wake_workers(&self, name: &str) {
        // Every waiting worker, and a permit for one that is about to wait.
        self.ready.wake_all(name);
        self.ready.wake(name, 1);
    }

    /// Wakes every worker of this process, to look for work again.
    #[cfg(feature = "postgres")]
    pub(crate) fn wake_all_workers(&self) {
        let names = lock(&self.registered).clone();
        for name in names {
            self.wake_workers(&name);
        }
    }

    /// The poll besides notifications: wakes this node's workers of each definition that has
    /// ready jobs. (A notice can be missed: one sent before its sender knew this node
    /// listened, or while this node's listener reconnected; in poll-only mode none is sent.)
    #[cfg(feature = "postgres")]
    pub(crate) async fn wake_for_ready(&self) -> Result<()> {
        let JobBackend::Postgres(b) = &self.backend else {
            return Ok(());
        };
        let names = lock(&self.registered).clone();
        for name in b.ready_among(&names).await? {
            self.wake_workers(&name);
        }
        Ok(())
    }

    /// Looks again at every job watched or running here, as if another node had said each
    /// changed: joins see what happened meanwhile, and an attempt whose job was cancelled or
    /// timed out elsewhere is told to stop.
    #[cfg(feature = "postgres")]
    pub(crate) async fn look_again(&self) {
        let mut ids: Vec<u64> = lock(&self.watchers).keys().copied().collect();
        ids.extend(lock(&self.running).keys().copied());
        ids.sort_unstable();
        ids.dedup();
        self.changed_elsewhere(&ids).await;
    }

    /// Another node changed these jobs: wake their watchers here, and stop an attempt
    /// running here whose job is no longer its own (cancelled or timed out elsewhere).
    #[cfg(feature = "postgres")]
    pub(crate) async fn changed_elsewhere(&self, ids: &[u64]) {
        {
            let watchers = lock(&self.watchers);
            for id in ids {
                if let Some(tx) = watchers.get(id) {
                    tx.send_modify(|v| *v += 1);
                }
            }
        }
        for &id in ids {
            let Some(signal) = self.running_signal(id) else {
                continue;
            };
            let Ok(Some(job)) = self.backend.get(id, false).await else {
                continue;
            };
            let still_ours = job.state == super::JobState::Running
                && job.attempts == signal.attempt
                && self.running_signal(id).is_some();
            if still_ours {
                continue;
            }
            let why = match job.state {
                super::JobState::Cancelled => {
                    StopReason::Cancelled(job.cancel_reason.unwrap_or_default())
                }
                _ => StopReason::TimedOut,
            };
            signal.fire(why);
        }
    }

    /// This node fenced itself: every handler running here is told to stop (their writes are
    /// refused already; the node that found this one dead owns the jobs now).
    #[cfg(feature = "postgres")]
    pub(crate) fn fenced(&self) {
        for (_, signal) in self.running_signals() {
            signal.fire(StopReason::Shutdown);
        }
    }

    /// Waits until no attempt runs in this process.
    pub(crate) async fn wait_idle(&self) {
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.active.load(Ordering::SeqCst) == 0 {
                return;
            }
            idle.await;
        }
    }
}

impl JobHost for JobCore {
    fn effects_done(self: Arc<Self>, fx: Effects) {
        // Report first: whoever is woken below finds the metrics and logs already out.
        for event in &fx.metrics {
            self.reporter.report(event);
            log_metric(event);
        }
        for name in &fx.ready {
            self.ready.wake(name.as_str(), 1);
        }
        if let Some(at) = fx.deadline {
            self.timer.lower(at);
        }
        for (id, attempt) in fx.started {
            self.attempt_registered(id, attempt);
        }
        if !fx.signals.is_empty() {
            let running = lock(&self.running);
            for (id, attempt, why) in fx.signals {
                if let Some(signal) = running.get(&id)
                    && signal.attempt == attempt
                {
                    signal.fire(why);
                }
            }
        }
        if !fx.touched.is_empty() {
            let mut watchers = lock(&self.watchers);
            for id in &fx.touched {
                if let Some(tx) = watchers.get(id) {
                    if tx.receiver_count() == 0 {
                        watchers.remove(id);
                    } else {
                        tx.send_modify(|v| *v += 1);
                    }
                }
            }
        }
        if !fx.handoffs.is_empty() {
            let targets = lock(&self.targets);
            for handoff in fx.handoffs {
                if let Some(target) = targets.get(&handoff.name) {
                    // If the workers are gone (shutting down), the attempt's lease runs out or
                    // the next open recovers it.
                    let _ = target.handoff.send((handoff.job, handoff.slot));
                }
            }
        }
    }

    /// A free worker slot for `name`, if a handler runs here, the engine is not stopping, and
    /// a slot is free now.
    fn free_slot(&self, name: &str) -> Option<Slot> {
        if *self.stop.borrow() {
            return None;
        }
        let target = lock(&self.targets).get(name).cloned()?;
        if target.rate_limited {
            return None;
        }
        try_slot(&self.global, &target.concurrency)
    }

    /// This leadership's epoch (0 until the file is open).
    fn epoch(&self) -> u64 {
        JobCore::epoch(self)
    }
}

impl Primitive for JobCore {
    fn name(&self) -> &'static str {
        "job"
    }

    fn tables(&self) -> &'static [&'static dyn SchemaTable] {
        super::tables::TABLES
    }

    fn recover(self: Arc<Self>, ctx: &mut TxCtx<'_>, epoch: u64) -> Result<()> {
        self.epoch.store(epoch, Ordering::Relaxed);
        match self.redb() {
            Some(redb) => redb.recover(ctx, epoch),
            None => Ok(()),
        }
    }

    fn timer(&self) -> Option<&Timer> {
        Some(&self.timer)
    }

    fn pass(self: Arc<Self>) -> Work<Result<Option<u64>>> {
        Box::pin(async move { self.backend.sweep().await })
    }

    fn drain(self: Arc<Self>, until: tokio::time::Instant) -> Work<()> {
        Box::pin(async move { self.hand_back_at_shutdown(until).await })
    }
}

impl JobCore {
    /// Cancels job `id`: a queued one at once, a running one at once too, its handler told.
    pub(crate) async fn cancel(self: &Arc<Self>, id: u64, reason: &str) -> Result<CancelOutcome> {
        // Mark a running attempt first: a completion applied after this point loses.
        if let Some(signal) = self.running_signal(id) {
            signal.request_cancel();
        }
        self.backend.cancel(id, reason.to_string()).await
    }

    /// Shutdown: running handlers get the stop signal and until `until` to finish; those
    /// still running then are stopped, and their jobs handed back in one write (one commit
    /// whatever their number).
    async fn hand_back_at_shutdown(self: Arc<Self>, until: tokio::time::Instant) {
        for (_, signal) in self.running_signals() {
            signal.fire(StopReason::Shutdown);
        }
        if tokio::time::timeout_at(until, self.wait_idle())
            .await
            .is_ok()
        {
            return;
        }
        // Stop the handlers first, so none writes after its job is handed back.
        let running = self.running_signals();
        for (_, signal) in &running {
            signal.abort();
        }
        let attempts: Vec<(u64, u32)> = running.iter().map(|(id, s)| (*id, s.attempt)).collect();
        let released = self.backend.release_all(attempts, self.epoch()).await;
        match released {
            Ok(n) => tracing::info!(handed_back = n, "unfinished jobs handed back at shutdown"),
            Err(e) => tracing::warn!(error = %e, "could not hand jobs back at shutdown"),
        }
    }
}

/// A subscription to one job's changes; see [`JobCore::watch`].
pub(crate) struct JobWatch {
    core: Arc<JobCore>,
    id: u64,
    rx: Option<watch::Receiver<u64>>,
}

impl JobWatch {
    /// Waits for the next change. Errors only if the engine is gone.
    pub(crate) async fn changed(&mut self) -> std::result::Result<(), watch::error::RecvError> {
        match self.rx.as_mut() {
            Some(rx) => rx.changed().await,
            None => std::future::pending().await,
        }
    }
}

impl crate::feed::Changes for JobWatch {
    fn mark_seen(&mut self) {
        if let Some(rx) = self.rx.as_mut() {
            rx.borrow_and_update();
        }
    }

    fn changed(&mut self) -> impl std::future::Future<Output = bool> + Send {
        let changed = JobWatch::changed(self);
        async move { changed.await.is_ok() }
    }
}

impl Drop for JobWatch {
    fn drop(&mut self) {
        drop(self.rx.take());
        let mut watchers = lock(&self.core.watchers);
        if watchers
            .get(&self.id)
            .is_some_and(|tx| tx.receiver_count() == 0)
        {
            watchers.remove(&self.id);
        }
    }
}

fn log_metric(event: &JobMetric) {
    match event {
        JobMetric::Retried {
            name,
            attempt,
            code,
            run_ms,
        } => {
            tracing::info!(job = %name, attempt, code = %code, run_ms, "job attempt failed; retry scheduled")
        }
        JobMetric::Failed {
            name,
            attempt,
            code,
            run_ms,
        } => tracing::warn!(job = %name, attempt, code = %code, run_ms, "job failed"),
        JobMetric::TimedOut {
            name,
            attempt,
            run_ms,
        } => {
            tracing::warn!(job = %name, attempt, run_ms, "job timed out")
        }
        JobMetric::Recovered { name } => {
            tracing::info!(job = %name, "job recovered after its process died")
        }
        JobMetric::Started { name, attempt } => {
            tracing::debug!(job = %name, attempt, "job attempt started")
        }
        JobMetric::Completed {
            name,
            attempt,
            run_ms,
        } => tracing::debug!(job = %name, attempt, run_ms, "job completed"),
        JobMetric::Submitted { .. } | JobMetric::Cancelled { .. } => {}
    }
}
