//! Storage failures: a failed write, fsync or full disk poisons the engine; reopening shows the
//! last committed state.

use crate::common;

use common::{open_faulty, secs, temp_file};
use jobfile::testing::FaultInjector;
use jobfile::{Engine, EngineOptions, Error};

/// Every payload stored in `work`, in the order sent.
async fn payloads_after_reopen(path: &std::path::Path) -> Vec<Vec<u8>> {
    let engine = Engine::open(path).await.expect("reopen after a fault");
    let q = engine.queue("work").unwrap();
    let mut out = Vec::new();
    loop {
        let got = q.try_receive(1_000, secs(30)).await.unwrap();
        if got.is_empty() {
            break;
        }
        out.extend(got.iter().map(|d| d.payload().to_vec()));
    }
    engine.shutdown(secs(5)).await.unwrap();
    out
}

fn is_poisoned(e: &Error) -> bool {
    matches!(e, Error::Poisoned { .. })
}

#[tokio::test]
async fn failed_write_poisons_and_reopen_shows_last_commit() {
    let (_dir, path) = temp_file();
    let (engine, faults) = open_faulty(&path).await;
    let q = engine.queue("work").unwrap();
    for p in [b"a", b"b", b"c"] {
        q.send(p.to_vec()).await.unwrap();
    }
    faults.fail_writes_after(0);
    let err = q.send(b"d".to_vec()).await.unwrap_err();
    assert!(is_poisoned(&err), "{err}");
    assert!(faults.faults_injected() >= 1);
    assert!(
        engine
            .poisoned()
            .unwrap()
            .contains("injected write failure")
    );
    // Refused at once from now on, even with a healthy disk.
    faults.heal();
    let injected = faults.faults_injected();
    let err = q.send(b"e".to_vec()).await.unwrap_err();
    assert!(is_poisoned(&err));
    assert!(err.to_string().contains("reopen the file"), "{err}");
    assert_eq!(faults.faults_injected(), injected);
    engine.shutdown(secs(5)).await.unwrap();

    assert_eq!(
        payloads_after_reopen(&path).await,
        vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
    );
}

#[tokio::test]
async fn failed_fsync_poisons_and_the_file_still_opens() {
    let (_dir, path) = temp_file();
    let (engine, faults) = open_faulty(&path).await;
    let q = engine.queue("work").unwrap();
    q.send(b"a".to_vec()).await.unwrap();
    faults.fail_syncs_after(0);
    let err = q.send(b"b".to_vec()).await.unwrap_err();
    assert!(is_poisoned(&err), "{err}");
    assert!(engine.poisoned().unwrap().contains("injected sync failure"));
    drop(q);
    engine.shutdown(secs(5)).await.unwrap();

    // "a" was durable; "b" may or may not have reached the file before the failed fsync, but
    // nothing else may appear and the file must open.
    let got = payloads_after_reopen(&path).await;
    assert_eq!(got[0], b"a".to_vec());
    assert!(got.len() <= 2, "{got:?}");
}

#[tokio::test]
async fn full_disk_poisons_without_half_writing() {
    let (_dir, path) = temp_file();
    let (engine, faults) = open_faulty(&path).await;
    let q = engine.queue("work").unwrap();
    q.send(b"a".to_vec()).await.unwrap();
    faults.disk_full();
    // A large payload forces the file to grow: the write that meets the full disk is told so,
    // in a type it can match; later writes hear that the engine is poisoned.
    let err = q.send(vec![7u8; 100 * 1024]).await.unwrap_err();
    match &err {
        jobfile::Error::StorageFull { source } => {
            assert_eq!(source.kind(), std::io::ErrorKind::StorageFull)
        }
        other => panic!("expected StorageFull, got {other:?}"),
    }
    assert!(is_poisoned(&q.send(b"b".to_vec()).await.unwrap_err()));
    assert!(
        engine.poisoned().unwrap().to_lowercase().contains("space"),
        "{:?}",
        engine.poisoned()
    );
    engine.shutdown(secs(5)).await.unwrap();
    assert_eq!(payloads_after_reopen(&path).await, vec![b"a".to_vec()]);
}

#[tokio::test]
async fn a_poisoned_batch_fails_every_caller_in_it() {
    let (_dir, path) = temp_file();
    let (engine, faults) = open_faulty(&path).await;
    let q = engine.queue("work").unwrap();
    q.send(b"ok".to_vec()).await.unwrap();
    faults.fail_writes_after(0);
    let sends: Vec<_> = (0..16u8)
        .map(|i| {
            let q = q.clone();
            tokio::spawn(async move { q.send(vec![i]).await })
        })
        .collect();
    for s in sends {
        assert!(is_poisoned(&s.await.unwrap().unwrap_err()));
    }
    engine.shutdown(secs(5)).await.unwrap();
    assert_eq!(payloads_after_reopen(&path).await, vec![b"ok".to_vec()]);
}

