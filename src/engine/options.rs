//! How to open a file: [`EngineOptions`].

use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::job::{JobMetric, MetricCallback};
#[cfg(feature = "cron")]
use crate::scheduler::{SchedulerMetric, SchedulerMetricCallback};
use crate::store::Durability;
use crate::store::faults::FaultInjector;

/// How to open a file. `EngineOptions::new().open(path)` is the same as [`Engine::open`](crate::Engine::open).
#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub(super) standby: bool,
    pub(super) durability: Durability,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) max_batch: usize,
    pub(super) quick_repair: bool,
    pub(super) checkpoint_bytes: u64,
    pub(super) checkpoint_every: Duration,
    pub(super) cache_bytes: usize,
    pub(super) compact_on_open: bool,
    pub(super) faults: Option<FaultInjector>,
    pub(super) max_running_jobs: usize,
    pub(super) manual_workers: bool,
    pub(super) on_job_metric: Option<MetricHook>,
    pub(super) ephemeral_change_retention: Duration,
    #[cfg(feature = "cron")]
    pub(super) on_scheduler_metric: Option<SchedulerHook>,
    /// Whether [`clock`](EngineOptions::clock) set the clock (a PostgreSQL engine uses the
    /// database clock otherwise).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(super) explicit_clock: bool,
    #[cfg(feature = "postgres")]
    pub(super) pg_schema: String,
    #[cfg(feature = "postgres")]
    pub(super) pg_pool_size: usize,
    #[cfg(feature = "postgres")]
    pub(super) pg_liveness: crate::postgres::Liveness,
    #[cfg(feature = "postgres")]
    pub(super) pg_poll_only: bool,
}

/// The scheduler's metrics callback, shown by `Debug` only as present.
#[cfg(feature = "cron")]
#[derive(Clone)]
pub(super) struct SchedulerHook(pub(super) SchedulerMetricCallback);

#[cfg(feature = "cron")]
impl std::fmt::Debug for SchedulerHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SchedulerHook")
    }
}

/// The metrics callback, shown by `Debug` only as present.
#[derive(Clone)]
pub(super) struct MetricHook(pub(super) MetricCallback);

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
            quick_repair: true,
            checkpoint_bytes: 4 << 20,
            checkpoint_every: Duration::from_secs(30),
            cache_bytes: 64 * 1024 * 1024,
            compact_on_open: false,
            faults: None,
            max_running_jobs: 256,
            manual_workers: false,
            on_job_metric: None,
            ephemeral_change_retention: Duration::from_secs(3600),
            #[cfg(feature = "cron")]
            on_scheduler_metric: None,
            explicit_clock: false,
            #[cfg(feature = "postgres")]
            pg_schema: "jobfile".into(),
            #[cfg(feature = "postgres")]
            pg_pool_size: 8,
            #[cfg(feature = "postgres")]
            pg_liveness: crate::postgres::Liveness::default(),
            #[cfg(feature = "postgres")]
            pg_poll_only: false,
        }
    }
}

impl EngineOptions {
    /// The defaults: fail at once if the file is held, fsync every commit, system clock.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registered handlers start no workers: jobs run only when the application calls
    /// [`Engine::drain`](crate::Engine::drain), one at a time, in the calling task. For tests
    /// that decide exactly when jobs run (with a [`ManualClock`](crate::ManualClock), down to
    /// the millisecond). Default `false`.
    pub fn manual_workers(mut self, manual: bool) -> Self {
        self.manual_workers = manual;
        self
    }

    /// Wait for the file instead of failing with [`Error::Locked`](crate::Error::Locked): the open completes the moment
    /// the holder closes or dies, and this process then leads. Default `false`.
    pub fn standby(mut self, standby: bool) -> Self {
        self.standby = standby;
        self
    }

