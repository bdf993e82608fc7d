//! A fault sweep: the same workload (queue sends, receives and acks, job submits and joins,
//! topic publishes) runs again and again on a fresh file, and each run makes the Nth storage
//! write, sync or read fail, or fills the disk before the Nth step, for N across the whole
//! workload, the open included. Every run must give typed errors only (no panic, no hang),
//! poison the engine on a failed write or sync, and after a clean reopen show exactly what was
//! acknowledged: every acknowledged send, submit, completion and publish is there; nothing
//! unacknowledged is there except the one operation in flight when the fault hit.
//!
//! `JOBFILE_FAULT_SWEEP=full` tries every N; the default tries the first 12 and an even spread
//! of the rest, for CI.

use crate::common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use common::temp_file;
use jobfile::testing::FaultInjector;
use jobfile::{Engine, EngineOptions, Error, JobCtx, JobHandle, JobSpec, MessageStatus, Outcome};

const STEPS: u32 = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Write,
    Sync,
    Read,
    /// The disk fills up before step N.
    DiskFull,
}

/// What the workload was told had happened, and what it was doing when it failed.
#[derive(Debug, Default)]
struct Acked {
    /// Queue message ids sent (payload `m{i}`), and those received and acked.
    sent: Vec<(u32, u64)>,
    consumed: BTreeSet<u64>,
    /// Job ids submitted with input i, and those joined as completed.
    submitted: Vec<(u32, u64)>,
    completed: Vec<(u64, u32)>,
    /// Topic sequence numbers published with payload `e{i}`.
    published: Vec<(u32, u64)>,
    /// The operation that failed: its kind and step.
    failed_at: Option<(&'static str, u32)>,
    /// A received message whose ack failed: it may be consumed or not.
    ack_in_flight: Option<u64>,
}

/// A page cache too small to hold the file, so reads reach the storage and can fail.
fn options(faults: &FaultInjector) -> EngineOptions {
    EngineOptions::new()
        .fault_injector(faults.clone())
        .cache_size(16 * 1024)
}

fn typed(e: &Error) -> bool {
    matches!(
        e,
        Error::Poisoned { .. }
            | Error::Storage(_)
            | Error::StorageFull { .. }
            | Error::Io { .. }
            | Error::Corrupt { .. }
    )
}

fn double_job(engine: &Engine) -> jobfile::Result<JobHandle<u32, u32>> {
    engine.register(
        JobSpec::new("double").concurrency(2),
        |_: JobCtx, n: u32| async move { Ok(n * 2) },
    )
}

/// Runs the workload until the first error, recording every acknowledgement.
async fn workload(
    engine: &Engine,
    faults: &FaultInjector,
    full_at: Option<u32>,
    acked: &mut Acked,
) {
    let q = engine.queue("q").unwrap();
    let t = engine.topic("t").unwrap();
    let h = match double_job(engine) {
        Ok(h) => h,
        Err(e) => panic!("register: {e}"),
    };
    for i in 0..STEPS {
        if full_at == Some(i) {
            faults.disk_full();
        }
        let step = async {
            let r = q.send(format!("m{i}").into_bytes()).await;
            let sent = r.map_err(|e| ("send", e))?;
            acked.sent.push((i, sent.id));
            let r = h.submit(i).key(format!("k{i}")).await;
            let job = r.map_err(|e| ("submit", e))?;
            acked.submitted.push((i, job.id));
            if i % 3 == 0 {
                match h.join(job.id, None).await.map_err(|e| ("join", e))? {
                    Outcome::Completed(out) => acked.completed.push((job.id, out)),
                    other => panic!("job {i}: {other:?}"),
                }
            }
            let r = t.publish(format!("e{i}").into_bytes()).await;
            let event = r.map_err(|e| ("publish", e))?;
            acked.published.push((i, event.seq));
            if i % 4 == 0 {
                let got = q.try_receive(1, Duration::from_secs(30)).await;
                for d in got.map_err(|e| ("receive", e))? {
                    acked.ack_in_flight = Some(d.id());
                    d.ack().await.map_err(|e| ("ack", e))?;
                    acked.ack_in_flight = None;
                    acked.consumed.insert(d.id());
                }
            }
            Ok::<(), (&'static str, Error)>(())
        };
        if let Err((what, e)) = step.await {
            assert!(typed(&e), "{what} at step {i} gave an untyped error: {e:?}");
            acked.failed_at = Some((what, i));
            return;
        }
    }
}

/// One run with one fault; returns whether the fault was hit.
async fn run_once(fault: Fault, n: u64) -> bool {
    let (_dir, path) = temp_file();
    let faults = FaultInjector::new();
    match fault {
        Fault::Write => faults.fail_writes_after(n),
        Fault::Sync => faults.fail_syncs_after(n),
        Fault::Read => faults.fail_reads_after(n),
        Fault::DiskFull => {}
    }
    let full_at = (fault == Fault::DiskFull).then_some(n as u32);
    let mut acked = Acked::default();
    let opened = options(&faults).open(&path).await;
    match opened {
        Ok(engine) => {
            tokio::time::timeout(
                Duration::from_secs(60),
                workload(&engine, &faults, full_at, &mut acked),
            )
            .await
            .unwrap_or_else(|_| panic!("{fault:?} #{n}: the workload hung"));
            // A fault may also hit a commit of the engine's own (a job finishing in the
            // background): no call of the workload fails then, but the engine is poisoned all
            // the same, once the writer has handled that commit. One more write, queued behind
            // it (on a queue the check below does not look at), waits for that.
            let hit_by_now = faults.faults_injected() > 0;
            let barrier = engine.queue("barrier").unwrap();
            let _ = barrier.send(b"barrier".to_vec()).await;
            if matches!(fault, Fault::Write | Fault::Sync | Fault::DiskFull) && hit_by_now {
                assert!(
                    engine.poisoned().is_some(),
                    "{fault:?} #{n}: a failed write must poison the engine"
                );
            }
            // Closing a poisoned engine may report the failure again; it must not hang.
            tokio::time::timeout(
                Duration::from_secs(30),
                engine.shutdown(Duration::from_secs(5)),
            )
            .await
            .unwrap_or_else(|_| panic!("{fault:?} #{n}: shutdown hung"))
            .ok();
        }
        Err(e) => {
            assert!(
                typed(&e),
                "{fault:?} #{n}: open gave an untyped error: {e:?}"
            );
            acked.failed_at = Some(("open", 0));
        }
    }
    let hit = faults.faults_injected() > 0;
    if acked.failed_at.is_some() {
        assert!(
            hit,
            "{fault:?} #{n}: an error with no fault injected ({acked:?})"
        );
    }
    check_after_reopen(&path, &acked, &format!("{fault:?} #{n}")).await;
    hit
}

/// Reopens without faults and checks that exactly the acknowledged state is there.
async fn check_after_reopen(path: &Path, acked: &Acked, run: &str) {
    let engine = Engine::open(path)
        .await
        .unwrap_or_else(|e| panic!("{run}: the file must reopen: {e}"));
    let q = engine.queue("q").unwrap();
    for (i, id) in &acked.sent {
        let info = q.get(*id).await.unwrap();
        if acked.consumed.contains(id) {
            assert!(info.is_none(), "{run}: consumed m{i} came back");
        } else if acked.ack_in_flight != Some(*id) {
            let info = info.unwrap_or_else(|| panic!("{run}: acknowledged send m{i} was lost"));
            assert_eq!(info.payload, format!("m{i}").into_bytes(), "{run}");
            assert!(
                matches!(
                    info.state,
                    MessageStatus::Ready | MessageStatus::Leased { .. }
                ),
                "{run}: {info:?}"
            );
        }
    }
    // Nothing beyond the acknowledged sends, but the one in flight.
    let stats = q.stats().await.unwrap();
    let live = acked.sent.len() as u64 - acked.consumed.len() as u64;
    let in_flight = u64::from(acked.failed_at.is_some_and(|(what, _)| what == "send"));
    let total = stats.ready + stats.leased + stats.delayed;
    assert!(
        (live.saturating_sub(u64::from(acked.ack_in_flight.is_some()))..=live + in_flight)
            .contains(&total),
        "{run}: {total} messages in the queue, {live} acknowledged live ({acked:?})"
    );
    let jobs = engine.jobs();
    for (i, id) in &acked.submitted {
        let info = jobs
            .get(*id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{run}: acknowledged submit of job {i} was lost"));
        assert_eq!(info.key.as_deref(), Some(format!("k{i}").as_str()), "{run}");
    }
    let h = double_job(&engine).unwrap();
    for (id, out) in &acked.completed {
        match h.join(*id, Some(Duration::ZERO)).await.unwrap() {
            Outcome::Completed(o) => assert_eq!(o, *out, "{run}"),
            other => panic!("{run}: completed job {id} is now {other:?}"),
        }
    }
    let t = engine.topic("t").unwrap();
    let events = t.read(1, 1_000).await.unwrap();
    for (i, seq) in &acked.published {
        let e = events
            .iter()
            .find(|e| e.seq == *seq)
            .unwrap_or_else(|| panic!("{run}: acknowledged publish e{i} was lost"));
        assert_eq!(e.payload, format!("e{i}").into_bytes(), "{run}");
    }
    let publish_in_flight = usize::from(acked.failed_at.is_some_and(|(w, _)| w == "publish"));
    assert!(
        events.len() <= acked.published.len() + publish_in_flight,
        "{run}: {} events, {} acknowledged",
        events.len(),
        acked.published.len()
    );
    engine.shutdown(Duration::from_secs(5)).await.unwrap();
}

/// The calls a clean run makes, to know the range to sweep.
async fn clean_run_calls() -> (u64, u64, u64) {
    let (_dir, path) = temp_file();
    let faults = FaultInjector::new();
    let engine = options(&faults).open(&path).await.unwrap();
    let mut acked = Acked::default();
    workload(&engine, &faults, None, &mut acked).await;
    assert_eq!(acked.failed_at, None);
    assert_eq!(acked.sent.len(), STEPS as usize);
    engine.shutdown(Duration::from_secs(5)).await.unwrap();
    check_after_reopen(&path, &acked, "clean").await;
    faults.calls_seen()
}

/// The N to try out of `0..total`: all of them, or the first 12 and an even spread.
fn points(total: u64) -> Vec<u64> {
    if std::env::var("JOBFILE_FAULT_SWEEP").as_deref() == Ok("full") {
        return (0..total).collect();
    }
    let mut out: BTreeSet<u64> = (0..total.min(12)).collect();
    let spread = 96;
    for k in 0..spread {
        out.insert(total * k / spread);
    }
    out.insert(total.saturating_sub(1));
    out.into_iter().collect()
}

async fn sweep(fault: Fault, total: u64) {
    let mut hit = 0;
    let tried = points(total);
    for n in &tried {
        if run_once(fault, *n).await {
            hit += 1;
        }
    }
    eprintln!(
        "{fault:?}: {} points swept over {total} calls, {hit} faults injected, 0 violations",
        tried.len()
    );
    assert!(hit > 0, "{fault:?}: no fault was ever hit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_writes_at_every_point_leave_exactly_the_acknowledged_state() {
    let (writes, _, _) = clean_run_calls().await;
    sweep(Fault::Write, writes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_syncs_at_every_point_leave_exactly_the_acknowledged_state() {
    let (_, syncs, _) = clean_run_calls().await;
    sweep(Fault::Sync, syncs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_reads_at_every_point_give_typed_errors() {
    let (_, _, reads) = clean_run_calls().await;
    sweep(Fault::Read, reads.max(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_filling_up_at_every_step_leaves_exactly_the_acknowledged_state() {
    let mut hit = 0;
    for step in 0..STEPS {
        if run_once(Fault::DiskFull, u64::from(step)).await {
            hit += 1;
        }
    }
    eprintln!("DiskFull: {STEPS} steps swept, {hit} faults injected, 0 violations");
    assert!(hit > 0);
}
