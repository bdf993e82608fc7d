//! Helpers shared by the integration tests: temp files, manual-clock engines, and child
//! processes that re-run this test binary in a given role (so a test can SIGKILL real work).

#![allow(dead_code)]

pub mod jobs;
pub mod operator;
#[macro_use]
pub mod pg;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use jobfile::{Engine, EngineOptions, ManualClock};

/// A fixed start for manual clocks: 2026-01-01T00:00:00Z.
pub const T0: u64 = 1_767_225_600_000;

pub fn temp_file() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("test.jobfile");
    (dir, path)
}

pub async fn open_manual(path: &Path) -> (Engine, ManualClock) {
    open_manual_at(path, T0).await
}

/// An engine on a manual clock that starts at `at` (ms since the epoch).
pub async fn open_manual_at(path: &Path, at: u64) -> (Engine, ManualClock) {
    let clock = ManualClock::new(at);
    let engine = EngineOptions::new()
        .clock(clock.clone())
        .open(path)
        .await
        .expect("open");
    (engine, clock)
}

/// An engine on the system clock whose storage calls go through a fault injector (which
/// also counts the bytes written).
pub async fn open_faulty(path: &Path) -> (Engine, jobfile::testing::FaultInjector) {
    let faults = jobfile::testing::FaultInjector::new();
    let engine = EngineOptions::new()
        .fault_injector(faults.clone())
        .open(path)
        .await
        .expect("open");
    (engine, faults)
}

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// The environment variable that tells a re-run test binary which role to play.
pub const ROLE_VAR: &str = "JOBFILE_TEST_ROLE";
pub const PATH_VAR: &str = "JOBFILE_TEST_PATH";

/// A child process that is SIGKILLed when dropped, so a failing test never leaves one behind
/// (an orphan would hold the test harness's output pipe open).
pub struct KillOnDrop(pub Child);

impl std::ops::Deref for KillOnDrop {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts this test binary again, running only the ignored test `entry` (its full name, the
/// module's included: `crash::child_entry`) in `role` on `path`.
pub fn spawn_child(entry: &str, role: &str, path: &Path) -> (KillOnDrop, BufReader<ChildStdout>) {
    let exe = std::env::current_exe().expect("current exe");
    let mut child = Command::new(exe)
        .args([
            entry,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE_VAR, role)
        .env(PATH_VAR, path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let out = BufReader::new(child.stdout.take().expect("child stdout"));
    (KillOnDrop(child), out)
}

/// Reads child lines until one starts with `prefix`; returns the rest of that line.
pub fn wait_for_line(out: &mut BufReader<ChildStdout>, prefix: &str) -> String {
    let mut line = String::new();
    loop {
        line.clear();
        let n = out.read_line(&mut line).expect("read child output");
        assert!(n > 0, "child ended before printing {prefix:?}");
        // The test harness prints its own "test name ... " before the child's first line.
        if let Some(at) = line.find(prefix) {
            return line.trim_end()[at + prefix.len()..].to_string();
        }
    }
}

/// The role and path given to a child, if this process is one.
pub fn child_role() -> Option<(String, PathBuf)> {
    let role = std::env::var(ROLE_VAR).ok()?;
    let path = std::env::var(PATH_VAR).ok()?;
    Some((role, PathBuf::from(path)))
}

/// A small xorshift generator seeded from the process's random hasher, so kill points differ
/// between runs; the seed is printed so a failing run can be repeated.
pub struct Rng(u64);

impl Rng {
    pub fn new() -> Self {
        use std::hash::{BuildHasher, RandomState};
        let seed = std::env::var("JOBFILE_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| RandomState::new().hash_one(0u8) | 1);
        eprintln!("rng seed {seed} (set JOBFILE_TEST_SEED to repeat)");
        Rng(seed)
    }

    /// A fixed sequence, for inputs that must be the same on every run.
    #[allow(dead_code)]
    pub fn seeded(seed: u64) -> Self {
        Rng(seed | 1)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// The row count of every table of the file at `path` whose name starts with `prefix`, by
/// name. The file must not be open in an engine.
pub fn table_rows(path: &Path, prefix: &str) -> Vec<(String, u64)> {
    use redb::{ReadableDatabase, ReadableTableMetadata, TableHandle};
    let db = redb::Database::open(path).unwrap();
    let rtx = db.begin_read().unwrap();
    let mut rows: Vec<(String, u64)> = rtx
        .list_tables()
        .unwrap()
        .filter(|t| t.name().starts_with(prefix))
        .map(|t| {
            let name = t.name().to_string();
            (name, rtx.open_untyped_table(t).unwrap().len().unwrap())
        })
        .collect();
    rows.sort();
    rows
}
