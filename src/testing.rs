//! Tools for testing what an application (or jobfile itself) does when storage fails or
//! holds what it should not: a fault-injecting storage backend, the record decoders, and the
//! entry points of the fuzz targets in `fuzz/` (which the test suite also runs over a stored
//! corpus on stable Rust).

use std::path::Path;
use std::time::Duration;

use crate::error::Result;

pub use crate::store::faults::FaultInjector;

/// Decodes `bytes` as every kind of stored record, the way the engine reads them from the
/// file: `Ok` if some kind accepts them, else the queue-message decoder's
/// [`Error::Corrupt`](crate::Error::Corrupt). Never panics, whatever the input.
pub fn decode_stored_records(bytes: &[u8]) -> crate::Result<()> {
    let mut kinds = decode_each_record_kind(bytes).into_iter();
    let first = kinds.next().map_or(Ok(()), |(_, r)| r);
    if first.is_ok() || kinds.any(|(_, r)| r.is_ok()) {
        return Ok(());
    }
    first
}

/// Decodes `bytes` as each kind of stored record in turn (queue message, job, job event,
/// mutex lease, ephemeral entry, ephemeral change, ephemeral set, topic event, topic, consumer
/// group, pending delivery, schedule, schedule failure, schedule dead letter, rate-limit
/// counts) and says how
/// each went.
/// Never panics, whatever the input.
pub fn decode_each_record_kind(bytes: &[u8]) -> Vec<(&'static str, crate::Result<()>)> {
    let [failure, dead] = crate::scheduler::decode_failure_records(bytes);
    let mut kinds = vec![
        (
            "queue_messages",
            crate::queue::record::decode_message_record(bytes),
        ),
        ("jobs", crate::job::testing::decode_job_record(bytes)),
        (
            "job_events",
            crate::job::testing::decode_event_record(bytes),
        ),
        ("mutexes", crate::mutex::record::decode_lease_record(bytes)),
        (
            "ephemeral_entries",
            crate::ephemeral::record::decode_entry_record(bytes),
        ),
        (
            "ephemeral_changes",
            crate::ephemeral::record::decode_change_record(bytes),
        ),
        (
            "ephemeral_sets",
            crate::ephemeral::record::decode_set_record(bytes),
        ),
        (
            "schedules",
            crate::scheduler::testing::decode_schedule_record(bytes),
        ),
        ("schedule_failures", failure),
        ("schedule_dead", dead),
        (
            "rate_limits",
            crate::ratelimit::record::decode_counts_record(bytes),
        ),
    ];
    kinds.extend(crate::topic::record::decode_records(bytes));
    kinds
}

/// Rewrites the stored cron expression and time zone of schedule `id` in the file at
/// `path`, which no engine may hold, without checking them: the state a build with
/// other cron or time-zone rules can leave behind. Returns whether the schedule existed.
/// For testing how the scheduler handles schedules it cannot read.
pub fn rewrite_schedule_expression(
    path: impl AsRef<std::path::Path>,
    id: &str,
    cron: &str,
    zone: &str,
) -> crate::Result<bool> {
    crate::scheduler::testing::rewrite_expression(path.as_ref(), id, cron, zone)
}

/// A stored schedule record (a `record` of the PostgreSQL `schedules` table) with its
/// expression and zone replaced, unchecked: what a build with other cron or time-zone rules
/// can leave behind. For testing how the scheduler handles schedules it cannot read.
pub fn rewrite_schedule_record(record: &[u8], cron: &str, zone: &str) -> crate::Result<Vec<u8>> {
    crate::scheduler::testing::rewrite_expression_in(record, cron, zone)
}

/// Rewrites job `id` in the file at `path`, which no engine may hold, the way the first file
/// format stored it: every event a row of the events table, and a completed job listed in the
/// finished index. Returns whether the job existed. For testing that files written by earlier
/// versions still read and prune right.
pub fn rewrite_job_as_v1(path: impl AsRef<std::path::Path>, id: u64) -> Result<bool> {
    crate::job::testing::rewrite_as_v1(path.as_ref(), id)
}

