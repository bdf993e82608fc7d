//! Generic storage: the only code that owns the redb database. It knows how to commit, not what
//! a job or a message is.

use serde::{Deserialize, Serialize};

pub(crate) mod apart;
mod backend;
pub(crate) mod change;
pub(crate) mod codec;
pub(crate) mod faults;
pub(crate) mod meta;
mod syncer;
pub(crate) mod tables;
mod wal;
pub(crate) mod writer;

use std::fs::OpenOptions;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use redb::{Builder, ReadTransaction, ReadableDatabase};
use tokio::sync::oneshot;

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::file_identity::FileIdentity;
use crate::lock::LeaderLock;
use backend::Backend;
use faults::FaultInjector;
pub(crate) use tables::{APP_TABLE_PREFIX, Schema, SchemaTable};
use writer::{Msg, TypedOp, Writer, WriterSettings};
pub(crate) use writer::{TxCtx, damaged};

/// How commits reach the disk.
///
/// A commit is made durable by appending its changes to the write-ahead log beside the file
/// (`<file>.wal`); the file itself is synced at checkpoints (see
/// [`EngineOptions::checkpoint`](crate::EngineOptions::checkpoint)). After a crash, the next
/// open replays the log.
///
/// A read never shows a commit whose log record is still on its way to the disk: it waits for
/// that sync (on a local SSD, which syncs well under a millisecond, at most one; on a slow
/// disk under load, the one running and the next), so what a read shows a crash cannot undo.
/// Callers of a commit are answered, and hooks that act on it (a submit handed to a waiting
/// worker) run, only once it is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// Every commit's log record is fsync'd before any caller of that commit is answered (the
    /// default). Commits that arrive while a sync runs share the next one.
    Immediate,
    /// Log records are written before their callers are answered but fsync'd only every
    /// `flush_every`: a crash of the process (even a SIGKILL) loses nothing, since what was
    /// written is in the operating system's hands; a crash of the machine or a power loss can
    /// lose what was acknowledged since the last sync, never more, and never leaves the file
    /// inconsistent.
    Relaxed {
        /// The longest time an acknowledged write may wait for its fsync.
        flush_every: Duration,
    },
}

/// Writer counters, readable as a snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StoreStats {
    /// Transactions committed.
    pub commits: u64,
    /// Ops applied in those commits.
    pub ops: u64,
    /// Syncs of the write-ahead log: each made one or more commits durable.
    pub log_syncs: u64,
    /// Checkpoints: durable commits of the file itself, after which the log starts over.
    pub checkpoints: u64,
}

/// State shared between the writer thread and callers.
#[derive(Debug)]
pub(crate) struct StoreShared {
    /// Why the store is poisoned, once it is; waiters subscribe to hear of it.
    poisoned: tokio::sync::watch::Sender<Option<String>>,
    commits: AtomicU64,
    ops: AtomicU64,
    pub(crate) log_syncs: AtomicU64,
    pub(crate) checkpoints: AtomicU64,
    /// Closed by poisoning: the file's backend refuses every write from then on, so nothing
    /// unacknowledged reaches the file, not even as redb closes it.
    fence: Arc<std::sync::atomic::AtomicBool>,
    /// Commits readers may see, counted (see [`StoreShared::until_visible_durable`]) ...
    visible: AtomicU64,
    /// ... and how many of them are durable; `durable_now` is its copy that a read checks
    /// without taking the lock.
    durable: Mutex<u64>,
    durable_now: AtomicU64,
    durable_changed: std::sync::Condvar,
}

impl Default for StoreShared {
    fn default() -> Self {
        StoreShared {
            poisoned: tokio::sync::watch::Sender::new(None),
            commits: AtomicU64::new(0),
            ops: AtomicU64::new(0),
            log_syncs: AtomicU64::new(0),
            checkpoints: AtomicU64::new(0),
            fence: Arc::default(),
            visible: AtomicU64::new(0),
            durable: Mutex::new(0),
            durable_now: AtomicU64::new(0),
            durable_changed: std::sync::Condvar::new(),
        }
    }
}

