//! The engine: opens the file under the leader lock, recovers, and runs the background tasks.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::{Clock, SystemClock};
use crate::ephemeral::{Ephemeral, EphemeralCore, EphemeralOptions};
use crate::error::{Error, Result};
use crate::job::core::JobCore;
use crate::job::ops::{self as job_ops, Effects};
use crate::job::{
    JobCtx, JobError, JobHandle, JobMetric, JobSpec, Jobs, MetricCallback, StopReason,
};
use crate::lock::LeaderLock;
use crate::mutex::{FencedMutex, MutexCore};
use crate::queue::{self, Queue, QueueCore, QueueOptions};
use crate::scheduler::{Scheduler, SchedulerCore, SchedulerMetric, SchedulerMetricCallback};
use crate::store::faults::FaultInjector;
use crate::store::{Durability, Store, StoreConfig, StoreStats};
use crate::topic::{Topic, TopicCore, TopicOptions};

/// How to open a file. `EngineOptions::new().open(path)` is the same as [`Engine::open`].
#[derive(Debug, Clone)]
pub struct EngineOptions {
    standby: bool,
    durability: Durability,
    clock: Arc<dyn Clock>,
    max_batch: usize,
    gather_max: Duration,
    quick_repair: bool,
    cache_bytes: usize,
    compact_on_open: bool,
    faults: Option<FaultInjector>,
    max_running_jobs: usize,
    on_job_metric: Option<MetricHook>,
    ephemeral_change_retention: Duration,
    on_scheduler_metric: Option<SchedulerHook>,
}

/// The scheduler's metrics callback, shown by `Debug` only as present.
#[derive(Clone)]
struct SchedulerHook(SchedulerMetricCallback);

impl std::fmt::Debug for SchedulerHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SchedulerHook")
    }
}

/// The metrics callback, shown by `Debug` only as present.
#[derive(Clone)]
struct MetricHook(MetricCallback);

impl std::fmt::Debug for MetricHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricHook")
    }
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            standby: false,
            durability: Durability::Immediate,
            clock: Arc::new(SystemClock),
            max_batch: 4_096,
            gather_max: Duration::from_millis(1),
            quick_repair: true,
            cache_bytes: 64 * 1024 * 1024,
            compact_on_open: false,
            faults: None,
            max_running_jobs: 256,
            on_job_metric: None,
            ephemeral_change_retention: Duration::from_secs(3600),
            on_scheduler_metric: None,
        }
    }
}

impl EngineOptions {
    /// The defaults: fail at once if the file is held, fsync every commit, system clock.
    pub fn new() -> Self {
        Self::default()
    }

    /// Wait for the file instead of failing with [`Error::Locked`]: the open completes the moment
    /// the holder closes or dies, and this process then leads. Default `false`.
    pub fn standby(mut self, standby: bool) -> Self {
        self.standby = standby;
        self
    }

    /// How commits reach the disk. Default [`Durability::Immediate`] (fsync per commit).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// The clock every time-dependent decision reads. Default: the system clock. Tests pass a
    /// [`ManualClock`](crate::ManualClock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The most ops one commit may carry. Default 4,096.
    pub fn max_batch(mut self, ops: usize) -> Self {
        self.max_batch = ops.max(1);
        self
    }

    /// The longest a durable commit under load waits for more ops to share it. Default 1 ms.
    ///
    /// After a commit that answered many callers (8 ops or more), the next batch waits for
    /// them to send their next op: until as many have come back, or none has come for 50 µs,
    /// or half that commit's duration has passed, and never longer than this.
    /// Without the wait, busy callers split into two groups that take turns, and each op waits
    /// out two commits. A lone caller never waits: its commit starts at once. Relaxed commits
    /// (see [`Durability::Relaxed`]) never wait either: they do not wait on the disk, so a
    /// wait would only idle the writer. `Duration::ZERO` turns the wait off.
    pub fn commit_gather(mut self, max_wait: Duration) -> Self {
        self.gather_max = max_wait;
        self
    }