/// A job record as the engine stores it, for micro benchmarks of the record codec (see
/// `benches/micro.rs`): a typical job after submit → start → complete, with a given number of
/// events of its own.
#[derive(Debug, Clone)]
pub struct SampleJobRecord(crate::job::record::JobV1);

impl SampleJobRecord {
    /// A completed job with `events` events (the first six ride in the record, as the engine
    /// writes them; a plain job has three: submitted, started, completed).
    pub fn new(events: usize) -> Self {
        SampleJobRecord(crate::job::record::sample_job(events))
    }

    /// The bytes the engine writes for this job, the way it writes them at every change.
    pub fn encode(&self) -> Vec<u8> {
        crate::job::record::encode_job(&self.0)
    }
}

/// Decodes `bytes` as a stored job record, the way the engine reads one (current and earlier
/// formats); [`Error::Corrupt`](crate::Error::Corrupt) when they are not one.
pub fn decode_job_record(bytes: &[u8]) -> Result<()> {
    crate::job::testing::decode_job_record(bytes)
}

/// The next `n` slots (UTC ms) of the cron expression `expr` in the IANA zone `zone` after
/// `after_ms`, the way the scheduler computes them; `InvalidArgument` naming the expression or
/// zone when it does not parse. Never panics, whatever the input.
pub fn schedule_slots(expr: &str, zone: &str, after_ms: u64, n: usize) -> Result<Vec<u64>> {
    let cron = crate::scheduler::CronSchedule::parse(expr, zone)?;
    let mut slots = Vec::with_capacity(n.min(1_000));
    let mut at = after_ms;
    for _ in 0..n {
        match cron.next_after(at) {
            Some(next) if next > at => {
                slots.push(next);
                at = next;
            }
            _ => break,
        }
    }
    Ok(slots)
}

/// Fuzz entry: arbitrary bytes as stored records of every kind. Never panics.
pub fn fuzz_decode(data: &[u8]) {
    let _ = decode_stored_records(data);
}

/// Fuzz entry: arbitrary bytes as `expression \n zone`, parsed and asked for a few slots.
/// Never panics.
pub fn fuzz_cron(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (expr, zone) = text.split_once('\n').unwrap_or((&text, "UTC"));
    // A fixed instant, 2026-01-01T00:00:00Z, and one derived from the input.
    let salt = data
        .iter()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(*b)));
    for after in [1_767_225_600_000, salt % 4_102_444_800_000] {
        let _ = schedule_slots(expr, zone, after, 3);
    }
}

/// Fuzz entry: arbitrary bytes as a whole file, opened as a jobfile in a temporary directory.
/// Opening must give a typed error or an engine whose reads and writes give results or typed
/// errors; it must never panic. Returns what the open gave.
pub fn fuzz_open(data: &[u8]) -> Result<()> {
    let dir = std::env::temp_dir().join(format!(
        "jobfile-fuzz-{}-{}",
        std::process::id(),
        FUZZ_FILES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let path = dir.join("fuzz.jobfile");
    let io = |source| crate::Error::Io {
        path: path.clone(),
        source,
    };
    let result = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&path, data))
        .map_err(io)
        .and_then(|()| open_and_use(&path));
    let _ = std::fs::remove_dir_all(&dir);
    result
}

static FUZZ_FILES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn open_and_use(path: &Path) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|source| crate::Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
    rt.block_on(async {
        let engine = crate::Engine::open(path).await?;
        let used = async {
            let jobs = engine.jobs();
            for state in [crate::JobState::Queued, crate::JobState::Completed] {
                jobs.list().state(state).oldest_first().limit(10).await?;
            }
            let queue = engine.queue("fuzz")?;
            queue.send(b"x".to_vec()).await?;
            for d in queue.try_receive(10, Duration::from_secs(30)).await? {
                d.ack().await?;
            }
            engine.scheduler().list().await?;
            Ok::<_, crate::Error>(())
        }
        .await;
        let closed = engine.shutdown(Duration::from_secs(5)).await;
        used.and(closed)
    })
}
