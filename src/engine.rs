//! The engine: opens the file under the leader lock, recovers, and runs the background tasks.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::lock::LeaderLock;
use crate::queue::{self, Queue, QueueCore, QueueOptions};
use crate::store::faults::FaultInjector;
use crate::store::{Durability, Store, StoreConfig, StoreStats};

/// How to open a file. `EngineOptions::new().open(path)` is the same as [`Engine::open`].
#[derive(Debug, Clone)]
pub struct EngineOptions {
    standby: bool,
    durability: Durability,
    clock: Arc<dyn Clock>,
    max_batch: usize,
    quick_repair: bool,
    cache_bytes: usize,
    faults: Option<FaultInjector>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            standby: false,
            durability: Durability::Immediate,
            clock: Arc::new(SystemClock),
            max_batch: 4_096,
            quick_repair: false,
            cache_bytes: 64 * 1024 * 1024,
            faults: None,
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

    /// Ask redb to store its allocator state with every durable commit, making the repair after a
    /// crash fast at some cost per commit. Default `false`.
    pub fn quick_repair(mut self, enabled: bool) -> Self {
        self.quick_repair = enabled;
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

    /// Opens `path` with these options. See [`Engine::open`].
    pub async fn open(self, path: impl AsRef<Path>) -> Result<Engine> {
        Engine::open_with(path, self).await
    }
}

/// An open jobfile: the single owner of the file while it lives.
///
/// Cheap to clone. Keep it (or a clone) alive while the file is in use: dropping the last one
/// stops the background tasks (lease expiry, delayed messages, retention), and the file closes
/// once the queue handles are dropped too. [`Engine::shutdown`] closes it at once, gracefully,
/// and reports errors.
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
        let (store, epoch, next_deadline) = tokio::task::spawn_blocking(move || {
            let lock = if options.standby {
                LeaderLock::acquire_blocking(&open_path)?
            } else {
                LeaderLock::try_acquire(&open_path)?
            };
            let config = StoreConfig {
                durability: options.durability,
                max_batch: options.max_batch,
                quick_repair: options.quick_repair,
                cache_bytes: options.cache_bytes,
                faults: options.faults,
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
                // Timed work that came due while no process held the file is done at once.
                Ok(queue::ops::maintain(ctx, usize::MAX)?.next_deadline)
            })
        })
        .await
        .map_err(|e| Error::Internal(format!("open task failed: {e}")))??;
        tracing::info!(path = %path.display(), epoch, "jobfile opened");
        let store = Arc::new(store);
        let queues = Arc::new(QueueCore::new(store.clone(), next_deadline));
        let (stop, stop_rx) = watch::channel(false);
        let tasks = vec![tokio::spawn(queue::maintenance::run(
            queues.clone(),
            stop_rx,
        ))];
        Ok(Engine {
            inner: Arc::new(EngineInner {
                path,
                epoch,
                store,
                queues,
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

    /// Runs the timed work that is due now (expired leases, delayed messages coming due,
    /// dead letters past retention) and waits for it to commit, instead of waiting for the
    /// background timer. With a [`ManualClock`](crate::ManualClock), call it after
    /// [`advance`](crate::ManualClock::advance) to observe the effects deterministically.
    pub async fn tick(&self) -> Result<()> {
        let next = queue::maintenance::pass(&self.inner.queues).await?;
        if let Some(at) = next {
            self.inner.queues.timer.lower(at);
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

    /// Stops the background tasks, lets writes already queued commit, closes the file and
    /// releases the lock, waiting at most `deadline` for running tasks. Later calls on this
    /// engine (or its queues) fail with [`Error::Closed`].
    pub async fn shutdown(&self, deadline: Duration) -> Result<()> {
        let _ = self.inner.stop.send(true);
        let tasks: Vec<_> = self
            .inner
            .tasks
            .lock()
            .map(|mut t| t.drain(..).collect())
            .unwrap_or_default();
        for task in tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout(deadline, task).await.is_err() {
                abort.abort();
            }
        }
        let store = self.inner.store.clone();
        tokio::task::spawn_blocking(move || store.close())
            .await
            .map_err(|e| Error::Internal(format!("close task failed: {e}")))?;
        tracing::info!(path = %self.inner.path.display(), "jobfile closed");
        Ok(())
    }
}