impl StoreShared {
    pub(crate) fn poisoned(&self) -> Option<String> {
        self.poisoned.borrow().clone()
    }

    /// Poisons the store (the first cause stays), saying so in the log once.
    fn poison(&self, cause: String) {
        self.fence.store(true, Ordering::SeqCst);
        self.poisoned.send_if_modified(|p| {
            if p.is_some() {
                return false;
            }
            tracing::error!(error = %cause, "the engine is now poisoned");
            *p = Some(cause);
            true
        });
        // Readers waiting for durability wait no more.
        let _guard = self.durable.lock().unwrap_or_else(|p| p.into_inner());
        self.durable_changed.notify_all();
    }

    fn record_commit(&self, ops: usize) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.ops.fetch_add(ops as u64, Ordering::Relaxed);
    }

    /// Counts a commit that readers may see from now on; returns its number. Called before
    /// the commit, so a read that sees it finds its number counted.
    fn will_be_visible(&self) -> u64 {
        self.visible.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Every commit up to number `upto` is durable.
    fn mark_durable(&self, upto: u64) {
        let mut durable = self.durable.lock().unwrap_or_else(|p| p.into_inner());
        if upto > *durable {
            *durable = upto;
            self.durable_now.store(upto, Ordering::SeqCst);
            self.durable_changed.notify_all();
        }
    }

    /// The number of the last commit readers may see.
    fn visible_now(&self) -> u64 {
        self.visible.load(Ordering::SeqCst)
    }

    /// Waits until every commit a read begun now may see is durable: a read never shows what
    /// a crash could undo. On a poisoned store, what is not durable by then never will be:
    /// such a read is refused.
    fn until_visible_durable(&self) -> Result<()> {
        let needed = self.visible.load(Ordering::SeqCst);
        if self.durable_now.load(Ordering::SeqCst) >= needed {
            return Ok(());
        }
        let mut durable = self.durable.lock().unwrap_or_else(|p| p.into_inner());
        while *durable < needed {
            if let Some(cause) = self.poisoned() {
                return Err(Error::Poisoned { cause });
            }
            durable = self
                .durable_changed
                .wait_timeout(durable, Duration::from_millis(10))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        Ok(())
    }
}

/// Settings the store needs at open.
#[derive(Debug, Clone)]
pub(crate) struct StoreConfig {
    pub(crate) durability: Durability,
    pub(crate) max_batch: usize,
    pub(crate) quick_repair: bool,
    pub(crate) checkpoint_bytes: u64,
    pub(crate) checkpoint_every: Duration,
    pub(crate) cache_bytes: usize,
    pub(crate) faults: Option<FaultInjector>,
    pub(crate) compact: bool,
}

/// The open file: the database, the writer thread feeding it, and the leader lock.
pub(crate) struct Store {
    path: PathBuf,
    db: RwLock<Option<Arc<redb::Database>>>,
    sender: Mutex<Option<Sender<Msg>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    lock: Mutex<Option<LeaderLock>>,
    shared: Arc<StoreShared>,
    clock: Arc<dyn Clock>,
}

const REDB_MAGIC: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];

impl Store {
    /// The store of the file at `path`, not open yet: until [`Store::open`] succeeds, reads
    /// and writes fail with [`Error::Closed`]. Those who will use it can hold it meanwhile.
    pub(crate) fn new(path: &Path, clock: Arc<dyn Clock>) -> Store {
        Store {
            path: path.to_path_buf(),
            db: RwLock::new(None),
            sender: Mutex::new(None),
            writer: Mutex::new(None),
            lock: Mutex::new(None),
            shared: Arc::new(StoreShared::default()),
            clock,
        }
    }

