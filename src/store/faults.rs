//! A storage backend that fails on command, for proving what the engine does when the disk
//! does not cooperate. Exposed as `jobfile::testing::FaultInjector` (the `testing` feature).
#![cfg_attr(not(feature = "testing"), allow(dead_code))]

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

/// Makes the file's storage fail on command: the Nth write, sync or read from now, and every one
/// after it, until [`FaultInjector::heal`]. Pass it to
/// [`EngineOptions::fault_injector`](crate::EngineOptions::fault_injector).
///
/// Counts are of calls into the storage: the file's backend (one commit makes several writes
/// and, when durable, a sync) and its write-ahead log (a write and a sync per group of
/// records), so sweeping N over a workload hits every point of the write path.
#[derive(Debug, Clone, Default)]
pub struct FaultInjector {
    state: Arc<FaultState>,
}

#[derive(Debug)]
struct FaultState {
    writes_left: AtomicI64,
    syncs_left: AtomicI64,
    reads_left: AtomicI64,
    disk_full: AtomicBool,
    injected: AtomicU64,
    /// Calls seen so far: writes, syncs, reads.
    seen: [AtomicU64; 3],
    /// Bytes the storage was asked to write so far.
    bytes_written: AtomicU64,
    /// How long every sync waits before it syncs (µs), as on a slower disk.
    sync_delay_us: AtomicU64,
    /// Whether syncs report success without asking the disk to flush.
    flushes_skipped: AtomicBool,
}

impl Default for FaultState {
    fn default() -> Self {
        FaultState {
            writes_left: AtomicI64::new(-1),
            syncs_left: AtomicI64::new(-1),
            reads_left: AtomicI64::new(-1),
            disk_full: AtomicBool::new(false),
            injected: AtomicU64::new(0),
            seen: Default::default(),
            bytes_written: AtomicU64::new(0),
            sync_delay_us: AtomicU64::new(0),
            flushes_skipped: AtomicBool::new(false),
        }
    }
}

impl FaultInjector {
    /// An injector that injects nothing until told to.
    pub fn new() -> Self {
        Self::default()
    }

    /// After `n` more successful writes, every write fails.
    pub fn fail_writes_after(&self, n: u64) {
        self.state.writes_left.store(to_i64(n), Ordering::SeqCst);
    }

    /// After `n` more successful syncs (fsyncs), every sync fails.
    pub fn fail_syncs_after(&self, n: u64) {
        self.state.syncs_left.store(to_i64(n), Ordering::SeqCst);
    }

    /// After `n` more successful reads, every read fails.
    pub fn fail_reads_after(&self, n: u64) {
        self.state.reads_left.store(to_i64(n), Ordering::SeqCst);
    }

    /// Every sync from now on takes `extra` longer, as on a slower disk (a network volume's
    /// flush takes 0.5–2 ms where a local NVMe drive's takes 0.05 ms). Faults still apply.
    pub fn slow_syncs(&self, extra: std::time::Duration) {
        let us = u64::try_from(extra.as_micros()).unwrap_or(u64::MAX);
        self.state.sync_delay_us.store(us, Ordering::SeqCst);
    }

    /// Every sync from now on reports success without asking the disk to flush: the engine
    /// runs its fsync'd path in full (the log, its sync thread, the answers after each sync)
    /// except the flush itself, so a run with and one without tell apart what the disk's flush
    /// costs and what the engine's own path does. Nothing written is durable meanwhile: for
    /// benchmarks, never for data that matters. Faults and slow syncs still apply; undone by
    /// [`FaultInjector::heal`].
    pub fn skip_flushes(&self) {
        self.state.flushes_skipped.store(true, Ordering::SeqCst);
    }

    /// Every write and file growth fails with "no space left on device" until healed.
    pub fn disk_full(&self) {
        self.state.disk_full.store(true, Ordering::SeqCst);
    }

