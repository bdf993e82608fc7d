//! The write-ahead log under SIGKILL: a child process is killed while it syncs the log, while it
//! checkpoints (made to checkpoint every few kilobytes), while its sync thread syncs batches the
//! writer has already moved past (a loaded child on a slow disk), and while the next open
//! replays a long log. After each kill, every acknowledged send is there.

use crate::common;

use std::collections::BTreeSet;
use std::io::BufRead;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Rng, child_role, secs, spawn_child, temp_file, wait_for_line};
use jobfile::testing::FaultInjector;
use jobfile::{EngineOptions, Error};

/// What the child opens the file with, by role: `often` checkpoints every 16 KiB of log,
/// `piped` too, on a disk whose syncs take 1 ms (so 64 senders keep the writer ahead of the
/// sync thread), `never` not before an hour or a GiB.
fn options(role: &str) -> EngineOptions {
    match role {
        "often" => EngineOptions::new().checkpoint(16 * 1024, secs(3_600)),
        "piped" => {
            let slow = FaultInjector::new();
            slow.slow_syncs(Duration::from_millis(1));
            EngineOptions::new()
                .checkpoint(16 * 1024, secs(3_600))
                .fault_injector(slow)
        }
        _ => EngineOptions::new().checkpoint(1 << 30, secs(3_600)),
    }
}

/// The body of every child process (ignored in a normal run; the tests below start it).
#[test]
#[ignore = "child process entry point, started by the tests in this file"]
fn child_entry() {
    let Some((role, path)) = child_role() else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        let (mode, what) = role.split_once('-').expect("role is mode-what");
        let engine = options(mode).open(&path).await.expect("child open");
        println!("opened");
        if what == "open" {
            std::future::pending::<()>().await;
        }
        let q = engine.queue("work").expect("queue");
        let mut tasks = Vec::new();
        let senders = if mode == "piped" { 64 } else { 8 };
        for t in 0..senders {
            let (q, engine) = (q.clone(), engine.clone());
            tasks.push(tokio::spawn(async move {
                for i in 0u32.. {
                    let payload = [&[t][..], &i.to_be_bytes()[..], &[0; 200][..]].concat();
                    let id = q.send(payload).await.expect("send").id;
                    // Printed only after send returned, i.e. once durable.
                    let stats = engine.store_stats();
                    println!("sent {id} {}", stats.checkpoints);
                }
            }));
        }
        for t in tasks {
            t.await.expect("sender task");
        }
    });
}

/// What a killed child reported last.
#[derive(Default, Clone, Copy)]
struct Reported {
    checkpoints: u64,
}

/// Reads the child's output until `enough` sends are acknowledged, kills it, and reads what it
/// printed before dying. Returns the highest counts it reported.
fn kill_after_sends(
    child: &mut common::KillOnDrop,
    out: &mut std::io::BufReader<std::process::ChildStdout>,
    enough: u64,
    acknowledged: &mut BTreeSet<u64>,
) -> Reported {
    let mut last = Reported::default();
    let mut note = |line: &str| {
        if let Some(rest) = line.trim_end().strip_prefix("sent ") {
            let parts: Vec<u64> = rest.split(' ').map(|p| p.parse().unwrap()).collect();
            acknowledged.insert(parts[0]);
            last.checkpoints = last.checkpoints.max(parts[1]);
            return true;
        }
        false
    };
    let mut seen = 0;
    let mut line = String::new();
    while seen < enough {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "child died early");
        if note(&line) {
            seen += 1;
        }
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    for line in out.lines() {
        note(&line.unwrap());
    }
    last
}