    /// Store redb's allocator state with every durable commit (two-phase commit), so that the
    /// open after a crash need not walk the whole file to repair it. Default `true`.
    ///
    /// The trade-off, measured on a 2-core machine (`benches/job_scale.rs`,
    /// `benches/job_throughput.rs --quick-repair-ab`): with a million jobs in the file (143 MB)
    /// and 10,000 of them running when the process was SIGKILLed, the next open took 135 ms
    /// with quick repair and 496 ms without; without it the repair grows with the file (about
    /// 2.2 ms per MB). The price is paid on every durable commit: fsync'd job throughput was
    /// 20 to 40% lower with it. Turn it off for throughput where a slow start after a crash is
    /// acceptable; relaxed-durability commits never pay it.
    pub fn quick_repair(mut self, enabled: bool) -> Self {
        self.quick_repair = enabled;
        self
    }

    /// Compact the file at open, before anything else: the space of deleted jobs, messages and
    /// events is given back to the file system. Default `false`.
    ///
    /// On its own the file shrinks only from its end (at a commit, free pages at the end of
    /// the file are given back); space freed in the middle by retention is reused by new
    /// writes but kept, so a file under a steady load stays near the size of its busiest
    /// stretch. Compacting
    /// rewrites the live data (its time grows with the file; 82 ms for 3 MB here) and nothing
    /// runs meanwhile, so it belongs to a start after a burst, not to every start.
    pub fn compact_on_open(mut self, enabled: bool) -> Self {
        self.compact_on_open = enabled;
        self
    }

    /// Memory for redb's page cache, in bytes. Default 64 MiB.
    pub fn cache_size(mut self, bytes: usize) -> Self {
        self.cache_bytes = bytes;
        self
    }

    /// Put a [`FaultInjector`](crate::testing::FaultInjector) between the engine and the file.
    pub fn fault_injector(mut self, faults: FaultInjector) -> Self {
        self.faults = Some(faults);
        self
    }

    /// The most job handlers running at once in this process, across all definitions (each
    /// definition's own concurrency also applies). Default 256.
    pub fn max_running_jobs(mut self, n: usize) -> Self {
        self.max_running_jobs = n.max(1);
        self
    }

    /// A callback told of every job event worth counting ([`JobMetric`]): submits, starts,
    /// completions with their run time, retries, failures, cancels, timeouts, recoveries.
    /// It runs on the writer's thread after each commit, so it must be quick; a panic in it is
    /// caught and ignored.
    pub fn on_job_metric(mut self, callback: impl Fn(&JobMetric) + Send + Sync + 'static) -> Self {
        self.on_job_metric = Some(MetricHook(Arc::new(callback)));
        self
    }

    /// A callback told of everything the scheduler does ([`SchedulerMetric`](crate::SchedulerMetric)). It runs on
    /// the calling task; a panic in it is caught and ignored.
    pub fn on_scheduler_metric(
        mut self,
        callback: impl Fn(&SchedulerMetric) + Send + Sync + 'static,
    ) -> Self {
        self.on_scheduler_metric = Some(SchedulerHook(Arc::new(callback)));
        self
    }

    /// How long the change streams of ephemeral sets keep each change. A reader further behind
    /// gets [`Error::Lagged`]. Default 1 hour.
    pub fn ephemeral_change_retention(mut self, keep: Duration) -> Self {
        self.ephemeral_change_retention = keep;
        self
    }

    /// Opens `path` with these options. See [`Engine::open`].
    pub async fn open(self, path: impl AsRef<Path>) -> Result<Engine> {
        Engine::open_with(path, self).await
    }
}

/// An open jobfile: the single owner of the file while it lives.
///
/// Cheap to clone. Keep it (or a clone) alive while the file is in use: dropping the last one
/// stops the background tasks (job workers stop claiming; lease expiry, delayed work and
/// retention stop), and the file closes once the queue and job handles and running attempts
/// are gone too. [`Engine::shutdown`] closes it at once, gracefully, and reports errors.
#[derive(Debug, Clone)]
pub struct Engine {
    inner: Arc<EngineInner>,
}