    /// How commits reach the disk. Default [`Durability::Immediate`](crate::Durability::Immediate) (fsync per commit).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// The clock every time-dependent decision reads. Default: the system clock. Tests pass a
    /// [`ManualClock`](crate::ManualClock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self.explicit_clock = true;
        self
    }

    /// PostgreSQL only (feature `postgres`): the schema jobfile's tables live in (default
    /// `jobfile`; lowercase letters, digits and `_`). Nodes share work when they share it.
    #[cfg(feature = "postgres")]
    pub fn postgres_schema(mut self, schema: impl Into<String>) -> Self {
        self.pg_schema = schema.into();
        self
    }

    /// PostgreSQL only: connections in this node's pool (default 8, at least 2).
    #[cfg(feature = "postgres")]
    pub fn postgres_pool_size(mut self, connections: usize) -> Self {
        self.pg_pool_size = connections.max(2);
        self
    }

    /// PostgreSQL only: how nodes judge each other. Each node records a heartbeat every
    /// `heartbeat` (default 1 s); a node whose connection is gone is dead once its last
    /// heartbeat is `grace` old (default 5 s), and any node whose heartbeat is `lease` old
    /// (default 30 s) is dead even if its connection lives (a stopped or partitioned process).
    /// A live node recovers a dead node's running jobs.
    #[cfg(feature = "postgres")]
    pub fn node_liveness(mut self, heartbeat: Duration, grace: Duration, lease: Duration) -> Self {
        self.pg_liveness = crate::postgres::Liveness {
            heartbeat,
            grace,
            lease,
        };
        self
    }

    /// PostgreSQL only: find other nodes' changes by polling alone (every second), without
    /// `LISTEN`/`NOTIFY` or the session advisory lock that proves a node alive: for servers
    /// reached through a connection pooler in transaction mode, where neither works. A node
    /// is then judged by its heartbeat alone (dead once it is `grace` old, see
    /// [`node_liveness`](Self::node_liveness)), and work made ready on another node starts
    /// here within a second instead of at once. Default: off.
    #[cfg(feature = "postgres")]
    pub fn postgres_poll_only(mut self, poll_only: bool) -> Self {
        self.pg_poll_only = poll_only;
        self
    }

    /// The most ops one commit may carry. Default 4,096.
    pub fn max_batch(mut self, ops: usize) -> Self {
        self.max_batch = ops.max(1);
        self
    }

    /// When the file itself is made durable (a checkpoint): once the write-ahead log beside it
    /// (`<file>.wal`) holds `bytes` since the last checkpoint, or `every` after it if anything
    /// was logged since. Defaults: 4 MiB and 30 s.
    ///
    /// Commits are made durable by appending their changes to the log, one sync for many;
    /// the file's B-tree is synced only at checkpoints. The log's size is bounded by `bytes`
    /// (plus one batch), and so is the replay at the open after a crash: a smaller bound makes
    /// that open faster and costs a durable commit of the file more often.
    pub fn checkpoint(mut self, bytes: u64, every: Duration) -> Self {
        self.checkpoint_bytes = bytes.max(1);
        self.checkpoint_every = every;
        self
    }

    /// Store redb's allocator state with every checkpoint (see
    /// [`checkpoint`](Self::checkpoint)), so that the open after a crash need not walk the
    /// whole file to repair it. Default `true`.
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
    #[cfg(feature = "testing")]
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

    /// A callback told of every job event worth counting ([`JobMetric`](crate::JobMetric)): submits, starts,
    /// completions with their run time, retries, failures, cancels, timeouts, recoveries.
    /// It runs on the writer's thread after each commit, so it must be quick; a panic in it is
    /// caught and ignored.
    pub fn on_job_metric(mut self, callback: impl Fn(&JobMetric) + Send + Sync + 'static) -> Self {
        self.on_job_metric = Some(MetricHook(Arc::new(callback)));
        self
    }

    /// A callback told of everything the scheduler does ([`SchedulerMetric`](crate::SchedulerMetric)). It runs on
    /// the calling task; a panic in it is caught and ignored.
    #[cfg(feature = "cron")]
    pub fn on_scheduler_metric(
        mut self,
        callback: impl Fn(&SchedulerMetric) + Send + Sync + 'static,
    ) -> Self {
        self.on_scheduler_metric = Some(SchedulerHook(Arc::new(callback)));
        self
    }

    /// How long the change streams of ephemeral sets keep each change. A reader further behind
    /// gets [`Error::Lagged`](crate::Error::Lagged). Default 1 hour.
    pub fn ephemeral_change_retention(mut self, keep: Duration) -> Self {
        self.ephemeral_change_retention = keep;
        self
    }
}