async fn assert_all_there(path: &Path, acknowledged: &BTreeSet<u64>, when: &str) {
    let engine = EngineOptions::new().open(path).await.expect("reopen");
    let q = engine.queue("work").unwrap();
    let mut missing = Vec::new();
    for &id in acknowledged {
        if q.get(id).await.unwrap().is_none() {
            missing.push(id);
        }
    }
    assert!(
        missing.is_empty(),
        "{when}: {} of {} acknowledged sends lost: {missing:?}",
        missing.len(),
        acknowledged.len()
    );
    engine.shutdown(secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_send_survives_sigkill_amid_syncs_and_checkpoints() {
    let (_dir, path) = temp_file();
    let mut rng = Rng::new();
    let mut acknowledged = BTreeSet::new();
    let mut checkpoints = 0;
    let rounds = 12;
    for round in 0..rounds {
        let (mut child, mut out) = spawn_child("log_crash::child_entry", "often-send", &path);
        wait_for_line(&mut out, "opened");
        let enough = 50 + rng.below(800);
        checkpoints +=
            kill_after_sends(&mut child, &mut out, enough, &mut acknowledged).checkpoints;
        assert_all_there(&path, &acknowledged, &format!("round {round}")).await;
    }
    // Each record holds a 213-byte payload and its indexes: the children checkpointed often.
    assert!(checkpoints >= rounds, "only {checkpoints} checkpoints");
    eprintln!(
        "{} sends acknowledged, {checkpoints} checkpoints over {rounds} kills",
        acknowledged.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_send_survives_sigkill_while_the_sync_thread_lags_the_writer() {
    let (_dir, path) = temp_file();
    let mut rng = Rng::new();
    let mut acknowledged = BTreeSet::new();
    let mut checkpoints = 0;
    let rounds = 8;
    for round in 0..rounds {
        let (mut child, mut out) = spawn_child("log_crash::child_entry", "piped-send", &path);
        wait_for_line(&mut out, "opened");
        let enough = 200 + rng.below(1_500);
        // That the sync thread lags the writer under this load is shown in tests/suite/faults.rs.
        let last = kill_after_sends(&mut child, &mut out, enough, &mut acknowledged);
        checkpoints += last.checkpoints;
        assert_all_there(&path, &acknowledged, &format!("round {round}")).await;
    }
    assert!(checkpoints >= rounds, "only {checkpoints} checkpoints");
    eprintln!(
        "{} sends acknowledged, {checkpoints} checkpoints over {rounds} kills",
        acknowledged.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_while_the_open_replays_the_log_loses_nothing() {
    let (_dir, path) = temp_file();
    let mut rng = Rng::new();
    let mut acknowledged = BTreeSet::new();
    // A long log: the child never checkpoints after its open.
    let (mut child, mut out) = spawn_child("log_crash::child_entry", "never-send", &path);
    wait_for_line(&mut out, "opened");
    let last = kill_after_sends(&mut child, &mut out, 5_000, &mut acknowledged);
    assert_eq!(last.checkpoints, 0);
    let log = std::fs::metadata(path.with_extension("jobfile.wal"))
        .expect("the log is there after a kill")
        .len();
    assert!(log >= 1 << 20, "log of {log} bytes");

    // Opens killed at moments that sweep from the child's start to past its open, each a
    // little later than the one before: the first open that completes replays the whole log
    // (and checkpoints it), so the kills before it are the ones that can land in the replay.
    // (Drawn at random from 0 to 40 ms instead, a first kill after a fast open left no kill
    // during one.)
    let mut during_open = 0;
    for round in 0..10 {
        let (mut child, mut out) = spawn_child("log_crash::child_entry", "never-open", &path);
        let started = Instant::now();
        std::thread::sleep(Duration::from_micros(round * 4_000 + rng.below(4_000)));
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut rest);
        if !rest.contains("opened") {
            during_open += 1;
        }
        eprintln!(
            "killed {:?} after spawn, {}",
            started.elapsed(),
            if rest.contains("opened") {
                "after the open"
            } else {
                "during the open"
            }
        );
    }
    assert_all_there(&path, &acknowledged, "after the killed opens").await;
    eprintln!(
        "{} sends, a {log}-byte log, {during_open} of 10 kills during the open",
        acknowledged.len()
    );
    assert!(during_open > 0);
}

#[tokio::test]
async fn a_clean_shutdown_checkpoints_and_leaves_no_log() {
    let (_dir, path) = temp_file();
    let engine = EngineOptions::new().open(&path).await.unwrap();
    let q = engine.queue("work").unwrap();
    for i in 0..10u8 {
        q.send(vec![i]).await.unwrap();
    }
    let log = path.with_extension("jobfile.wal");
    assert!(log.exists());
    let before = engine.store_stats();
    engine.shutdown(secs(5)).await.unwrap();
    assert!(!log.exists(), "the log outlived a clean shutdown");
    // What was logged is in the file alone, whole.
    let engine = EngineOptions::new().open(&path).await.unwrap();
    let q = engine.queue("work").unwrap();
    let got = q.try_receive(100, secs(30)).await.unwrap();
    assert_eq!(
        got.iter().map(|d| d.payload().to_vec()).collect::<Vec<_>>(),
        (0..10u8).map(|i| vec![i]).collect::<Vec<_>>()
    );
    assert!(
        before.log_syncs >= 1 && before.log_syncs <= 10,
        "{before:?}"
    );
    assert_eq!(before.checkpoints, 0);
    drop(got);
    match engine.shutdown(secs(5)).await {
        Ok(()) | Err(Error::Closed) => {}
        Err(e) => panic!("{e}"),
    }
}