#[derive(Debug)]
struct EngineInner {
    path: PathBuf,
    epoch: u64,
    store: Arc<Store>,
    queues: Arc<QueueCore>,
    jobs: Arc<JobCore>,
    mutexes: Arc<MutexCore>,
    ephemeral: Arc<EphemeralCore>,
    topics: Arc<TopicCore>,
    scheduler: Arc<SchedulerCore>,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for EngineInner {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl Engine {
    /// Opens (or creates) the file with default options: takes the leader lock, checks the
    /// format, starts a new epoch, recovers work left by a dead process, and starts the
    /// background tasks.
    ///
    /// Errors: [`Error::Locked`] if another process holds the file; [`Error::NotAJobfile`] or
    /// [`Error::NewerFormat`] for a file this build must not touch (it is left unchanged);
    /// [`Error::Io`] or [`Error::Storage`] when the disk fails.
    pub async fn open(path: impl AsRef<Path>) -> Result<Engine> {
        Self::open_with(path, EngineOptions::default()).await
    }

    /// Opens the file with `options`.
    pub async fn open_with(path: impl AsRef<Path>, options: EngineOptions) -> Result<Engine> {
        let path = path.as_ref().to_path_buf();
        let open_path = path.clone();
        let clock = options.clock.clone();
        let max_running_jobs = options.max_running_jobs;
        let on_job_metric = options.on_job_metric.clone().map(|h| h.0);
        let change_retention = options.ephemeral_change_retention;
        let on_scheduler_metric = options.on_scheduler_metric.clone().map(|h| h.0);
        let (store, epoch, (next_deadline, job_effects, ephemeral_next, topic_next)) =
            tokio::task::spawn_blocking(move || {
                let lock = if options.standby {
                    LeaderLock::acquire_blocking(&open_path)?
                } else {
                    LeaderLock::try_acquire(&open_path)?
                };
                let config = StoreConfig {
                    durability: options.durability,
                    max_batch: options.max_batch,
                    gather_max: options.gather_max,
                    quick_repair: options.quick_repair,
                    cache_bytes: options.cache_bytes,
                    faults: options.faults,
                    compact: options.compact_on_open,
                };
                Store::open(&open_path, lock, config, clock, |ctx, epoch| {
                    let redelivered = queue::ops::recover(ctx)?;
                    if redelivered > 0 {
                        tracing::info!(
                            epoch,
                            redelivered,
                            "redelivered messages leased by the previous process"
                        );
                    }
                    let mut job_fx = Effects::default();
                    let (requeued, failed) = job_ops::recover::recover(ctx, &mut job_fx)?;
                    if requeued + failed > 0 {
                        tracing::info!(
                            epoch,
                            requeued,
                            crash_looped = failed,
                            "recovered jobs left running by the previous process"
                        );
                    }
                    // Timed work that came due while no process held the file is done at once.
                    let queue_next = queue::ops::maintain(ctx, usize::MAX)?.next_deadline;
                    let job_next = job_ops::sweep::sweep(ctx, usize::MAX, &mut job_fx)?;
                    if let Some(at) = job_next {
                        job_fx.deadline = Some(job_fx.deadline.map_or(at, |d| d.min(at)));
                    }
                    let ephemeral_next = EphemeralCore::sweep_at_open(ctx, change_retention)?;
                    let topic_next = crate::topic::ops::sweep(ctx, usize::MAX)?;
                    Ok((queue_next, job_fx, ephemeral_next, topic_next))
                })
            })
            .await
            .map_err(open_panicked)??;
        tracing::info!(path = %path.display(), epoch, "jobfile opened");
        let store = Arc::new(store);
        let (stop, stop_rx) = watch::channel(false);
        let queues = Arc::new(QueueCore::new(
            store.clone(),
            next_deadline,
            stop_rx.clone(),
        ));
        let jobs = JobCore::new(
            store.clone(),
            epoch,
            max_running_jobs,
            on_job_metric,
            stop_rx.clone(),
            job_effects,
        );
        let job_timer = {
            let jobs = jobs.clone();
            let clock = store.clock().clone();
            let stop = stop_rx.clone();
            async move {
                crate::timer::run("job", &jobs.timer, clock, stop, || jobs.sweep()).await;
            }
        };
        let ephemeral = Arc::new(EphemeralCore::new(
            store.clone(),
            ephemeral_next,
            change_retention,
            stop_rx.clone(),
        ));
        let ephemeral_timer = {
            let core = ephemeral.clone();
            let clock = store.clock().clone();
            let stop = stop_rx.clone();
            async move {
                crate::timer::run("ephemeral", &core.timer, clock, stop, || core.sweep()).await;
            }
        };
        let topics = Arc::new(TopicCore::new(store.clone(), topic_next, stop_rx.clone()));
        let scheduler = Arc::new(SchedulerCore::new(jobs.clone(), on_scheduler_metric));
        let scheduler_timer = {
            let core = scheduler.clone();
            let clock = store.clock().clone();
            let stop = stop_rx.clone();
            async move {
                crate::timer::run("scheduler", &core.timer, clock, stop, || core.pass()).await;
            }
        };
        let topic_timer = {
            let core = topics.clone();
            let clock = store.clock().clone();
            let stop = stop_rx.clone();
            async move {
                crate::timer::run("topic", &core.timer, clock, stop, || core.sweep()).await;
            }
        };
        let mutexes = Arc::new(MutexCore::new(stop_rx.clone()));
        let tasks = vec![
            tokio::spawn(queue::maintenance::run(queues.clone(), stop_rx)),
            tokio::spawn(job_timer),
            tokio::spawn(ephemeral_timer),
            tokio::spawn(topic_timer),
            tokio::spawn(scheduler_timer),
        ];
        Ok(Engine {
            inner: Arc::new(EngineInner {
                path,
                epoch,
                store,
                queues,
                jobs,
                mutexes,
                ephemeral,
                topics,
                scheduler,
                stop,
                tasks: Mutex::new(tasks),
            }),
        })
    }

    /// The path of the file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// This leadership's epoch: 1 for the first open of a file, one more for every later one.
    pub fn epoch(&self) -> u64 {
        self.inner.epoch
    }

    /// The queue `name` with default [`QueueOptions`].
    ///
    /// Errors: [`Error::InvalidArgument`] for an empty name or one over 256 bytes.
    pub fn queue(&self, name: &str) -> Result<Queue> {
        self.queue_with(name, QueueOptions::default())
    }

    /// The queue `name` with `options`. Options are this handle's: limits are applied to the
    /// messages it sends.
    pub fn queue_with(&self, name: &str, options: QueueOptions) -> Result<Queue> {
        Queue::new(self.inner.queues.clone(), name, options)
    }

    /// Registers `handler` for the jobs of `spec` and starts its workers at once (jobs already
    /// queued under this name start running). Returns the typed handle to submit and join.
    ///
    /// The handler gets a [`JobCtx`] and the decoded input, and returns the output or a
    /// [`JobError`]. A panic is caught and recorded as a retryable failure with code `PANIC`.
    ///
    /// Errors: [`Error::InvalidArgument`] for a bad option or a name that already has a
    /// handler in this engine.
    pub fn register<I, O, H, Fut>(&self, spec: JobSpec, handler: H) -> Result<JobHandle<I, O>>
    where
        I: Serialize + DeserializeOwned + Send + 'static,
        O: Serialize + DeserializeOwned + Send + 'static,
        H: Fn(JobCtx, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<O, JobError>> + Send + 'static,
    {
        let handle = JobHandle::new(self.inner.jobs.clone(), spec)?;
        handle.start(handler)?;
        Ok(handle)
    }

    /// A typed handle to submit and join jobs of `spec` without running them in this process
    /// (they wait until some engine registers a handler for the name).
    ///
    /// Errors: [`Error::InvalidArgument`] for a bad option.
    pub fn job<I, O>(&self, spec: JobSpec) -> Result<JobHandle<I, O>>
    where
        I: Serialize + DeserializeOwned + Send + 'static,
        O: Serialize + DeserializeOwned + Send + 'static,
    {
        JobHandle::new(self.inner.jobs.clone(), spec)
    }

    /// The cron scheduler: schedules that submit jobs on a cron expression in a time zone.
    /// It runs only here, in the process that holds the file.
    pub fn scheduler(&self) -> Scheduler {
        Scheduler::new(self.inner.scheduler.clone())
    }

    /// The topic `name` with default [`TopicOptions`].
    ///
    /// Errors: [`Error::InvalidArgument`] for an empty name or one over 256 bytes.
    pub fn topic(&self, name: &str) -> Result<Topic> {
        self.topic_with(name, TopicOptions::default())
    }

    /// The topic `name` with `options` (applied to this handle's publishes and groups).
    pub fn topic_with(&self, name: &str, options: TopicOptions) -> Result<Topic> {
        Topic::new(self.inner.topics.clone(), name, options)
    }

    /// The ephemeral set `name` with default [`EphemeralOptions`] (10,000 entries of at most
    /// 4 KiB).
    ///
    /// Errors: [`Error::InvalidArgument`] for an empty name or one over 256 bytes.
    pub fn ephemeral(&self, name: &str) -> Result<Ephemeral> {
        self.ephemeral_with(name, EphemeralOptions::default())
    }

    /// The ephemeral set `name` with `options` (applied to this handle's writes).
    pub fn ephemeral_with(&self, name: &str, options: EphemeralOptions) -> Result<Ephemeral> {
        Ephemeral::new(self.inner.ephemeral.clone(), name, options)
    }

    /// The named mutex `name` (created on first acquisition).
    ///
    /// Errors: [`Error::InvalidArgument`] for an empty name or one over 256 bytes.
    pub fn mutex(&self, name: &str) -> Result<FencedMutex> {
        FencedMutex::new(self.inner.store.clone(), self.inner.mutexes.clone(), name)
    }

    /// Every job, whatever its definition: inspect, list, the dead-letter view, events, metrics.
    pub fn jobs(&self) -> Jobs {
        Jobs::new(self.inner.jobs.clone())
    }

    /// Runs the timed work that is due now (expired leases, delayed messages and jobs coming
    /// due, retention purges) and waits for it to commit, instead of waiting for the
    /// background timer. With a [`ManualClock`](crate::ManualClock), call it after
    /// [`advance`](crate::ManualClock::advance) to observe the effects deterministically.
    pub async fn tick(&self) -> Result<()> {
        let next = queue::maintenance::pass(&self.inner.queues).await?;
        if let Some(at) = next {
            self.inner.queues.timer.lower(at);
        }
        if let Some(at) = self.inner.jobs.sweep().await? {
            self.inner.jobs.timer.lower(at);
        }
        if let Some(at) = self.inner.ephemeral.sweep().await? {
            self.inner.ephemeral.timer.lower(at);
        }
        if let Some(at) = self.inner.topics.sweep().await? {
            self.inner.topics.timer.lower(at);
        }
        if let Some(at) = self.inner.scheduler.pass().await? {
            self.inner.scheduler.timer.lower(at);
        }
        Ok(())
    }

    /// Commits made and ops they carried since open.
    pub fn store_stats(&self) -> StoreStats {
        self.inner.store.stats()
    }

    /// Why the engine refuses writes, if a commit or fsync failed.
    pub fn poisoned(&self) -> Option<String> {
        self.inner.store.poisoned()
    }

    /// Shuts down gracefully: workers stop claiming, running handlers get the stop signal
    /// ([`StopReason::Shutdown`]) and `deadline` to finish. A handler that finishes in time
    /// has its result recorded (an error is not charged as an attempt); one still running then
    /// is stopped and its job handed back to the queue without charging an attempt. Then
    /// queued writes commit, the file closes and the lock is released. Later calls on this
    /// engine (or its handles) fail with [`Error::Closed`].
    pub async fn shutdown(&self, deadline: Duration) -> Result<()> {
        let until = tokio::time::Instant::now() + deadline;
        let _ = self.inner.stop.send(true);
        let jobs = &self.inner.jobs;
        for (_, signal) in jobs.running_signals() {
            signal.fire(StopReason::Shutdown);
        }
        if tokio::time::timeout_at(until, jobs.wait_idle())
            .await
            .is_err()
        {
            // Stop the handlers first, so none writes after its job is handed back, then hand
            // every unfinished attempt back in one write: one commit whatever their number.
            let running = jobs.running_signals();
            for (_, signal) in &running {
                signal.abort();
            }
            let attempts: Vec<(u64, u32)> =
                running.iter().map(|(id, s)| (*id, s.attempt)).collect();
            let epoch = jobs.epoch;
            let released = jobs
                .write(move |ctx, fx| job_ops::recover::release_all(ctx, &attempts, epoch, fx))
                .await;
            match released {
                Ok(n) => tracing::info!(handed_back = n, "unfinished jobs handed back at shutdown"),
                Err(e) => tracing::warn!(error = %e, "could not hand jobs back at shutdown"),
            }
        }
        let tasks: Vec<_> = self
            .inner
            .tasks
            .lock()
            .map(|mut t| t.drain(..).collect())
            .unwrap_or_default();
        for task in tasks {
            // The background tasks stop at the stop signal; one stuck in a write is not waited
            // for past the deadline.
            let abort = task.abort_handle();
            if tokio::time::timeout_at(until, task).await.is_err() {
                abort.abort();
            }
        }
        self.inner.scheduler.leader_lost();
        let store = self.inner.store.clone();
        tokio::task::spawn_blocking(move || store.close())
            .await
            .map_err(|e| Error::Internal(format!("close task failed: {e}")))?;
        tracing::info!(path = %self.inner.path.display(), "jobfile closed");
        Ok(())
    }
}

impl Engine {
    /// Waits for Ctrl-C (SIGINT) or SIGTERM, then shuts down gracefully with `deadline` (see
    /// [`Engine::shutdown`]): unfinished jobs go back to the queue without being charged a
    /// crash, which a process killed by the signal's default action would be.
    ///
    /// Spawn it beside the application's own work. Once the signal comes, the engine's calls
    /// return [`Error::Closed`] while the shutdown goes on: when the application sees that,
    /// it should wait for this future (the task it runs in) before the process exits, or the
    /// hand-back is cut short. `examples/quickstart.rs` shows the pattern. Returns what the
    /// shutdown returns.
    ///
    /// Errors: [`Error::Io`] if the signal handlers cannot be installed (nothing is shut
    /// down then); otherwise those of [`Engine::shutdown`].
    pub async fn shutdown_on_signal(&self, deadline: Duration) -> Result<()> {
        let signal = wait_for_stop_signal().await.map_err(|source| Error::Io {
            path: self.inner.path.clone(),
            source,
        })?;
        tracing::info!(signal, "stop signal received; shutting down");
        self.shutdown(deadline).await
    }
}

/// Waits for SIGINT or SIGTERM (Ctrl-C elsewhere); returns which came.
async fn wait_for_stop_signal() -> std::io::Result<&'static str> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        tokio::select! {
            _ = interrupt.recv() => Ok("SIGINT"),
            _ = terminate.recv() => Ok("SIGTERM"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await?;
        Ok("Ctrl-C")
    }
}

/// The open task died. A panic there comes from reading the file (redb's checks, or a record
/// jobfile cannot make sense of): reported as a damaged file, with what panicked.
fn open_panicked(e: tokio::task::JoinError) -> Error {
    if !e.is_panic() {
        return Error::Internal(format!("open task failed: {e}"));
    }
    crate::store::damaged(&e.into_panic())
}
