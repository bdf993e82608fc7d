//! The single writer thread: takes one op, drains whatever else is waiting (up to a bound),
//! applies them all in one write transaction and commits it without a sync, then appends the
//! batch's changes to the log as one record. Where nothing else waits, the record is synced
//! and the batch answered right here. Where more ops wait (or batches are already with the
//! sync thread), the batch goes to the log's sync thread ([`super::syncer`]), which syncs and
//! answers it while the writer applies the next one. Relaxed commits are answered once
//! written. Every so often (by log size and by time) a checkpoint commits the B-tree
//! durably and the log starts over.
//!
//! redb cannot undo one op inside a transaction, so an op that returns an error or panics
//! abandons the whole batch, which is then replayed one op per transaction: the failing op gets
//! its error with nothing it wrote committed, and its neighbours commit as usual. (Ops report
//! ordinary outcomes, like a lost lease, as values, so this path is rare.) A storage failure (I/O, full disk,
//! failed fsync) poisons the engine: every later write is refused until the file is reopened.

use std::any::Any;
use std::borrow::Cow;
use std::cell::Cell;
use std::collections::hash_map::Entry;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::thread::JoinHandle;

use rustc_hash::FxHashMap;
use tokio::sync::oneshot;

use super::change::{Changes, LoggedTable, WriteTx};
use super::syncer::Syncer;
use super::tables::{CacheSlot, GroupedIndex, ReadyIndex, Schema, TableCache, TimeIndex};
use super::wal::{self, Wal};
use super::{Durability, StoreShared, change, meta};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::file_identity::FileIdentity;

/// What an op sees while it runs: the transaction, the batch's time, and ways to act after the
/// commit is durable.
pub(crate) struct TxCtx<'a> {
    /// The batch's write transaction.
    pub(crate) tx: &'a WriteTx,
    /// The batch's time (ms since the epoch), read once per batch.
    pub(crate) now: u64,
    /// Tables kept open for the whole batch.
    tables: TableCache<'a>,
    counters: &'a mut FxHashMap<Cow<'static, str>, Counter>,
    /// Where [`TxCtx::adjust_joined`] builds a gauge's name, reused across the batch.
    key: String,
    after_commit: Hooks,
    /// What primitives gather across the batch's ops, each acted on by one hook.
    gathered: Vec<Gathering>,
}

/// State one owner (a primitive's instance) gathers across a batch's ops and acts on once the
/// batch is durable, with one hook in the place of the first op that used it; see
/// [`TxCtx::gather`].
struct Gathering {
    owner: usize,
    /// `Option<T>`: `None` only while an op has it out.
    state: Box<dyn Any + Send>,
    /// Its hook's place among the batch's hooks.
    at: usize,
    /// Acts on the state.
    then: Box<dyn FnOnce(Box<dyn Any + Send>) + Send>,
}

struct Counter {
    value: u64,
    dirty: bool,
    /// A gauge's cached value is only valid while it matches the file: an abandoned batch
    /// forgets it. (An id counter keeps running instead: ids are never reused.)
    gauge: bool,
}

impl<'a> TxCtx<'a> {
    /// The table `def`, kept open for the rest of the batch (see [`TableCache`]).
    pub(crate) fn table<K, V>(
        &mut self,
        def: redb::TableDefinition<'static, K, V>,
    ) -> Result<&mut LoggedTable<'a, K, V>>
    where
        K: redb::Key + 'static,
        V: redb::Value + 'static,
        TableCache<'a>: CacheSlot<'a, K, V>,
    {
        self.tables.table(def)
    }

    /// Adds `key` to the time index `def`; see [`TableCache::insert_indexed`].
    pub(crate) fn insert_indexed(&mut self, def: TimeIndex, key: (u64, u64)) -> Result<()> {
        self.tables.insert_indexed(def, key)
    }

    /// Adds `key` to the grouped index `def`; see [`TableCache::insert_grouped`].
    pub(crate) fn insert_grouped(&mut self, def: GroupedIndex, key: (u64, u64)) {
        self.tables.insert_grouped(def, key);
    }

    /// Takes the entries of the grouped index `def` due at the batch's time, at most `limit`;
    /// see [`TableCache::take_due_grouped`].
    pub(crate) fn take_due_grouped(
        &mut self,
        def: GroupedIndex,
        limit: usize,
    ) -> Result<Vec<(u64, u64)>> {
        self.tables.take_due_grouped(def, self.now, limit)
    }

    /// Takes up to `max` of `name`'s first entries in the ready index `def`; see
    /// [`TableCache::take_ready`].
    pub(crate) fn take_ready(
        &mut self,
        def: ReadyIndex,
        name: &str,
        max: usize,
    ) -> Result<Vec<u64>> {
        self.tables.take_ready(def, name, max)
    }