    /// Opens (or creates) the file under an already held leader lock, checks it is a jobfile
    /// file this build can read (its tables are the metadata and `schema`), then runs
    /// `recover` in the same transaction that starts the new epoch. Returns the epoch.
    pub(crate) fn open<R>(
        &self,
        lock: LeaderLock,
        config: StoreConfig,
        schema: Schema,
        recover: impl FnOnce(&mut TxCtx<'_>, u64) -> Result<R>,
    ) -> Result<(u64, R)> {
        let path = self.path.as_path();
        let opened = precheck(path, &schema).and_then(|existing| {
            if !existing {
                create_file(path, &config, &schema)?;
            }
            Ok(existing)
        });
        let mut lock = Some(lock);
        let opened = opened
            .and_then(|existing| self.open_checked(existing, &mut lock, config, schema, recover));
        let opened = opened.map_err(|e| match e {
            // The leader lock is ours, yet the data file is open elsewhere: the lock file that
            // process locked is not the one the path names now.
            Error::Locked { .. } => Error::FileReplaced {
                path: crate::lock::lock_path(path),
                detail: format!(
                    "was deleted or replaced while another process holds {}; stop that process \
                     (or wait for it) before opening the file again",
                    path.display()
                ),
            },
            other => other,
        });
        if let Some(lock) = lock.take()
            && opened.is_err()
        {
            // A failed open leaves no lock file it created behind.
            lock.release_and_remove();
        }
        opened
    }

    fn open_checked<R>(
        &self,
        existing: bool,
        lock: &mut Option<LeaderLock>,
        config: StoreConfig,
        schema: Schema,
        recover: impl FnOnce(&mut TxCtx<'_>, u64) -> Result<R>,
    ) -> Result<(u64, R)> {
        let path = self.path.as_path();
        let mut builder = Builder::new();
        builder.set_cache_size(config.cache_bytes);
        let shown = path.display().to_string();
        builder.set_repair_callback(move |session| {
            if session.progress() == 0.0 {
                tracing::warn!(
                    path = %shown,
                    "the file was not closed cleanly and its allocator state was not saved: \
                     verifying and repairing it (time grows with the file size)"
                );
            }
        });
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|source| Error::Io {
                path: path.to_path_buf(),
                source,
            })?;
        let identity = file
            .try_clone()
            .and_then(|clone| FileIdentity::new(path, clone))
            .map_err(|source| Error::Io {
                path: path.to_path_buf(),
                source,
            })?;
        let backend = Backend::new(file, config.faults.clone(), self.shared.fence.clone())?;
        let mut db = builder
            .create_with_backend(backend)
            .map_err(|e| open_error(path, e))?;
        if existing {
            // A file that needed repair could not be inspected read-only; check it now, before
            // anything of ours is written.
            meta::inspect(&db, path, &schema)?;
            if config.compact {
                let before = file_len(path);
                db.compact()
                    .map_err(|e| Error::Storage(format!("compaction failed: {e}")))?;
                tracing::info!(
                    path = %path.display(),
                    before,
                    after = file_len(path),
                    "file compacted"
                );
            }
        }
        let log = wal::Wal::open(path, config.faults.clone())?;
        let opened = self.start(db, Some(identity), Some(log), &config, &schema, recover)?;
        if let Some(lock) = lock.take() {
            put(&self.lock, lock);
        }
        Ok(opened)
    }

    /// Opens a store in memory (no file, no lock, no log): `recover` runs in the transaction
    /// that starts epoch 1. Nothing outlives the engine.
    pub(crate) fn open_in_memory<R>(
        &self,
        config: StoreConfig,
        schema: Schema,
        recover: impl FnOnce(&mut TxCtx<'_>, u64) -> Result<R>,
    ) -> Result<(u64, R)> {
        let mut builder = Builder::new();
        builder.set_cache_size(config.cache_bytes);
        let db = builder
            .create_with_backend(Backend::memory(self.shared.fence.clone()))
            .map_err(|e| Error::Storage(format!("creating a database in memory: {e}")))?;
        self.start(db, None, None, &config, &schema, recover)
    }

    /// Starts the writer (and the log's sync thread) on `db`, after the first transaction has
    /// replayed `log` (the log and what it holds; `None` in memory) and run `recover`.
    fn start<R>(
        &self,
        db: redb::Database,
        identity: Option<FileIdentity>,
        log: Option<(wal::Wal, Vec<u8>)>,
        config: &StoreConfig,
        schema: &Schema,
        recover: impl FnOnce(&mut TxCtx<'_>, u64) -> Result<R>,
    ) -> Result<(u64, R)> {
        let path = self.path.as_path();
        let db = Arc::new(db);
        let (tx, rx) = mpsc::channel();
        let mut writer = Writer::new(
            db.clone(),
            rx,
            self.shared.clone(),
            self.clock.clone(),
            identity,
            WriterSettings {
                durability: config.durability,
                max_batch: config.max_batch,
                quick_repair: config.quick_repair,
                checkpoint_bytes: config.checkpoint_bytes,
                checkpoint_every: config.checkpoint_every,
            },
        );
        let (wal, log) = log.unzip();
        let (epoch, recovered) =
            writer.run_init(schema, log.as_deref().unwrap_or_default(), recover)?;
        drop(log);
        match wal {
            Some(wal) => writer.start_log(wal).map_err(|source| Error::Io {
                path: path.to_path_buf(),
                source,
            })?,
            None => writer.start_without_log(),
        }
        let handle = std::thread::Builder::new()
            .name("jobfile-writer".into())
            .spawn(move || writer.run())
            .map_err(|source| Error::Io {
                path: path.to_path_buf(),
                source,
            })?;
        *self.db.write().unwrap_or_else(|p| p.into_inner()) = Some(db);
        put(&self.sender, tx);
        put(&self.writer, handle);
        Ok((epoch, recovered))
    }

    /// Records in the lock file where this process serves the admin API (`None`: no longer),
    /// for a second process that finds the file held.
    #[cfg_attr(not(feature = "admin"), allow(dead_code))]
    pub(crate) fn advertise_admin(&self, url: Option<String>) {
        if let Some(lock) = self.lock.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            lock.advertise_admin(url);
        }
    }

    /// The path of the file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The clock every decision reads.
    pub(crate) fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Sends an op to the writer and waits until its batch is durable.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnMut(&mut TxCtx<'_>) -> Result<T> + Send + 'static,
    {
        if let Some(cause) = self.shared.poisoned() {
            return Err(Error::Poisoned { cause });
        }
        let (reply, rx) = oneshot::channel();
        let op = TypedOp {
            f,
            result: None,
            reply,
            span: tracing::Span::current(),
        };
        {
            let sender = self.sender.lock().map_err(|_| Error::Closed)?;
            let sender = sender.as_ref().ok_or(Error::Closed)?;
            sender
                .send(Msg::Op(Box::new(op)))
                .map_err(|_| Error::Closed)?;
        }
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Runs `f` on a read transaction of the last durable state: a commit whose log record
    /// is still being synced is waited for (at most two syncs), so a read never shows what a
    /// crash could undo; on a poisoned store, a read that would show a commit that never
    /// became durable is refused with [`Error::Poisoned`]. (On the writer's thread, where hooks
    /// run, nothing is waited for.)
    pub(crate) fn read<T>(&self, f: impl FnOnce(&ReadTransaction) -> Result<T>) -> Result<T> {
        let db = self
            .db
            .read()
            .map_err(|_| Error::Closed)?
            .clone()
            .ok_or(Error::Closed)?;
        let on_writer = writer::on_store_thread(&self.shared);
        // A damaged page can make redb panic mid-read: the caller gets an error instead.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let rtx = db.begin_read()?;
            if !on_writer {
                self.shared.until_visible_durable()?;
            }
            f(&rtx)
        }))
        .unwrap_or_else(|panic| Err(writer::damaged(&panic)))
    }

    /// Why the store is poisoned, if it is.
    pub(crate) fn poisoned(&self) -> Option<String> {
        self.shared.poisoned()
    }

    /// Resolves with the cause once the store is poisoned (at once if it already is): for
    /// waiters whose wait can never end after that, since nothing more will commit.
    pub(crate) fn until_poisoned(&self) -> impl Future<Output = Error> + Send + 'static {
        let mut rx = self.shared.poisoned.subscribe();
        async move {
            match rx.wait_for(Option::is_some).await {
                Ok(cause) => Error::Poisoned {
                    cause: cause.clone().unwrap_or_default(),
                },
                // The store is gone: wait like any other wait on a closed engine would end.
                Err(_) => Error::Closed,
            }
        }
    }

