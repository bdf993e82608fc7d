//! Shutdown: calls waiting at shutdown end with `Closed`, and a shutdown keeps its deadline and
//! hands every unfinished job back in one write, so a kill right after it charges nothing.

use crate::common;

use std::time::{Duration, Instant};

use common::jobs::AllIn;
use common::{Rng, child_role, open_manual, secs, spawn_child, temp_file, wait_for_line};
use jobfile::{Engine, EngineOptions, Error, JobCtx, JobEventKind, JobSpec, JobState};

#[tokio::test]
async fn calls_waiting_at_shutdown_end_with_closed() {
    let (_dir, path) = temp_file();
    let (engine, _clock) = open_manual(&path).await;
    let queue = engine.queue("empty").unwrap();
    let topic = engine.topic("quiet").unwrap();
    let group = topic.group("g");
    let mutex = engine.mutex("m").unwrap();
    mutex
        .try_acquire("holder", secs(60))
        .await
        .unwrap()
        .unwrap();
    let receive = tokio::spawn({
        let queue = queue.clone();
        async move { queue.receive().await.map(|_| ()) }
    });
    let batch = tokio::spawn({
        let queue = queue.clone();
        async move { queue.receive_batch(8, secs(30)).await.map(|_| ()) }
    });
    let group_receive = tokio::spawn(async move { group.receive(4).await.map(|_| ()) });
    let acquire = tokio::spawn({
        let mutex = mutex.clone();
        async move {
            mutex
                .acquire("waiter", secs(60), secs(3_600))
                .await
                .map(|_| ())
        }
    });
    // Let every call reach its wait.
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    assert!(!receive.is_finished() && !group_receive.is_finished() && !acquire.is_finished());
    engine.shutdown(secs(1)).await.unwrap();
    for (what, task) in [
        ("queue receive", receive),
        ("queue receive_batch", batch),
        ("group receive", group_receive),
        ("mutex acquire", acquire),
    ] {
        let ended = tokio::time::timeout(secs(10), task)
            .await
            .unwrap_or_else(|_| panic!("{what} still waits after shutdown"))
            .unwrap();
        assert!(matches!(ended, Err(Error::Closed)), "{what}: {ended:?}");
    }
    // Calls made after the shutdown fail at once.
    assert!(matches!(queue.receive().await, Err(Error::Closed)));
    assert!(matches!(
        topic.group("g").receive(1).await,
        Err(Error::Closed)
    ));
}

const STUBBORN: u64 = 2_048;