    /// Whether `name` has an entry in the ready index `def` that this batch has not taken.
    pub(crate) fn has_ready(&mut self, def: ReadyIndex, name: &str) -> Result<bool> {
        self.tables.has_ready(def, name)
    }

    /// Adds `key` to the ready index `def`; see [`TableCache::insert_ready`].
    pub(crate) fn insert_ready(
        &mut self,
        def: ReadyIndex,
        key: (&str, u32, u64),
        id: u64,
    ) -> Result<()> {
        self.tables.insert_ready(def, key, id)
    }

    /// Removes `key` from the time index `def` before its next use or the commit; see
    /// [`TableCache::remove_later`].
    pub(crate) fn remove_later(&mut self, def: TimeIndex, key: (u64, u64)) {
        self.tables.remove_later(def, key);
    }

    /// Issues the next value of a named counter (starting at 1). Values are never reused, even
    /// if the transaction that issued them is abandoned.
    pub(crate) fn next_id(&mut self, name: &'static str) -> Result<u64> {
        let counter = self.counter(Cow::Borrowed(name), false)?;
        counter.value += 1;
        counter.dirty = true;
        Ok(counter.value)
    }

    /// Adds `delta` to a named gauge (a counter that can go down, such as "jobs queued now"),
    /// saturating at zero. Committed with the batch, so it always matches the stored state.
    pub(crate) fn adjust(&mut self, name: impl Into<Cow<'static, str>>, delta: i64) -> Result<()> {
        if delta == 0 {
            return Ok(());
        }
        let counter = self.gauge(name.into())?;
        counter.value = counter.value.saturating_add_signed(delta);
        counter.dirty = true;
        Ok(())
    }

    /// [`adjust`](TxCtx::adjust) of the gauge named by `parts` joined, without allocating the
    /// name once the gauge is cached (the tallies of every job and message change use it).
    pub(crate) fn adjust_joined(&mut self, parts: &[&str], delta: i64) -> Result<()> {
        if delta == 0 {
            return Ok(());
        }
        self.key.clear();
        for part in parts {
            self.key.push_str(part);
        }
        if let Some(counter) = self.counters.get_mut(self.key.as_str()) {
            counter.value = counter.value.saturating_add_signed(delta);
            counter.dirty = true;
            return Ok(());
        }
        let name = Cow::Owned(self.key.clone());
        self.adjust(name, delta)
    }

    /// Sets a named gauge to `value`, committed with the batch.
    pub(crate) fn set_gauge(
        &mut self,
        name: impl Into<Cow<'static, str>>,
        value: u64,
    ) -> Result<()> {
        let counter = self.gauge(name.into())?;
        counter.value = value;
        counter.dirty = true;
        Ok(())
    }

    /// The cached gauge `name`, read from the file on first use.
    fn gauge(&mut self, name: Cow<'static, str>) -> Result<&mut Counter> {
        self.counter(name, true)
    }

    /// The cached counter `name` (one lookup), read from the file on first use.
    fn counter(&mut self, name: Cow<'static, str>, gauge: bool) -> Result<&mut Counter> {
        let tx = self.tx;
        Ok(match self.counters.entry(name) {
            Entry::Occupied(cached) => cached.into_mut(),
            Entry::Vacant(first_use) => {
                let value = meta::read_counter(tx, first_use.key())?;
                first_use.insert(Counter {
                    value,
                    dirty: false,
                    gauge,
                })
            }
        })
    }

    /// Runs `hook` once the batch is durable (never, if it is not), before any caller of the
    /// batch is answered.
    pub(crate) fn after_commit(&mut self, hook: impl FnOnce() + Send + 'static) {
        self.after_commit.push(Box::new(hook));
    }

    /// Runs `f` with the state of type `T` that `owner` gathers across this batch (made by
    /// `T::default()` at the batch's first use). Once the batch is durable, `then()` (asked for
    /// at the first use) gets the state as the ops left it, in one hook in the place of the
    /// first op's hooks. A batch of many ops then costs one hook and one state, where a hook
    /// per op would cost an allocation and a call per op on the thread that answers them.
    pub(crate) fn gather<T, H, R>(
        &mut self,
        owner: usize,
        then: impl FnOnce() -> H,
        f: impl FnOnce(&mut Self, &mut T) -> R,
    ) -> R
    where
        T: Default + Send + 'static,
        H: FnOnce(T) + Send + 'static,
    {
        let at = match self
            .gathered
            .iter()
            .position(|g| g.owner == owner && g.state.downcast_ref::<Option<T>>().is_some())
        {
            Some(at) => at,
            None => {
                let then = then();
                self.gathered.push(Gathering {
                    owner,
                    state: Box::new(Some(T::default())),
                    at: self.after_commit.len(),
                    then: Box::new(move |state: Box<dyn Any + Send>| {
                        if let Ok(state) = state.downcast::<Option<T>>()
                            && let Some(state) = *state
                        {
                            then(state);
                        }
                    }),
                });
                // Its place among the hooks, filled once the batch's ops are done.
                self.after_commit.push(Box::new(|| {}));
                self.gathered.len() - 1
            }
        };
        let taken = self.gathered[at]
            .state
            .downcast_mut::<Option<T>>()
            .and_then(Option::take);
        debug_assert!(
            taken.is_some(),
            "an op gathers into one owner's state at a time"
        );
        let mut state = taken.unwrap_or_default();
        let out = f(self, &mut state);
        if let Some(slot) = self.gathered[at].state.downcast_mut::<Option<T>>() {
            *slot = Some(state);
        }
        out
    }

