//! The engine: opens the file under the leader lock, has every primitive recover, and runs
//! their timed work. It loops over the registered primitives; it names none's recovery or
//! timed work.

mod options;
#[cfg(feature = "postgres")]
mod postgres;

pub use options::EngineOptions;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::ephemeral::core::EphemeralCore;
use crate::ephemeral::{Ephemeral, EphemeralOptions, SetSummary};
use crate::error::{Error, Result};
use crate::job::core::JobCore;
use crate::job::{Batch, BatchBuilder, JobCtx, JobError, JobHandle, JobSpec, Jobs};
use crate::lock::LeaderLock;
use crate::mutex::core::MutexCore;
use crate::mutex::{FencedMutex, MutexLease};
use crate::primitive::Primitive;
use crate::queue::core::QueueCore;
use crate::queue::{Queue, QueueOptions, QueueSummary};
use crate::ratelimit::RateLimit;
use crate::ratelimit::core::RateLimitCore;
#[cfg(feature = "cron")]
use crate::scheduler::{Scheduler, SchedulerCore};
use crate::store::{Store, StoreConfig, StoreStats};
use crate::topic::core::TopicCore;
use crate::topic::{Topic, TopicOptions, TopicSummary};
use crate::transaction::Transaction;

/// An open jobfile: the single owner of the file while it lives.
///
/// Cheap to clone. Keep it (or a clone) alive while the file is in use: dropping the last one
/// stops the background tasks (job workers stop claiming; lease expiry, delayed work and
/// retention stop), and the file closes once the queue and job handles and running attempts
/// are gone too. [`Engine::shutdown`](crate::Engine::shutdown) closes it at once, gracefully, and reports errors.
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
    rate_limits: Arc<RateLimitCore>,
    #[cfg(feature = "cron")]
    scheduler: Arc<SchedulerCore>,
    /// The same primitives, as the engine drives them.
    primitives: Vec<Arc<dyn Primitive>>,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// The node and listener of an engine on PostgreSQL; `None` on a file.
    #[cfg(feature = "postgres")]
    pg: Option<postgres::PgParts>,
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
    /// Errors: [`Error::Locked`](crate::Error::Locked) if another process holds the file; [`Error::NotAJobfile`](crate::Error::NotAJobfile) or
    /// [`Error::NewerFormat`](crate::Error::NewerFormat) for a file this build must not touch (it is left unchanged);
    /// [`Error::Io`](crate::Error::Io) or [`Error::Storage`](crate::Error::Storage) when the disk fails.
    pub async fn open(path: impl AsRef<Path>) -> Result<Engine> {
        Self::open_with(path, EngineOptions::default()).await
    }

    /// Opens the file with `options`.
    pub async fn open_with(path: impl AsRef<Path>, options: EngineOptions) -> Result<Engine> {
        Self::start(path.as_ref().to_path_buf(), options, false).await
    }

    /// An engine in memory (redb's memory backend), with default options: the same API and
    /// behaviour as on a file, without a file, a lock or a log, and nothing outlives it. For
    /// an application's own tests (see the README's "Testing your jobs"): with a
    /// [`ManualClock`](crate::ManualClock) and [`EngineOptions::manual_workers`], jobs run
    /// only when the test calls [`Engine::drain`].
    pub async fn in_memory() -> Result<Engine> {
        EngineOptions::default().open_in_memory().await
    }

    /// Opens the store at `path`, or in memory, and starts the engine.
    async fn start(path: PathBuf, options: EngineOptions, in_memory: bool) -> Result<Engine> {
        let store = Arc::new(Store::new(&path, options.clock.clone()));
        let (stop, stop_rx) = watch::channel(false);
        let queues = Arc::new(QueueCore::new(store.clone(), stop_rx.clone()));
        let jobs = JobCore::new(
            store.clone(),
            options.max_running_jobs,
            options.on_job_metric.clone().map(|h| h.0),
            stop_rx.clone(),
        );
        jobs.set_manual_workers(options.manual_workers);
        let mutexes = Arc::new(MutexCore::new(store.clone(), stop_rx.clone()));
        let ephemeral = Arc::new(EphemeralCore::new(
            store.clone(),
            options.ephemeral_change_retention,
            stop_rx.clone(),
        ));
        let topics = Arc::new(TopicCore::new(store.clone(), stop_rx.clone()));
        let rate_limits = Arc::new(RateLimitCore::new(store.clone()));
        #[cfg(feature = "cron")]
        let scheduler = Arc::new(SchedulerCore::new(
            jobs.clone(),
            options.on_scheduler_metric.clone().map(|h| h.0),
        ));
        #[cfg(not(feature = "cron"))]
        let scheduler = Arc::new(crate::scheduler::Dormant);
        // Every primitive, in the order they recover at open and run their timed work.
        let primitives: Vec<Arc<dyn Primitive>> = vec![
            queues.clone(),
            jobs.clone(),
            mutexes.clone(),
            ephemeral.clone(),
            topics.clone(),
            rate_limits.clone(),
            scheduler.clone(),
        ];
        let epoch = {
            let (store, primitives) = (store.clone(), primitives.clone());
            tokio::task::spawn_blocking(move || open_store(&store, options, &primitives, in_memory))
                .await
                .map_err(open_panicked)??
        };
        tracing::info!(path = %path.display(), epoch, in_memory, "jobfile opened");
        let tasks = primitives
            .iter()
            .filter(|p| p.timer().is_some())
            .map(|p| tokio::spawn(run_timer(p.clone(), store.clock().clone(), stop_rx.clone())))
            .collect();
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
                rate_limits,
                #[cfg(feature = "cron")]
                scheduler,
                primitives,
                stop,
                tasks: Mutex::new(tasks),
                #[cfg(feature = "postgres")]
                pg: None,
            }),
        })
    }

    /// The path of the file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The data file's size in bytes, as the file system reports it now.
    pub fn file_size(&self) -> u64 {
        crate::store::file_len(&self.inner.path)
    }

    /// The open file's store, for the engine's own modules.
    #[cfg_attr(not(feature = "admin"), allow(dead_code))]
    pub(crate) fn store(&self) -> &Arc<Store> {
        &self.inner.store
    }

    /// This leadership's epoch: 1 for the first open of a file, one more for every later one.
    pub fn epoch(&self) -> u64 {
        self.inner.epoch
    }

    /// The queue `name` with default [`QueueOptions`].
    ///
    /// Errors: [`Error::InvalidArgument`](crate::Error::InvalidArgument) for an empty name or one over 256 bytes.
    pub fn queue(&self, name: &str) -> Result<Queue> {
        self.queue_with(name, QueueOptions::default())
    }

    /// Every queue that holds messages, by name, with its counts by state (read from tallies
    /// kept with the messages: as cheap with a million messages as with ten).
    pub async fn queues(&self) -> Result<Vec<QueueSummary>> {
        self.inner.queues.queues().await
    }

    /// Every topic, by name, with its consumer groups' positions.
    pub async fn topics(&self) -> Result<Vec<TopicSummary>> {
        self.inner.topics.topics().await
    }

    /// Every ephemeral set, by name, with its entry count and change-stream position.
    pub async fn ephemeral_sets(&self) -> Result<Vec<SetSummary>> {
        self.inner.ephemeral.sets().await
    }

    /// Every mutex lease live now, by mutex name.
    pub async fn mutex_holders(&self) -> Result<Vec<MutexLease>> {
        self.inner.mutexes.holders().await
    }

    /// The queue `name` with `options`. Options are this handle's: limits are applied to the
    /// messages it sends.
    pub fn queue_with(&self, name: &str, options: QueueOptions) -> Result<Queue> {
        Queue::new(self.inner.queues.clone(), name, options)
    }

    /// Registers `handler` for the jobs of `spec` and starts its workers at once (jobs already
    /// queued under this name start running). Returns the typed handle to submit and join.
    ///
    /// The handler gets a [`JobCtx`](crate::JobCtx) and the decoded input, and returns the output or a
    /// [`JobError`](crate::JobError). A panic is caught and recorded as a retryable failure with code `PANIC`.
    ///
    /// Errors: [`Error::InvalidArgument`](crate::Error::InvalidArgument) for a bad option or a name that already has a
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
    /// Errors: [`Error::InvalidArgument`](crate::Error::InvalidArgument) for a bad option.
    pub fn job<I, O>(&self, spec: JobSpec) -> Result<JobHandle<I, O>>
    where
        I: Serialize + DeserializeOwned + Send + 'static,
        O: Serialize + DeserializeOwned + Send + 'static,
    {
        JobHandle::new(self.inner.jobs.clone(), spec)
    }

    /// The cron scheduler: schedules that submit jobs on a cron expression in a time zone.
    /// It runs only here, in the process that holds the file.
    #[cfg(feature = "cron")]
    pub fn scheduler(&self) -> Scheduler {
        Scheduler::new(self.inner.scheduler.clone())
    }

    /// The topic `name` with default [`TopicOptions`].
    ///
    /// Errors: [`Error::InvalidArgument`](crate::Error::InvalidArgument) for an empty name or one over 256 bytes.
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
    /// Errors: [`Error::InvalidArgument`](crate::Error::InvalidArgument) for an empty name or one over 256 bytes.
    pub fn ephemeral(&self, name: &str) -> Result<Ephemeral> {
        self.ephemeral_with(name, EphemeralOptions::default())
    }

    /// The ephemeral set `name` with `options` (applied to this handle's writes).
    pub fn ephemeral_with(&self, name: &str, options: EphemeralOptions) -> Result<Ephemeral> {
        Ephemeral::new(self.inner.ephemeral.clone(), name, options)
    }

    /// The named mutex `name` (created on first acquisition).
    ///
    /// Errors: [`Error::InvalidArgument`](crate::Error::InvalidArgument) for an empty name or one over 256 bytes.
    pub fn mutex(&self, name: &str) -> Result<FencedMutex> {
        FencedMutex::new(self.inner.mutexes.clone(), name)
    }

    /// The sliding-window rate limiter `name`: at most `limit` checks per `window` for each
    /// identifier. Its counts are shared by every handle of the same name (and, on
    /// PostgreSQL, every node); handles should agree on the window, as counts taken with
    /// another window length are started afresh.
    ///
    /// Errors: [`Error::InvalidArgument`](crate::Error::InvalidArgument) for an empty name or
    /// one over 256 bytes, a zero limit or a window under 1 ms.
    pub fn rate_limit(&self, name: &str, limit: u64, window: Duration) -> Result<RateLimit> {
        RateLimit::new(self.inner.rate_limits.clone(), name, limit, window)
    }

    /// Starts a batch: jobs submitted into it with [`Submit::batch`](crate::Submit::batch),
    /// and callback jobs submitted once every one has ended (`on_complete`), or only if every
    /// one completed (`on_success`), in the transaction that ends the last member. Batches
    /// are kept in the file (not yet on PostgreSQL: [`Error::Unsupported`]).
    pub fn batch(&self) -> BatchBuilder {
        BatchBuilder::new(self.inner.jobs.clone())
    }

    /// The batch with id `id`, opened earlier (maybe by an earlier process): to seal,
    /// inspect or cancel it.
    pub fn batch_with_id(&self, id: u64) -> Batch {
        Batch::new(self.inner.jobs.clone(), id)
    }

    /// Runs `f` as one transaction of the file: the application's own tables (bytes to bytes,
    /// see [`Transaction`]) and the jobs it submits are committed together, or not at all.
    /// An error `f` returns rolls everything back and is returned as it was. The transaction
    /// joins the group commit of the engine's own writes, so it costs what a submit costs,
    /// plus its own writes, and is as durable (acknowledged means durable, recovered from the
    /// write-ahead log after a crash).
    ///
    /// `f` runs on the file's writer thread, while every other write waits: keep it short,
    /// never block in it, and make it depend on nothing but the transaction, as it may run
    /// more than once (when another write of its group fails, each is run again alone). What
    /// it returns is from its last run. Its tables are named freely: stored with a prefix,
    /// no name reaches one of jobfile's own tables.
    ///
    /// ```no_run
    /// # use jobfile::{Engine, JobSpec};
    /// # async fn demo(engine: Engine) -> jobfile::Result<()> {
    /// let email = engine.job::<String, ()>(JobSpec::new("order-email"))?;
    /// let order_id: u64 = 1042;
    /// engine
    ///     .transaction(move |tx| {
    ///         tx.insert("orders", &order_id.to_be_bytes(), br#"{"total":1999}"#)?;
    ///         tx.submit(email.submit(format!("order {order_id} confirmed")))?;
    ///         Ok::<_, jobfile::Error>(())
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// Errors: those of `f`; [`Error::Unsupported`] on PostgreSQL, where an application
    /// keeps its own tables in its own database.
    pub async fn transaction<T, E, F>(&self, f: F) -> std::result::Result<T, E>
    where
        T: Send + 'static,
        E: From<Error> + Send + 'static,
        F: FnMut(&mut Transaction<'_, '_>) -> std::result::Result<T, E> + Send + 'static,
    {
        crate::transaction::run(&self.inner.jobs, f).await
    }

    /// The value under `key` in the application table `table`, as last committed (see
    /// [`Engine::transaction`]). A table never written reads as empty.
    pub fn app_get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        crate::transaction::read(&self.inner.jobs, table, |t| {
            Ok(t.get(key)?.map(|v| v.value().to_vec()))
        })
        .map(Option::flatten)
    }

    /// Up to `limit` entries of the application table `table` from key `from` on, in key
    /// order, as last committed.
    pub fn app_range(
        &self,
        table: &str,
        from: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        crate::transaction::read(&self.inner.jobs, table, |t| {
            let mut out = Vec::new();
            for entry in t.range(from..)?.take(limit) {
                let (k, v) = entry?;
                out.push((k.value().to_vec(), v.value().to_vec()));
            }
            Ok(out)
        })
        .map(Option::unwrap_or_default)
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
        for primitive in &self.inner.primitives {
            let Some(timer) = primitive.timer() else {
                continue;
            };
            if let Some(at) = primitive.clone().pass().await? {
                timer.lower(at);
            }
        }
        #[cfg(feature = "postgres")]
        self.poll_other_nodes().await?;
        Ok(())
    }

    /// Runs every job that is due now to its end, in the calling task, and returns each
    /// attempt that ran with where it left its job, in the order they ran: first the timed
    /// work due at the clock's time (as [`tick`](Self::tick)), then rounds that each take
    /// the next due job of every registered definition, until a round finds none. A retry
    /// due at once runs in the same drain; one with a backoff runs in a later drain, once the
    /// clock has reached it. A paused definition's jobs are left queued, and a start limit
    /// holds as with workers.
    ///
    /// Meant for tests, with [`EngineOptions::manual_workers`]: then only drains run jobs, so
    /// the report is exactly what ran. With workers running, it runs only what they have not
    /// taken, and does not wait for them. A handler that keeps submitting due jobs of its
    /// own keeps the drain going.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> jobfile::Result<()> {
    /// use jobfile::{EngineOptions, JobCtx, JobError, JobSpec, JobState};
    /// let engine = EngineOptions::new().manual_workers(true).open_in_memory().await?;
    /// let double = engine.register(JobSpec::new("double"), |_: JobCtx, n: u32| async move {
    ///     Ok::<_, JobError>(n * 2)
    /// })?;
    /// let id = double.submit(21).await?.id;
    /// let ran = engine.drain().await?;
    /// assert_eq!((ran[0].id, ran[0].state), (id, JobState::Completed));
    /// # Ok(()) }
    /// ```
    pub async fn drain(&self) -> Result<Vec<crate::Drained>> {
        let mut ran = Vec::new();
        loop {
            self.tick().await?;
            let round = crate::job::drain::round(&self.inner.jobs).await?;
            if round.is_empty() {
                return Ok(ran);
            }
            ran.extend(round);
        }
    }

    /// Commits made to the file and ops they carried since open. On PostgreSQL, all zero: the
    /// database keeps its own statistics (`pg_stat_database`, `pg_stat_user_tables`).
    pub fn store_stats(&self) -> StoreStats {
        self.inner.store.stats()
    }

    /// Why the engine refuses writes, if a commit or fsync failed.
    pub fn poisoned(&self) -> Option<String> {
        self.inner.store.poisoned()
    }

    /// Shuts down gracefully: workers stop claiming, running handlers get the stop signal
    /// ([`StopReason::Shutdown`](crate::StopReason::Shutdown)) and `deadline` to finish. A handler that finishes in time
    /// has its result recorded (an error is not charged as an attempt); one still running then
    /// is stopped and its job handed back to the queue without charging an attempt. Then
    /// queued writes commit, the file closes and the lock is released. Later calls on this
    /// engine (or its handles) fail with [`Error::Closed`](crate::Error::Closed).
    pub async fn shutdown(&self, deadline: Duration) -> Result<()> {
        let until = tokio::time::Instant::now() + deadline;
        let _ = self.inner.stop.send(true);
        for primitive in &self.inner.primitives {
            primitive.clone().drain(until).await;
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
        for primitive in &self.inner.primitives {
            primitive.stopped();
        }
        #[cfg(feature = "postgres")]
        self.leave().await;
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
    /// [`Engine::shutdown`](crate::Engine::shutdown)): unfinished jobs go back to the queue without being charged a
    /// crash, which a process killed by the signal's default action would be.
    ///
    /// Spawn it beside the application's own work. Once the signal comes, the engine's calls
    /// return [`Error::Closed`](crate::Error::Closed) while the shutdown goes on: when the application sees that,
    /// it should wait for this future (the task it runs in) before the process exits, or the
    /// hand-back is cut short. `examples/quickstart` shows the pattern. Returns what the
    /// shutdown returns.
    ///
    /// Errors: [`Error::Io`](crate::Error::Io) if the signal handlers cannot be installed (nothing is shut
    /// down then); otherwise those of [`Engine::shutdown`](crate::Engine::shutdown).
    pub async fn shutdown_on_signal(&self, deadline: Duration) -> Result<()> {
        let signal = wait_for_stop_signal().await.map_err(|source| Error::Io {
            path: self.inner.path.clone(),
            source,
        })?;
        tracing::info!(signal, "stop signal received; shutting down");
        self.shutdown(deadline).await
    }
}

impl EngineOptions {
    /// Opens `path` with these options. See [`Engine::open`](crate::Engine::open).
    pub async fn open(self, path: impl AsRef<Path>) -> Result<Engine> {
        Engine::open_with(path, self).await
    }

    /// An engine in memory with these options. See [`Engine::in_memory`](crate::Engine::in_memory).
    pub async fn open_in_memory(self) -> Result<Engine> {
        Engine::start(PathBuf::from(IN_MEMORY), self, true).await
    }
}

/// What [`Engine::path`] shows for an engine in memory.
const IN_MEMORY: &str = ":memory:";

/// Takes the leader lock (or waits for it) and opens the store, or opens one in memory; every
/// primitive recovers in the transaction that starts the new epoch. Blocking. Returns the
/// epoch.
fn open_store(
    store: &Store,
    options: EngineOptions,
    primitives: &[Arc<dyn Primitive>],
    in_memory: bool,
) -> Result<u64> {
    let config = StoreConfig {
        durability: options.durability,
        max_batch: options.max_batch,
        quick_repair: options.quick_repair,
        checkpoint_bytes: options.checkpoint_bytes,
        checkpoint_every: options.checkpoint_every,
        cache_bytes: options.cache_bytes,
        faults: options.faults,
        compact: options.compact_on_open,
    };
    let schema = primitives.iter().map(|p| p.tables()).collect();
    let recover = |ctx: &mut crate::store::TxCtx<'_>, epoch| {
        primitives
            .iter()
            .try_for_each(|p| p.clone().recover(ctx, epoch))
    };
    if in_memory {
        return Ok(store.open_in_memory(config, schema, recover)?.0);
    }
    let lock = if options.standby {
        LeaderLock::acquire_blocking(store.path())?
    } else {
        LeaderLock::try_acquire(store.path())?
    };
    Ok(store.open(lock, config, schema, recover)?.0)
}

/// Runs `primitive`'s passes whenever its timer comes due, until the engine stops.
async fn run_timer(
    primitive: Arc<dyn Primitive>,
    clock: Arc<dyn Clock>,
    stop: watch::Receiver<bool>,
) {
    if let Some(timer) = primitive.timer() {
        crate::timer::run(primitive.name(), timer, clock, stop, || {
            primitive.clone().pass()
        })
        .await;
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