#[test]
#[ignore = "child process entry point"]
fn shutdown_child_entry() {
    let Some((role, path)) = child_role() else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    if role == "signal" {
        rt.block_on(async move {
            let engine = Engine::open(&path).await.expect("child open");
            let h = engine
                .register(JobSpec::new("long"), |ctx: JobCtx, _: ()| async move {
                    // Works until told to stop; a stopped attempt is handed back.
                    let why = ctx.cancelled().await;
                    Err::<(), _>(jobfile::JobError::retryable(format!("stopped: {why:?}")))
                })
                .expect("register");
            let id = h.submit(()).await.expect("submit").id;
            while h.get(id).await.expect("get").expect("job exists").state != JobState::Running {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let on_signal = engine.shutdown_on_signal(Duration::from_secs(5));
            tokio::pin!(on_signal);
            // Poll it once, so its signal handlers are in place before the parent signals.
            tokio::select! {
                biased;
                r = &mut on_signal => panic!("shut down before any signal: {r:?}"),
                () = std::future::ready(()) => {}
            }
            println!("job-running {id}");
            on_signal.await.expect("shutdown");
            println!("shut down");
        });
        return;
    }
    assert_eq!(role, "stubborn");
    rt.block_on(async move {
        let engine = EngineOptions::new()
            .max_running_jobs(STUBBORN as usize)
            .open(&path)
            .await
            .expect("child open");
        let h = engine
            .register(
                JobSpec::new("stubborn").concurrency(STUBBORN as usize),
                |_: JobCtx, _: u64| async move {
                    // Ignores its stop signal.
                    std::future::pending::<()>().await;
                    Ok(())
                },
            )
            .expect("register");
        h.submit_many((0..STUBBORN).map(|i| h.submit(i)))
            .await
            .expect("submit");
        while engine.jobs().metrics().await.expect("metrics").running_now < STUBBORN {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        println!("all-running");
        let started = Instant::now();
        engine
            .shutdown(Duration::from_millis(100))
            .await
            .expect("shutdown");
        println!("shutdown_ms {}", started.elapsed().as_millis());
        // Stays alive until the supervisor's SIGKILL.
        std::future::pending::<()>().await;
    });
}

/// Every stubborn job is queued again; `charged` says whether all of them were charged a crash
/// (none may be charged while others are not: the hand-back is one transaction).
async fn check_all_back(path: &std::path::Path) -> bool {
    let engine = Engine::open(path).await.unwrap();
    let jobs = engine.jobs();
    let queued = jobs.all_in(JobState::Queued).await;
    assert_eq!(queued.len() as u64, STUBBORN);
    let charged = queued.iter().filter(|j| j.crashes == 1).count();
    assert!(
        charged == 0 || charged as u64 == STUBBORN,
        "{charged} of {STUBBORN} charged a crash"
    );
    for job in &queued {
        assert_eq!(job.attempts, 0, "job {}: no attempt charged", job.id);
        let events = jobs.events(job.id).read(0, 10).await.unwrap();
        let last = events.last().unwrap();
        let JobEventKind::Recovered { reason } = &last.kind else {
            panic!("job {}: last event {:?}", job.id, last.kind)
        };
        let expected = if charged == 0 { "at shutdown" } else { "died" };
        assert!(reason.contains(expected), "job {}: {reason}", job.id);
    }
    engine.shutdown(secs(5)).await.unwrap();
    charged > 0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_keeps_its_deadline_with_2048_stubborn_handlers_and_charges_nothing() {
    let (_dir, path) = temp_file();
    let (mut child, mut out) = spawn_child("shutdown::shutdown_child_entry", "stubborn", &path);
    wait_for_line(&mut out, "all-running");
    let took: u64 = wait_for_line(&mut out, "shutdown_ms ").parse().unwrap();
    // The supervisor's SIGKILL, right after shutdown returned.
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    eprintln!("shutdown(100 ms) with {STUBBORN} stubborn handlers took {took} ms");
    // The deadline plus one commit of the hand-back (generous for a loaded 2-core machine;
    // it took 15 s when each job was handed back in its own commit).
    assert!(took < 1_000, "shutdown(100 ms) took {took} ms");
    assert!(!check_all_back(&path).await, "a job was charged a crash");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_during_shutdown_charges_all_or_nothing() {
    let (_dir, path) = temp_file();
    let mut rng = Rng::new();
    let (mut child, mut out) = spawn_child("shutdown::shutdown_child_entry", "stubborn", &path);
    wait_for_line(&mut out, "all-running");
    // A moment before, during or after the hand-back.
    tokio::time::sleep(Duration::from_millis(50 + rng.below(150))).await;
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    let charged = check_all_back(&path).await;
    eprintln!("killed during shutdown: charged {charged}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_down_gracefully_and_hands_the_job_back_uncharged() {
    let (_dir, path) = temp_file();
    let (mut child, mut out) = spawn_child("shutdown::shutdown_child_entry", "signal", &path);
    let id: u64 = wait_for_line(&mut out, "job-running ").parse().unwrap();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    wait_for_line(&mut out, "shut down");
    assert!(
        child.wait().unwrap().success(),
        "the child ended on its own"
    );
    let engine = Engine::open(&path).await.unwrap();
    let job = engine.jobs().get(id).await.unwrap().unwrap();
    assert_eq!(
        (job.state, job.attempts, job.crashes),
        (JobState::Queued, 0, 0)
    );
    let events = engine.jobs().events(id).read(0, 10).await.unwrap();
    let JobEventKind::Recovered { reason } = &events.last().unwrap().kind else {
        panic!("last event {:?}", events.last())
    };
    assert!(reason.contains("at shutdown"), "{reason}");
    engine.shutdown(secs(5)).await.unwrap();
}