    /// The batch's hooks in order, each gathered state's hook in its place.
    fn take_hooks(&mut self) -> Hooks {
        let mut hooks = std::mem::take(&mut self.after_commit);
        for g in self.gathered.drain(..) {
            let (then, state) = (g.then, g.state);
            hooks[g.at] = Box::new(move || then(state));
        }
        hooks
    }

    /// What every batch does last, before its commit: the queued index removals and the
    /// changed counters are written.
    fn finish(&mut self) -> Result<()> {
        let numbers = (0..self.tables.groups_pending())
            .map(|_| self.next_id(super::tables::GROUP_COUNTER))
            .collect::<Result<Vec<_>>>()?;
        self.tables.finish(&numbers)?;
        self.persist_counters()
    }

    fn persist_counters(&mut self) -> Result<()> {
        let dirty = self.counters.iter().filter(|(_, c)| c.dirty);
        meta::write_counters(self.tx, dirty.map(|(name, c)| (name.as_ref(), c.value)))?;
        self.counters.values_mut().for_each(|c| c.dirty = false);
        Ok(())
    }
}

/// What runs once a batch is durable, before its callers are answered.
type Hooks = Vec<Box<dyn FnOnce() + Send>>;

/// How applying one op went.
pub(crate) enum Applied {
    /// Done; its result waits for the commit.
    Done,
    /// The op returned an error. It may have written part of its work, so the transaction must
    /// not commit with it.
    Failed,
    /// The storage layer failed: the transaction cannot be trusted at all.
    Storage(Error),
}