    /// Commit counters.
    pub(crate) fn stats(&self) -> StoreStats {
        StoreStats {
            commits: self.shared.commits.load(Ordering::Relaxed),
            ops: self.shared.ops.load(Ordering::Relaxed),
            log_syncs: self.shared.log_syncs.load(Ordering::Relaxed),
            checkpoints: self.shared.checkpoints.load(Ordering::Relaxed),
        }
    }

    /// Lets queued ops finish, stops the writer, closes the file, then releases the lock.
    /// Blocking; call from a blocking context.
    pub(crate) fn close(&self) {
        if let Some(sender) = self.sender.lock().ok().and_then(|mut s| s.take()) {
            let _ = sender.send(Msg::Close);
        }
        let writer = self.writer.lock().ok().and_then(|mut w| w.take());
        let db = self.db.write().ok().and_then(|mut d| d.take());
        let lock = self.lock.lock().ok().and_then(|mut l| l.take());
        if writer::on_store_thread(&self.shared) {
            // The last handle was dropped by a hook running on the writer's thread or the
            // log's sync thread, neither of which can wait for the writer to end (the writer
            // waits for the sync thread): another thread finishes the close.
            std::thread::spawn(move || finish_close(writer, db, lock));
        } else {
            finish_close(writer, db, lock);
        }
    }
}