    /// Stops injecting faults.
    pub fn heal(&self) {
        self.state.writes_left.store(-1, Ordering::SeqCst);
        self.state.syncs_left.store(-1, Ordering::SeqCst);
        self.state.reads_left.store(-1, Ordering::SeqCst);
        self.state.disk_full.store(false, Ordering::SeqCst);
        self.state.flushes_skipped.store(false, Ordering::SeqCst);
    }

    /// How many calls have failed because of this injector.
    pub fn faults_injected(&self) -> u64 {
        self.state.injected.load(Ordering::SeqCst)
    }

    /// Writes, syncs and reads the storage has been asked for so far (failed ones included; a
    /// sync counts from the moment it begins): the range to sweep a countdown over.
    pub fn calls_seen(&self) -> (u64, u64, u64) {
        let [w, s, r] = &self.state.seen;
        (
            w.load(Ordering::SeqCst),
            s.load(Ordering::SeqCst),
            r.load(Ordering::SeqCst),
        )
    }

    /// Bytes the storage has been asked to write so far (failed writes included): what a
    /// workload costs the disk.
    pub fn bytes_written(&self) -> u64 {
        self.state.bytes_written.load(Ordering::SeqCst)
    }

    /// Counts a call and fails it when due.
    fn check(&self, what: Call) -> io::Result<()> {
        self.count(what);
        self.fail_if_due(what)
    }

    fn count(&self, what: Call) {
        self.state.seen[what as usize].fetch_add(1, Ordering::SeqCst);
    }

    /// Fails a call once the countdown for its kind has run out.
    fn fail_if_due(&self, what: Call) -> io::Result<()> {
        let counter = match what {
            Call::Write => &self.state.writes_left,
            Call::Sync => &self.state.syncs_left,
            Call::Read => &self.state.reads_left,
        };
        let left = counter.load(Ordering::SeqCst);
        if left < 0 {
            return Ok(());
        }
        if left == 0 {
            self.state.injected.fetch_add(1, Ordering::SeqCst);
            return Err(io::Error::other(format!(
                "injected {} failure",
                what.name()
            )));
        }
        counter.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }

    /// What every write to the file or its log goes through: fails when told to.
    pub(crate) fn before_write(&self, len: usize) -> io::Result<()> {
        self.check_space()?;
        self.state
            .bytes_written
            .fetch_add(len as u64, Ordering::SeqCst);
        self.check(Call::Write)
    }

    /// What every read of the file goes through: fails when told to.
    pub(crate) fn before_read(&self) -> io::Result<()> {
        self.check(Call::Read)
    }

    /// What every growth of the file goes through: fails while the disk is full.
    pub(crate) fn before_set_len(&self) -> io::Result<()> {
        self.check_space()
    }

    /// What every sync of the file or its log goes through: counted as it begins (so a test
    /// can tell one is under way), then slowed, then failed when told to. `Ok(false)`: report
    /// the sync done without flushing (see [`FaultInjector::skip_flushes`]).
    pub(crate) fn before_sync(&self) -> io::Result<bool> {
        self.count(Call::Sync);
        let delay = self.state.sync_delay_us.load(Ordering::SeqCst);
        if delay > 0 {
            std::thread::sleep(std::time::Duration::from_micros(delay));
        }
        self.fail_if_due(Call::Sync)?;
        Ok(!self.state.flushes_skipped.load(Ordering::SeqCst))
    }

    fn check_space(&self) -> io::Result<()> {
        if self.state.disk_full.load(Ordering::SeqCst) {
            self.state.injected.fetch_add(1, Ordering::SeqCst);
            return Err(io::Error::from(io::ErrorKind::StorageFull));
        }
        Ok(())
    }
}

/// The kinds of storage call counted, in the order of `FaultState::seen`.
#[derive(Debug, Clone, Copy)]
enum Call {
    Write = 0,
    Sync = 1,
    Read = 2,
}

impl Call {
    fn name(self) -> &'static str {
        match self {
            Call::Write => "write",
            Call::Sync => "sync",
            Call::Read => "read",
        }
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
