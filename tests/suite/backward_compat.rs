//! Files written by earlier builds open and read right. The fixtures under `tests/fixtures/`
//! are committed once and never rewritten by a test: each one pins a format.
//!
//! Both hold what `tests/suite/fuzz_corpus.rs`'s `fill` writes: a completed job `k` (key `key`), a
//! delayed job `k`, two queue messages in `q` (one leased when the file was closed), a mutex, an
//! ephemeral entry, two topic events with a group, and a schedule. `format2.bin` also holds a job
//! `big` whose 4 KiB input, and a message whose 4 KiB payload, are stored apart from their
//! records.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::jobs::AllIn;

use jobfile::{DeadReason, EngineOptions, JobState, ManualClock};

/// 2100-01-01T00:00:00Z: past every age and retention the fixtures' records have.
const YEAR_2100: u64 = 4_102_444_800_000;

fn fixture(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fixture.jobfile");
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::copy(from, &path).unwrap();
    (dir, path)
}

fn format_version(path: &Path) -> u64 {
    let db = redb::Database::open(path).unwrap();
    let rtx = redb::ReadableDatabase::begin_read(&db).unwrap();
    let meta: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("jobfile_meta");
    let table = rtx.open_table(meta).unwrap();
    redb::ReadableTable::get(&table, "format_version")
        .unwrap()
        .unwrap()
        .value()
}

#[tokio::test]
async fn a_format_1_file_opens_is_upgraded_and_its_old_messages_expire_on_time() {
    let (_dir, path) = fixture("format1.bin");
    assert_eq!(format_version(&path), 1);
    let engine = EngineOptions::new()
        .clock(ManualClock::new(YEAR_2100))
        .open(&path)
        .await
        .unwrap();
    // The age index was built at this open: both messages are far past their 7 days.
    let q = engine.queue("q").unwrap();
    let dead = q.dead_letters(10).await.unwrap();
    assert_eq!(
        dead.iter().map(|d| d.reason).collect::<Vec<_>>(),
        [DeadReason::Expired, DeadReason::Expired]
    );
    assert_eq!(
        dead.iter().map(|d| d.payload.clone()).collect::<Vec<_>>(),
        [b"one".to_vec(), b"two".to_vec()]
    );
    // The delayed job is still queued; the completed one was pruned after its retention.
    let queued = engine.jobs().all_in(JobState::Queued).await;
    assert_eq!(queued.len(), 1);
    assert_eq!(
        (queued[0].name.as_str(), queued[0].input_json.as_slice()),
        ("k", &b"2"[..])
    );
    assert!(engine.jobs().all_in(JobState::Completed).await.is_empty());
    // The queue's tallies were taken at the open, then followed the messages into the
    // dead-letter list.
    let queues = engine.queues().await.unwrap();
    assert_eq!(
        queues
            .iter()
            .map(|q| (q.name.as_str(), q.stats.ready, q.stats.dead))
            .collect::<Vec<_>>(),
        [("q", 0, 2)]
    );
    // The per-definition counts were taken at the open, before the pruning, which the counts
    // then followed.
    let counts = engine.jobs().counts().await.unwrap();
    assert_eq!(
        counts
            .iter()
            .map(|c| (c.name.as_str(), c.queued, c.completed))
            .collect::<Vec<_>>(),
        [("k", 1, 0)]
    );
    engine.shutdown(Duration::from_secs(5)).await.unwrap();
    assert_eq!(format_version(&path), 7, "upgraded at the open");
}

#[tokio::test]
async fn a_format_2_file_opens_with_its_inputs_stored_apart() {
    let (_dir, path) = fixture("format2.bin");
    assert_eq!(format_version(&path), 2);
    let engine = EngineOptions::new()
        .clock(ManualClock::new(YEAR_2100))
        .open(&path)
        .await
        .unwrap();
    let queued = engine.jobs().all_in(JobState::Queued).await;
    let names: Vec<&str> = queued.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["k", "big"]);
    let counts = engine.jobs().counts().await.unwrap();
    assert_eq!(
        counts
            .iter()
            .map(|c| (c.name.as_str(), c.queued))
            .collect::<Vec<_>>(),
        [("big", 1), ("k", 1)]
    );
    let big = &queued[1];
    assert_eq!(big.input_json.len(), 4_096 + 2);
    assert!(
        big.input_json
            .iter()
            .skip(1)
            .take(4_096)
            .all(|b| *b == b'x')
    );
    // It runs with its whole input, and is pruned with it.
    let h = engine
        .register(
            jobfile::JobSpec::new("big").retention(Duration::from_secs(1)),
            |_: jobfile::JobCtx, input: String| async move { Ok(input.len()) },
        )
        .unwrap();
    assert_eq!(
        h.join(big.id, None).await.unwrap(),
        jobfile::Outcome::Completed(4_096)
    );
    let dead = engine.queue("q").unwrap().dead_letters(10).await.unwrap();
    let payloads: Vec<Vec<u8>> = dead.iter().map(|d| d.payload.clone()).collect();
    assert_eq!(
        payloads,
        [b"one".to_vec(), b"two".to_vec(), vec![b'p'; 4_096]]
    );
    engine.shutdown(Duration::from_secs(5)).await.unwrap();
    assert_eq!(format_version(&path), 7, "upgraded at the open");
}