/// Under load on a slow disk the writer hands batches to the log's sync thread and commits the
/// next ones meanwhile; a failed sync fails every sender, and only what was acknowledged
/// before is in the file. (How batches share a sync and its failure is pinned down exactly, on
/// the sync thread alone, by `store::syncer`'s unit test; here, under real load, how many
/// syncs the batches shared is up to the scheduler.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sync_behind_the_writer_fails_every_batch_waiting_for_it() {
    let (_dir, path) = temp_file();
    let faults = FaultInjector::new();
    faults.slow_syncs(std::time::Duration::from_millis(1));
    let engine = EngineOptions::new()
        .fault_injector(faults.clone())
        .open(&path)
        .await
        .unwrap();
    let q = engine.queue("work").unwrap();
    let send_all = |from: u8, to: u8| {
        let q = q.clone();
        async move {
            let mut tasks = Vec::new();
            for t in 0..64u8 {
                let q = q.clone();
                tasks.push(tokio::spawn(async move {
                    let mut acked = Vec::new();
                    for i in from..to {
                        match q.send(vec![t, i]).await {
                            Ok(_) => acked.push(vec![t, i]),
                            Err(e) => return (acked, Some(e)),
                        }
                    }
                    (acked, None)
                }));
            }
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap());
            }
            out
        }
    };
    let mut acked = Vec::new();
    for (mine, failure) in send_all(0, 50).await {
        assert!(failure.is_none());
        acked.extend(mine);
    }
    faults.fail_syncs_after(10);
    for (mine, failure) in send_all(50, 255).await {
        acked.extend(mine);
        let failure = failure.expect("every sender meets the failed sync");
        assert!(is_poisoned(&failure), "{failure}");
    }
    drop(q);
    engine.shutdown(secs(5)).await.unwrap();
    let mut stored = payloads_after_reopen(&path).await;
    stored.sort();
    acked.sort();
    // Every acknowledged send is there; a failed one may be too (its record may have reached
    // the disk before the sync failed), but the failed sync stopped the senders.
    assert!(acked.iter().all(|a| stored.binary_search(a).is_ok()));
    assert!(acked.len() < 64 * 255 && stored.len() < 64 * 255);
}

#[tokio::test]
async fn relaxed_durability_skips_the_fsync_per_commit_and_flushes_at_close() {
    let (_dir, path) = temp_file();
    let faults = FaultInjector::new();
    let engine = EngineOptions::new()
        .durability(jobfile::Durability::Relaxed {
            flush_every: secs(3600),
        })
        .fault_injector(faults.clone())
        .open(&path)
        .await
        .unwrap();
    let q = engine.queue("work").unwrap();
    // redb syncs when it grows the file, in any mode: let it grow first, by more than the
    // three small sends below need (it grows in steps larger than what it was asked for).
    let room = engine.queue("room").unwrap();
    room.send(vec![0; 100 * 1024]).await.unwrap();
    // Every fsync would fail, yet the sends succeed: relaxed commits do not fsync.
    faults.fail_syncs_after(0);
    for p in [b"a", b"b", b"c"] {
        q.send(p.to_vec()).await.unwrap();
    }
    assert_eq!(faults.faults_injected(), 0);
    assert!(engine.poisoned().is_none());
    faults.heal();
    // Closing flushes what the relaxed commits left unsynced.
    engine.shutdown(secs(5)).await.unwrap();
    assert_eq!(
        payloads_after_reopen(&path).await,
        vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
    );
}

#[tokio::test]
async fn immediate_durability_fsyncs_before_answering() {
    let (_dir, path) = temp_file();
    let (engine, faults) = open_faulty(&path).await;
    let q = engine.queue("work").unwrap();
    faults.fail_syncs_after(0);
    // The default mode cannot acknowledge a send whose fsync failed.
    assert!(is_poisoned(&q.send(b"a".to_vec()).await.unwrap_err()));
    assert_eq!(faults.faults_injected(), 1);
}

/// Skipping the disk's flush (for benchmarks) leaves everything else of a sync in place: each
/// is still counted and still takes the faults asked for, and what was written is still
/// there after a reopen.
#[tokio::test]
async fn a_sync_that_skips_the_flush_still_counts_and_still_fails_when_told() {
    let (_dir, path) = temp_file();
    let (engine, faults) = open_faulty(&path).await;
    faults.skip_flushes();
    let q = engine.queue("work").unwrap();
    let (syncs_before, log_syncs_before) = (faults.calls_seen().1, engine.store_stats().log_syncs);
    for p in [b"a", b"b"] {
        q.send(p.to_vec()).await.unwrap();
    }
    // One sync per send: each send is a lone commit, synced before it is answered.
    assert_eq!(faults.calls_seen().1 - syncs_before, 2);
    assert_eq!(engine.store_stats().log_syncs - log_syncs_before, 2);
    faults.fail_syncs_after(0);
    let err = q.send(b"c".to_vec()).await.unwrap_err();
    assert!(is_poisoned(&err), "{err}");
    assert_eq!(faults.faults_injected(), 1);
    engine.shutdown(secs(5)).await.unwrap();
    assert_eq!(
        payloads_after_reopen(&path).await,
        vec![b"a".to_vec(), b"b".to_vec()]
    );
}