/// A type-erased op on its way to the writer.
pub(crate) trait ErasedOp: Send {
    /// Applies the op, keeping its result (or error) for the reply.
    fn apply(&mut self, ctx: &mut TxCtx<'_>) -> Applied;
    /// Answers the caller: `failure` if given, else the kept result.
    fn finish(self: Box<Self>, failure: Option<Error>);
}

pub(crate) struct TypedOp<T, F> {
    pub(crate) f: F,
    pub(crate) result: Option<Result<T>>,
    pub(crate) reply: oneshot::Sender<Result<T>>,
    pub(crate) span: tracing::Span,
}

impl<T, F> ErasedOp for TypedOp<T, F>
where
    T: Send + 'static,
    F: FnMut(&mut TxCtx<'_>) -> Result<T> + Send + 'static,
{
    fn apply(&mut self, ctx: &mut TxCtx<'_>) -> Applied {
        let _enter = self.span.enter();
        let result = (self.f)(ctx);
        let applied = match &result {
            Ok(_) => Applied::Done,
            Err(e) => match e.storage_again() {
                Some(again) => Applied::Storage(again),
                None => Applied::Failed,
            },
        };
        self.result = Some(result);
        applied
    }

    fn finish(self: Box<Self>, failure: Option<Error>) {
        let outcome = match failure {
            Some(e) => Err(e),
            None => self
                .result
                .unwrap_or_else(|| Err(Error::Internal("op finished without running".into()))),
        };
        // The caller may have stopped waiting; the op's effect stands either way.
        let _ = self.reply.send(outcome);
    }
}

pub(crate) enum Msg {
    Op(Box<dyn ErasedOp>),
    Close,
}

thread_local! {
    /// On a store's own threads (its writer and its log's sync thread), the address of its
    /// shared state (0 elsewhere).
    static STORE_OF: Cell<usize> = const { Cell::new(0) };
}

/// Marks the calling thread as one of `shared`'s own: the writer, or the log's sync thread.
pub(crate) fn mark_store_thread(shared: &StoreShared) {
    STORE_OF.with(|w| w.set(std::ptr::from_ref(shared) as usize));
}

/// Whether this is one of `shared`'s own threads, where its hooks run: a read there must not
/// wait for a sync (the thread that would report it may be this one), and a close there
/// cannot wait for the writer to end (the writer waits for the sync thread).
pub(crate) fn on_store_thread(shared: &StoreShared) -> bool {
    STORE_OF.with(Cell::get) == std::ptr::from_ref(shared) as usize
}

/// What a batch leaves to do once it is durable: its hooks (in order), then its callers'
/// answers (`Some` for an op that failed).
#[derive(Default)]
pub(crate) struct Done {
    /// The batch's number among the commits readers may see (0: it committed nothing).
    pub(crate) visible: u64,
    pub(crate) hooks: Vec<Box<dyn FnOnce() + Send>>,
    pub(crate) ops: Vec<(Box<dyn ErasedOp>, Option<Error>)>,
}

impl Done {
    pub(crate) fn finish(self) {
        self.hooks.into_iter().for_each(|h| h());
        for (op, failure) in self.ops {
            op.finish(failure);
        }
    }

    pub(crate) fn fail(self, cause: &str) {
        for (op, _) in self.ops {
            op.finish(Some(Error::Poisoned {
                cause: cause.to_string(),
            }));
        }
    }
}

/// Answers `batches` (in commit order) once durable: `Ok` marks every commit up to `visible`
/// as seen by readers, then finishes them; `Err` carries the store's poisoning cause, and
/// fails them.
pub(crate) fn settle(
    shared: &StoreShared,
    visible: u64,
    batches: impl Iterator<Item = Done>,
    durable: std::result::Result<(), String>,
) {
    match durable {
        Ok(()) => {
            shared.mark_durable(visible);
            batches.for_each(Done::finish);
        }
        Err(cause) => {
            shared.poison(cause.clone());
            batches.for_each(|d| d.fail(&cause));
        }
    }
}

enum BatchFailure {
    /// An op returned an error; the transaction was abandoned.
    OpFailed,
    /// An op panicked; the transaction was abandoned.
    Panic(String),
    /// Storage failed; the engine must be poisoned.
    Storage(Error),
}

/// How the writer batches and commits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WriterSettings {
    pub(crate) durability: Durability,
    pub(crate) max_batch: usize,
    pub(crate) quick_repair: bool,
    /// A checkpoint is due once this much has been logged since the last one (what bounds
    /// the log's size and the replay at open)...
    pub(crate) checkpoint_bytes: u64,
    /// ... or this long after the last one, if anything was logged since.
    pub(crate) checkpoint_every: Duration,
}

pub(crate) struct Writer {
    db: Arc<redb::Database>,
    rx: Receiver<Msg>,
    shared: Arc<StoreShared>,
    clock: Arc<dyn Clock>,
    durability: Durability,
    max_batch: usize,
    quick_repair: bool,
    checkpoint_bytes: u64,
    checkpoint_every: Duration,
    counters: FxHashMap<Cow<'static, str>, Counter>,
    /// The data file as opened (`None` in memory), and when the path was last checked to
    /// still name it.
    identity: Option<FileIdentity>,
    identity_checked: Option<Instant>,
    log: Log,
    /// A message taken from the queue early, to learn whether more work is waiting: it opens
    /// the next batch.
    ahead: Option<Msg>,
}

/// The writer's side of the log: where records go, and what numbers them.
struct Log {
    sink: Sink,
    /// The log's path; `None` in memory.
    path: Option<PathBuf>,
    /// The generation the file's metadata names since the last checkpoint.
    generation: u64,
    /// The last record's number in this generation.
    seq: u64,
    /// Bytes logged since the last checkpoint, and when that was.
    bytes: u64,
    checkpointed: Instant,
    frame: Vec<u8>,
}

/// Where the writer's records go.
enum Sink {
    /// Not yet started (during the open).
    Unstarted,
    /// Fsync'd commits: the writer writes each record. A lone commit is synced and answered
    /// at once; under load the batch goes to the sync thread, which syncs and answers it
    /// while the writer goes on.
    Synced {
        wal: Wal,
        to_syncer: Sender<Done>,
        thread: JoinHandle<()>,
        /// Batches handed to the sync thread and not yet answered: while any is, a later
        /// batch goes there too, to be answered after it.
        handed_off: Arc<AtomicUsize>,
    },
    /// Relaxed commits: the writer writes each record itself and answers at once; the log is
    /// synced every `flush_every`, from the first record it has not synced.
    Direct {
        wal: Wal,
        unsynced_since: Option<Instant>,
        flush_every: Duration,
    },
    /// An engine in memory: nothing is logged, a commit is answered at once.
    Memory,
}

/// How often, while writing, the writer checks that the path still names the open file.
const IDENTITY_CHECK_EVERY: Duration = Duration::from_secs(1);

impl Writer {
    pub(crate) fn new(
        db: Arc<redb::Database>,
        rx: Receiver<Msg>,
        shared: Arc<StoreShared>,
        clock: Arc<dyn Clock>,
        identity: Option<FileIdentity>,
        settings: WriterSettings,
    ) -> Self {
        let path = identity.as_ref().map(|i| wal::path_for(i.path()));
        Writer {
            db,
            rx,
            shared,
            clock,
            durability: settings.durability,
            max_batch: settings.max_batch.max(1),
            quick_repair: settings.quick_repair,
            checkpoint_bytes: settings.checkpoint_bytes,
            checkpoint_every: settings.checkpoint_every,
            counters: FxHashMap::default(),
            identity,
            identity_checked: None,
            log: Log {
                sink: Sink::Unstarted,
                path,
                generation: 0,
                seq: 0,
                bytes: 0,
                checkpointed: Instant::now(),
                frame: Vec::new(),
            },
            ahead: None,
        }
    }