fn put<T>(slot: &Mutex<Option<T>>, value: T) {
    *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(value);
}

/// Waits for the writer to end, closes the database, and only then releases the file lock.
fn finish_close(
    writer: Option<std::thread::JoinHandle<()>>,
    db: Option<Arc<redb::Database>>,
    lock: Option<LeaderLock>,
) {
    if let Some(handle) = writer {
        let _ = handle.join();
    }
    if let Some(mut db) = db {
        // Readers hold the database only for the length of one synchronous read.
        loop {
            match Arc::try_unwrap(db) {
                Ok(db) => {
                    drop(db);
                    break;
                }
                Err(still_shared) => {
                    db = still_shared;
                    std::thread::yield_now();
                }
            }
        }
    }
    // Only now that the database is closed may a standby take over.
    drop(lock);
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.close();
    }
}

/// Creates a new, empty jobfile at `path` as one step a crash cannot split: the file is built
/// under a temporary name beside it, made durable, and only then renamed into place (and the
/// directory synced). A kill at any moment leaves either no file at `path` or a whole one; a
/// leftover temporary file is removed by the next create. The caller holds the leader lock.
fn create_file(path: &Path, config: &StoreConfig, schema: &Schema) -> Result<()> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut name = path.as_os_str().to_owned();
    name.push(".creating");
    let temp = PathBuf::from(name);
    match std::fs::remove_file(&temp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
        _ => {}
    }
    let built = (|| {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(io)?;
        let backend = Backend::new(file, config.faults.clone(), Arc::default())?;
        let db = Builder::new()
            .create_with_backend(backend)
            .map_err(|e| open_error(path, e))?;
        let tx = db.begin_write()?;
        meta::init(&tx, schema)?;
        tx.commit()?;
        drop(db);
        std::fs::rename(&temp, path).map_err(io)?;
        sync_parent_dir(path).map_err(io)
    })();
    if built.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    built
}

/// Makes a rename (or a new file) in `path`'s directory durable.
fn sync_parent_dir(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        std::fs::File::open(parent)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Looks at an existing file without writing to it. Returns whether there was one to check.
fn precheck(path: &Path, schema: &Schema) -> Result<bool> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(source) => {
            return Err(Error::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let mut head = [0u8; REDB_MAGIC.len()];
    let mut got = 0;
    while got < head.len() {
        match file.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(source) => {
                return Err(Error::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        }
    }
    if got == 0 {
        return Ok(false);
    }
    if got < head.len() || head != REDB_MAGIC {
        return Err(Error::NotAJobfile {
            path: path.to_path_buf(),
            reason: "it does not start with a redb database header".into(),
        });
    }
    match Builder::new().open_read_only(path) {
        Ok(ro) => {
            let kind = meta::inspect(&ro, path, schema);
            drop(ro);
            kind.map(|_| true)
        }
        // A file left by a crash needs a repair, which a read-only open refuses; it is checked
        // again after the read-write open.
        Err(redb::DatabaseError::RepairAborted) => Ok(true),
        Err(e) => Err(open_error(path, e)),
    }
}

fn open_error(path: &Path, e: redb::DatabaseError) -> Error {
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen => Error::Locked {
            path: path.to_path_buf(),
            holder: None,
        },
        redb::DatabaseError::UpgradeRequired(v) => Error::NotAJobfile {
            path: path.to_path_buf(),
            reason: format!("it is in redb's old file format {v}"),
        },
        redb::DatabaseError::Storage(redb::StorageError::Corrupted(detail)) => Error::Corrupt {
            table: "file header",
            detail,
        },
        other => Error::Storage(other.to_string()),
    }
}

/// The size of the file at `path` in bytes (0 if it cannot be read).
pub(crate) fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use redb::{ReadableTable, TableDefinition};

    const TEST: TableDefinition<u64, u64> = TableDefinition::new("writer_test");

    /// Opens the store at `path`, the `epoch`-th open of its file.
    fn open_store(path: &Path, epoch: u64) -> Store {
        let lock = LeaderLock::try_acquire(path).expect("lock");
        let config = StoreConfig {
            durability: Durability::Immediate,
            max_batch: 64,
            quick_repair: false,
            checkpoint_bytes: 8 << 20,
            checkpoint_every: Duration::from_secs(30),
            cache_bytes: 1 << 20,
            faults: None,
            compact: false,
        };
        let store = Store::new(path, Arc::new(ManualClock::new(0)));
        let (opened, ()) = store
            .open(lock, config, vec![&[&TEST]], |_, _| Ok(()))
            .expect("open");
        assert_eq!(opened, epoch);
        store
    }

    #[tokio::test]
    async fn a_failing_or_panicking_op_commits_nothing_and_spares_its_batch() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Arc::new(open_store(&dir.path().join("w.jobfile"), 1));
        let mut calls = Vec::new();
        for i in 0..10u64 {
            let store = store.clone();
            calls.push(tokio::spawn(async move {
                store
                    .write(move |ctx| {
                        ctx.tx.open_table(TEST)?.insert(i, i * 10)?;
                        match i {
                            3 => panic!("op 3 panics after writing"),
                            5 => Err(Error::Internal("op 5 fails after writing".into())),
                            _ => Ok(i),
                        }
                    })
                    .await
            }));
        }
        let mut outcomes = Vec::new();
        for c in calls {
            outcomes.push(c.await.expect("join"));
        }
        for (i, outcome) in outcomes.into_iter().enumerate() {
            match (i, outcome) {
                (3, Err(Error::Internal(msg))) => assert!(msg.contains("op 3 panics")),
                (5, Err(Error::Internal(msg))) => assert!(msg.contains("op 5 fails")),
                (i, Ok(v)) => assert_eq!(v, i as u64),
                (i, other) => panic!("op {i}: unexpected {other:?}"),
            }
        }
        let stored: Vec<(u64, u64)> = store
            .read(|rtx| {
                let t = rtx.open_table(TEST)?;
                let mut v = Vec::new();
                for e in t.iter()? {
                    let (k, val) = e?;
                    v.push((k.value(), val.value()));
                }
                Ok(v)
            })
            .expect("read");
        let want: Vec<(u64, u64)> = [0, 1, 2, 4, 6, 7, 8, 9]
            .iter()
            .map(|i| (*i, i * 10))
            .collect();
        assert_eq!(stored, want);
        assert!(store.poisoned().is_none());
    }

    /// Sends `write` to the writer (one poll) without awaiting its answer; returns it, to be
    /// awaited for the answer or dropped.
    async fn send_unawaited<F: std::future::Future>(write: F) -> std::pin::Pin<Box<F>> {
        let mut write = Box::pin(write);
        std::future::poll_fn(|cx| {
            let _ = write.as_mut().poll(cx);
            std::task::Poll::Ready(())
        })
        .await;
        write
    }

    /// A write whose hook reads the store, then drops its last handle; with `queued_behind`,
    /// a second write waits in the queue when the first commits, so the first batch is
    /// synced and answered on the log's sync thread. Returns the thread the hook ran on and
    /// what its read saw, once the close has released the file's lock; checks the write
    /// survived.
    async fn hook_drops_the_last_handle(queued_behind: bool) -> (Option<String>, Option<u64>) {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("h.jobfile");
        let store = Arc::new(open_store(&path, 1));
        let (started_tx, started) = std::sync::mpsc::channel::<()>();
        let (gate, wait_for_gate) = std::sync::mpsc::channel::<()>();
        let (closed_tx, closed) = std::sync::mpsc::channel();
        let mut last = Some(store.clone());
        drop(
            send_unawaited(store.write(move |ctx| {
                // Held until the caller's handle is gone, so the hook drops the last one.
                let _ = started_tx.send(());
                let _ = wait_for_gate.recv();
                ctx.tx.open_table(TEST)?.insert(7, 70)?;
                let (last, closed_tx) = (last.take(), closed_tx.clone());
                ctx.after_commit(move || {
                    let last = last.expect("the handle");
                    let seen = last
                        .read(|rtx| Ok(rtx.open_table(TEST)?.get(7)?.map(|v| v.value())))
                        .expect("a read from a hook");
                    drop(last);
                    let thread = std::thread::current().name().map(str::to_string);
                    let _ = closed_tx.send((thread, seen));
                });
                Ok(())
            }))
            .await,
        );
        started.recv().expect("the first write runs");
        if queued_behind {
            drop(
                send_unawaited(store.write(|ctx| {
                    ctx.tx.open_table(TEST)?.insert(8, 80)?;
                    Ok(())
                }))
                .await,
            );
        }
        drop(store);
        gate.send(()).expect("gate");
        // A hook that waits for a sync only its own thread could make never gets here.
        let ran = closed
            .recv_timeout(Duration::from_secs(30))
            .expect("the hook ran within 30 s");
        // The close finishes on another thread: the lock is released once the file is closed.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let lock = loop {
            match LeaderLock::try_acquire(&path) {
                Ok(lock) => break lock,
                Err(_) if std::time::Instant::now() < deadline => std::thread::yield_now(),
                Err(e) => panic!("the store never released its lock: {e}"),
            }
        };
        drop(lock);
        let reopened = open_store(&path, 2);
        let value = reopened
            .read(|rtx| Ok(rtx.open_table(TEST)?.get(7)?.map(|v| v.value())))
            .expect("read");
        assert_eq!(value, Some(70));
        ran
    }

    #[tokio::test]
    async fn a_hook_that_drops_the_last_handle_closes_the_store_from_the_writers_thread() {
        let (thread, seen) = hook_drops_the_last_handle(false).await;
        assert_eq!(thread.as_deref(), Some("jobfile-writer"));
        assert_eq!(seen, Some(70));
    }

    #[tokio::test]
    async fn a_hook_on_the_logs_sync_thread_reads_and_closes_the_store_without_deadlock() {
        let (thread, seen) = hook_drops_the_last_handle(true).await;
        assert_eq!(thread.as_deref(), Some("jobfile-log"));
        assert_eq!(seen, Some(70));
    }

    /// A write that adds `n` to the `Vec<u64>` owner `owner` gathers, with `also` as a hook of
    /// its own, failing after it if `fail`. Each gathered state's hook logs "owner:[n, ...]".
    fn gathering_write(
        store: &Arc<Store>,
        log: &Arc<Mutex<Vec<String>>>,
        owner: usize,
        n: u64,
        also: Option<&'static str>,
        fail: bool,
    ) -> impl std::future::Future<Output = Result<()>> + use<> {
        let (store, log) = (store.clone(), log.clone());
        async move {
            store
                .write(move |ctx| {
                    let then = || {
                        let log = log.clone();
                        move |ns: Vec<u64>| lock(&log).push(format!("{owner}:{ns:?}"))
                    };
                    ctx.gather(owner, then, |_, ns: &mut Vec<u64>| ns.push(n));
                    if let Some(also) = also {
                        let log = log.clone();
                        ctx.after_commit(move || lock(&log).push(also.to_string()));
                    }
                    if fail {
                        return Err(Error::Internal(format!("op {n} fails")));
                    }
                    Ok(())
                })
                .await
        }
    }

    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Holds the writer in a write of its own until the returned gate is sent to, so the
    /// writes sent meanwhile queue up for one batch.
    async fn hold_the_writer(
        store: &Arc<Store>,
    ) -> (
        std::sync::mpsc::Sender<()>,
        tokio::task::JoinHandle<Result<()>>,
    ) {
        let (started_tx, started) = std::sync::mpsc::channel::<()>();
        let (gate, wait_for_gate) = std::sync::mpsc::channel::<()>();
        let store = store.clone();
        let held = send_in_order(async move {
            store
                .write(move |_| {
                    let _ = started_tx.send(());
                    let _ = wait_for_gate.recv();
                    Ok(())
                })
                .await
        })
        .await;
        started.recv().expect("the holding write runs");
        (gate, held)
    }

    /// Sends `write` to the writer now, then awaits its answer on a task.
    async fn send_in_order<T: Send + 'static>(
        write: impl std::future::Future<Output = T> + Send + 'static,
    ) -> tokio::task::JoinHandle<T> {
        tokio::spawn(send_unawaited(write).await)
    }

    #[tokio::test]
    async fn ops_of_one_batch_gather_one_state_per_owner_acted_on_in_the_first_ops_place() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Arc::new(open_store(&dir.path().join("g.jobfile"), 1));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (gate, held) = hold_the_writer(&store).await;
        let mut calls = Vec::new();
        for (owner, n, also) in [
            (1, 2, None),
            (1, 3, Some("own hook of 3")),
            (2, 4, None),
            (1, 5, None),
        ] {
            calls.push(send_in_order(gathering_write(&store, &log, owner, n, also, false)).await);
        }
        gate.send(()).expect("gate");
        held.await.expect("join").expect("holding write");
        for call in calls {
            call.await.expect("join").expect("write");
        }
        assert_eq!(
            *lock(&log),
            ["1:[2, 3, 5]", "own hook of 3", "2:[4]"],
            "one hook per owner, in the place of its first op, with every op's additions"
        );

        // An op that fails takes its batch down; replayed alone, each op that commits has
        // its own state, and the failed one's additions are never acted on.
        lock(&log).clear();
        let (gate, held) = hold_the_writer(&store).await;
        let mut calls = Vec::new();
        for (n, fail) in [(6, false), (7, true), (8, false)] {
            calls.push(send_in_order(gathering_write(&store, &log, 1, n, None, fail)).await);
        }
        gate.send(()).expect("gate");
        held.await.expect("join").expect("holding write");
        let mut committed = Vec::new();
        for call in calls {
            committed.push(call.await.expect("join").is_ok());
        }
        assert_eq!(committed, [true, false, true]);
        assert_eq!(*lock(&log), ["1:[6]", "1:[8]"]);
    }

    #[tokio::test]
    async fn concurrent_callers_share_commits() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Arc::new(open_store(&dir.path().join("g.jobfile"), 1));
        let calls: Vec<_> = (0..200u64)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .write(move |ctx| {
                            ctx.tx.open_table(TEST)?.insert(i, i)?;
                            Ok(())
                        })
                        .await
                })
            })
            .collect();
        for c in calls {
            c.await.expect("join").expect("write");
        }
        let stats = store.stats();
        assert_eq!(stats.ops, 200);
        // 200 callers waiting at once share fsyncs: one commit each would be 200 commits.
        assert!(stats.commits <= 50, "{stats:?}");
        let count = store
            .read(|rtx| Ok(rtx.open_table(TEST)?.iter()?.count()))
            .expect("read");
        assert_eq!(count, 200);
    }
}