    /// An engine in memory logs nothing.
    pub(crate) fn start_without_log(&mut self) {
        self.log.sink = Sink::Memory;
    }

    /// Starts logging to `wal` (after [`Writer::run_init`] has replayed it). For fsync'd
    /// commits that starts the log's sync thread.
    pub(crate) fn start_log(&mut self, wal: Wal) -> std::io::Result<()> {
        if let Durability::Relaxed { flush_every } = self.durability {
            self.log.sink = Sink::Direct {
                wal,
                unsynced_since: None,
                flush_every,
            };
            return Ok(());
        }
        let (to_syncer, batches) = std::sync::mpsc::channel();
        let handed_off = Arc::new(AtomicUsize::new(0));
        let syncer = Syncer {
            log: wal.sync_handle(),
            batches,
            handed_off: handed_off.clone(),
            shared: self.shared.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("jobfile-log".into())
            .spawn(move || syncer.run())?;
        self.log.sink = Sink::Synced {
            wal,
            to_syncer,
            thread,
            handed_off,
        };
        Ok(())
    }

    pub(crate) fn run(mut self) {
        mark_store_thread(&self.shared);
        let mut batch: Vec<Box<dyn ErasedOp>> = Vec::with_capacity(self.max_batch);
        let mut closing = false;
        while !closing {
            let first = match self.ahead.take() {
                Some(m) => m,
                None => match self.next_timer() {
                    Some(at) => {
                        match self
                            .rx
                            .recv_timeout(at.saturating_duration_since(Instant::now()))
                        {
                            Ok(m) => m,
                            Err(RecvTimeoutError::Timeout) => {
                                self.on_timer();
                                continue;
                            }
                            Err(RecvTimeoutError::Disconnected) => break,
                        }
                    }
                    None => match self.rx.recv() {
                        Ok(m) => m,
                        Err(_) => break,
                    },
                },
            };
            let mut next = Some(first);
            while let Some(msg) = next.take() {
                match msg {
                    Msg::Op(op) => batch.push(op),
                    Msg::Close => closing = true,
                }
                if batch.len() < self.max_batch && !closing {
                    next = self.ahead.take().or_else(|| self.rx.try_recv().ok());
                }
            }
            if batch.is_empty() {
                continue;
            }
            self.run_batch(&mut batch);
            if self.log.bytes >= self.checkpoint_bytes {
                self.checkpoint();
            }
            if self.next_timer().is_some_and(|at| at <= Instant::now()) {
                self.on_timer();
            }
        }
        // A clean close leaves the file whole on its own: a last checkpoint, and no log.
        let whole =
            self.log.path.is_some() && self.shared.poisoned().is_none() && self.checkpoint();
        match std::mem::replace(&mut self.log.sink, Sink::Unstarted) {
            Sink::Synced {
                to_syncer, thread, ..
            } => {
                // The sync thread syncs and answers what it still holds, then ends.
                drop(to_syncer);
                let _ = thread.join();
            }
            Sink::Direct {
                wal,
                unsynced_since: Some(_),
                ..
            } if !whole => {
                if let Err(e) = wal.sync() {
                    self.shared.poison(wal.failure(&e));
                }
            }
            _ => {}
        }
        if let Some(path) = self.log.path.as_ref().filter(|_| whole) {
            let _ = std::fs::remove_file(path);
        }
        // Anything still queued is refused rather than left hanging.
        let queued = self.ahead.take().into_iter();
        for msg in queued.chain(std::iter::from_fn(|| self.rx.try_recv().ok())) {
            if let Msg::Op(op) = msg {
                op.finish(Some(Error::Closed));
            }
        }
    }

    /// When the writer must act without an op: the next checkpoint due by time (if anything
    /// was logged since the last), or the next sync of a relaxed log.
    fn next_timer(&self) -> Option<Instant> {
        let checkpoint =
            (self.log.bytes > 0).then(|| self.log.checkpointed + self.checkpoint_every);
        let sync = match &self.log.sink {
            Sink::Direct {
                unsynced_since: Some(since),
                flush_every,
                ..
            } => Some(*since + *flush_every),
            _ => None,
        };
        checkpoint.into_iter().chain(sync).min()
    }

    fn on_timer(&mut self) {
        let now = Instant::now();
        if let Sink::Direct {
            wal,
            unsynced_since,
            flush_every,
        } = &mut self.log.sink
            && unsynced_since.is_some_and(|since| since + *flush_every <= now)
        {
            *unsynced_since = None;
            match wal.sync() {
                Ok(()) => {
                    self.shared.log_syncs.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    self.shared.poison(wal.failure(&e));
                }
            }
        }
        if self.log.bytes > 0 && self.log.checkpointed + self.checkpoint_every <= now {
            self.checkpoint();
        }
    }

    /// Commits the B-tree durably under a new generation, after which every record logged so
    /// far is redundant and the log starts over. Returns whether it did.
    fn checkpoint(&mut self) -> bool {
        if self.shared.poisoned().is_some() {
            return false;
        }
        let generation = wal::new_generation();
        let committed = (|| -> Result<()> {
            let mut tx = self.db.begin_write()?;
            tx.set_durability(redb::Durability::Immediate)
                .map_err(|e| Error::Storage(e.to_string()))?;
            tx.set_quick_repair(self.quick_repair);
            meta::set_log_generation(&tx, generation)?;
            match catch_unwind(AssertUnwindSafe(|| tx.commit())) {
                Ok(committed) => Ok(committed?),
                Err(panic) => Err(damaged(&panic)),
            }
        })();
        match committed {
            Ok(()) => {
                self.shared.checkpoints.fetch_add(1, Ordering::Relaxed);
                self.shared.mark_durable(self.shared.visible_now());
                self.restart_log(generation);
                true
            }
            Err(e) => {
                let cause = format!("a checkpoint failed: {e}");
                self.shared.poison(cause);
                false
            }
        }
    }

    /// After a durable commit under `generation`: the log starts over.
    fn restart_log(&mut self, generation: u64) {
        self.log.generation = generation;
        self.log.seq = 0;
        self.log.bytes = 0;
        self.log.checkpointed = Instant::now();
        match &mut self.log.sink {
            // Batches still with the sync thread are answered after its next sync (the
            // checkpoint holds them already).
            Sink::Synced { wal, .. } => wal.restart(),
            Sink::Direct {
                wal,
                unsynced_since,
                ..
            } => {
                wal.restart();
                *unsynced_since = None;
            }
            Sink::Unstarted | Sink::Memory => {}
        }
    }

    /// Logs a committed batch's changes; `done` is carried out once they are durable (at once
    /// after everything before it, for a batch that changed nothing).
    fn log_batch(&mut self, changes: Changes, done: Done) {
        if let Sink::Memory = self.log.sink {
            self.shared.mark_durable(done.visible);
            return done.finish();
        }
        let mut frame = std::mem::take(&mut self.log.frame);
        frame.clear();
        if !changes.is_empty() {
            self.log.seq += 1;
            wal::frame(
                self.log.generation,
                self.log.seq,
                &changes.into_bytes(),
                &mut frame,
            );
            self.log.bytes += frame.len() as u64;
        }
        let more_waiting = matches!(self.log.sink, Sink::Synced { .. })
            && !frame.is_empty()
            && self.more_waiting();
        match &mut self.log.sink {
            Sink::Synced {
                wal,
                to_syncer,
                handed_off,
                ..
            } => {
                let appended = if frame.is_empty() {
                    Ok(())
                } else {
                    wal.append(&frame).map_err(|e| wal.failure(&e))
                };
                let has_record = !frame.is_empty();
                self.log.frame = frame;
                if let Err(cause) = appended {
                    // Batches with the sync thread fail there: the store is poisoned.
                    self.shared.poison(cause.clone());
                    return done.fail(&cause);
                }
                if handed_off.load(Ordering::Acquire) == 0 && !more_waiting {
                    // Nothing before it waits and nothing after it is in hand: sync here.
                    let synced = if has_record {
                        wal.sync().map_err(|e| wal.failure(&e))
                    } else {
                        Ok(())
                    };
                    if synced.is_ok() && has_record {
                        self.shared.log_syncs.fetch_add(1, Ordering::Relaxed);
                    }
                    return settle(&self.shared, done.visible, std::iter::once(done), synced);
                }
                // Counted before it is sent: the sync thread counts it off once answered.
                handed_off.fetch_add(1, Ordering::AcqRel);
                // The sync thread ends only after the writer; a send cannot fail before.
                let _ = to_syncer.send(done);
            }
            Sink::Direct {
                wal,
                unsynced_since,
                ..
            } => {
                let written = if frame.is_empty() {
                    Ok(())
                } else {
                    unsynced_since.get_or_insert_with(Instant::now);
                    wal.append(&frame)
                };
                self.log.frame = frame;
                match written {
                    Ok(()) => {
                        // Written is as durable as a relaxed log gets.
                        self.shared.mark_durable(done.visible);
                        done.finish()
                    }
                    Err(e) => {
                        let cause = wal.failure(&e);
                        self.shared.poison(cause.clone());
                        done.fail(&cause);
                    }
                }
            }
            Sink::Unstarted => done.fail("the log is not started"),
            Sink::Memory => unreachable!("answered above"),
        }
    }

    /// Whether another message is already waiting; it is kept to open the next batch.
    fn more_waiting(&mut self) -> bool {
        if self.ahead.is_none() {
            self.ahead = self.rx.try_recv().ok();
        }
        self.ahead.is_some()
    }

    /// Counts a committed batch and hands it to the log, its ops to be answered once durable.
    fn log_committed(
        &mut self,
        batch: &mut Vec<Box<dyn ErasedOp>>,
        (hooks, changes, visible): (Hooks, Changes, u64),
    ) {
        self.shared.record_commit(batch.len());
        let ops = batch.drain(..).map(|op| (op, None)).collect();
        self.log_batch(
            changes,
            Done {
                visible,
                hooks,
                ops,
            },
        );
    }

    fn run_batch(&mut self, batch: &mut Vec<Box<dyn ErasedOp>>) {
        if let Some(cause) = self.shared.poisoned() {
            for op in batch.drain(..) {
                op.finish(Some(Error::Poisoned {
                    cause: cause.clone(),
                }));
            }
            return;
        }
        if let Err(e) = self.check_identity() {
            self.fail_all(batch, e);
            return;
        }
        let span = tracing::debug_span!("commit", ops = batch.len());
        let _enter = span.enter();
        let outcome = self.try_batch(batch);
        match outcome {
            Ok(committed) => self.log_committed(batch, committed),
            Err(BatchFailure::Storage(e)) => self.fail_all(batch, e),
            Err(BatchFailure::OpFailed | BatchFailure::Panic(_)) => {
                // Replay one op per transaction so only the failing op fails, and nothing it
                // wrote before failing is committed.
                let ops = std::mem::take(batch);
                for op in ops {
                    let mut single = vec![op];
                    match self.try_batch(&mut single) {
                        Ok(committed) => self.log_committed(&mut single, committed),
                        Err(BatchFailure::OpFailed) => {
                            // Its error may rest on what earlier batches wrote: it is answered
                            // after them.
                            let ops = single.drain(..).map(|op| (op, None)).collect();
                            self.log_batch(
                                Changes::default(),
                                Done {
                                    visible: 0,
                                    hooks: vec![],
                                    ops,
                                },
                            );
                        }
                        Err(BatchFailure::Panic(msg)) => {
                            tracing::error!(panic = %msg, "a write op panicked");
                            let ops = single
                                .drain(..)
                                .map(|op| (op, Some(Error::Internal(msg.clone()))))
                                .collect();
                            self.log_batch(
                                Changes::default(),
                                Done {
                                    visible: 0,
                                    hooks: vec![],
                                    ops,
                                },
                            );
                        }
                        Err(BatchFailure::Storage(e)) => self.fail_all(&mut single, e),
                    }
                }
            }
        }
    }

    /// At most once per [`IDENTITY_CHECK_EVERY`], before a commit: the path must still name
    /// the file this writer writes. A file deleted or replaced under the engine would take
    /// every later write where no open of the path finds it.
    fn check_identity(&mut self) -> Result<()> {
        let Some(identity) = &self.identity else {
            return Ok(());
        };
        if self
            .identity_checked
            .is_some_and(|at| at.elapsed() < IDENTITY_CHECK_EVERY)
        {
            return Ok(());
        }
        self.identity_checked = Some(Instant::now());
        identity.check().map_err(|what| Error::FileReplaced {
            path: identity.path().to_path_buf(),
            detail: format!(
                "{what}; writes are refused from now on, as no open of the path would find them"
            ),
        })
    }

    /// Poisons the store after `e` and answers every op of the batch: with a full disk, that
    /// (the typed [`Error::StorageFull`]); else that the engine is poisoned.
    fn fail_all(&mut self, batch: &mut Vec<Box<dyn ErasedOp>>, e: Error) {
        let cause = e.to_string();
        self.shared.poison(cause.clone());
        for op in batch.drain(..) {
            let answer = match &e {
                Error::StorageFull { .. } => e.storage_again(),
                _ => None,
            };
            op.finish(Some(answer.unwrap_or_else(|| Error::Poisoned {
                cause: cause.clone(),
            })));
        }
    }

    /// The first transaction of a leadership, committed durably under a new log generation:
    /// replays the records `log` holds of the file's generation, creates or checks the
    /// tables, bumps the epoch and runs `recover`. Returns the epoch and what `recover` did.
    pub(crate) fn run_init<R>(
        &mut self,
        schema: &Schema,
        log: &[u8],
        recover: impl FnOnce(&mut TxCtx<'_>, u64) -> Result<R>,
    ) -> Result<(u64, R)> {
        let tx = WriteTx::new(self.db.begin_write()?);
        let previous = meta::log_generation(tx.inner())?;
        let records = wal::records(log, previous);
        if !records.is_empty() {
            let tables = change::all_tables(schema);
            let bytes: usize = records.iter().map(|r| r.len()).sum();
            for record in &records {
                change::replay(tx.inner(), record, &tables)?;
            }
            tracing::info!(
                records = records.len(),
                bytes,
                "replayed the write-ahead log's records after an unclean shutdown"
            );
        }
        let epoch = meta::init_and_bump_epoch(tx.inner(), schema)?;
        let mut ctx = TxCtx {
            tx: &tx,
            now: self.clock.now_ms(),
            tables: TableCache::new(&tx),
            counters: &mut self.counters,
            key: String::new(),
            after_commit: Vec::new(),
            gathered: Vec::new(),
        };
        let recovered = recover(&mut ctx, epoch)?;
        ctx.finish()?;
        let hooks = ctx.take_hooks();
        drop(ctx);
        let generation = wal::new_generation();
        meta::set_log_generation(tx.inner(), generation)?;
        let (mut inner, _) = tx.into_parts();
        inner
            .set_durability(redb::Durability::Immediate)
            .map_err(|e| Error::Storage(e.to_string()))?;
        inner.set_quick_repair(self.quick_repair);
        inner.commit()?;
        self.log.generation = generation;
        hooks.into_iter().for_each(|h| h());
        Ok((epoch, recovered))
    }

    fn try_batch(
        &mut self,
        ops: &mut [Box<dyn ErasedOp>],
    ) -> Result<(Hooks, Changes, u64), BatchFailure> {
        let outcome = self.apply_and_commit(ops);
        if outcome.is_err() {
            self.counters.retain(|_, c| !c.gauge);
        }
        outcome
    }

    /// Applies `ops` in one transaction and commits it without a sync (the log makes it
    /// durable). Returns the hooks to run once it is, and the changes to log.
    fn apply_and_commit(
        &mut self,
        ops: &mut [Box<dyn ErasedOp>],
    ) -> Result<(Hooks, Changes, u64), BatchFailure> {
        let storage = BatchFailure::Storage;
        let mut tx = self.db.begin_write().map_err(|e| storage(e.into()))?;
        tx.set_durability(redb::Durability::None)
            .map_err(|e| storage(Error::Storage(e.to_string())))?;
        tx.set_quick_repair(false);
        let tx = WriteTx::new(tx);
        let now = self.clock.now_ms();
        let mut ctx = TxCtx {
            tx: &tx,
            now,
            tables: TableCache::new(&tx),
            counters: &mut self.counters,
            key: String::new(),
            after_commit: Vec::new(),
            gathered: Vec::new(),
        };
        for op in ops.iter_mut() {
            match catch_unwind(AssertUnwindSafe(|| op.apply(&mut ctx))) {
                Ok(Applied::Done) => {}
                Ok(Applied::Failed) => return Err(BatchFailure::OpFailed),
                Ok(Applied::Storage(e)) => return Err(storage(e)),
                Err(panic) => return Err(BatchFailure::Panic(panic_message(&panic))),
            }
        }
        ctx.finish().map_err(storage)?;
        let hooks = ctx.take_hooks();
        drop(ctx);
        let (tx, changes) = tx.into_parts();
        let visible = self.shared.will_be_visible();
        // redb asserts its own invariants while committing; on a damaged file one can panic,
        // which poisons the engine like any other failed commit.
        match catch_unwind(AssertUnwindSafe(|| tx.commit())) {
            Ok(committed) => committed.map_err(|e| storage(e.into()))?,
            Err(panic) => return Err(storage(damaged(&panic))),
        }
        Ok((hooks, changes, visible))
    }
}

/// The error for a panic raised by the storage layer while reading or writing the file.
pub(crate) fn damaged(panic: &Box<dyn Any + Send>) -> Error {
    Error::Corrupt {
        table: "file",
        detail: format!(
            "the storage layer panicked ({}); the file is damaged",
            panic_message(panic)
        ),
    }
}

pub(crate) fn panic_message(panic: &Box<dyn Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a write op panicked".to_string()
    }
}
