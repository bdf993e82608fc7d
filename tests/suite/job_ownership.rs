//! An attempt that lost its job (timed out or cancelled) while its handler ignores the stop
//! signal: it runs no step body, and it gives its slot to the next attempt at once. Manual
//! clock; no test sleeps on the wall clock.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use common::{open_manual, secs, temp_file};
use jobfile::{Engine, JobCtx, JobError, JobEventKind, JobSpec, JobState, Outcome};
use tokio::sync::{Notify, mpsc};

/// Follows the job's events until one matches.
async fn wait_for(engine: &Engine, id: u64, want: impl Fn(&JobEventKind) -> bool) {
    let mut stream = engine.jobs().events(id).follow(0);
    while let Some(event) = stream.next().await {
        if want(&event.expect("event").kind) {
            return;
        }
    }
    panic!("job {id} ended without the awaited event");
}

/// Waits for `f`, failing the test (instead of hanging it) if the job never gets there.
async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(secs(30), f)
        .await
        .expect("still waiting after 30 s: the next attempt never started")
}

async fn event_names(engine: &Engine, id: u64) -> Vec<&'static str> {
    engine
        .jobs()
        .events(id)
        .read(0, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.kind.name())
        .collect()
}

#[tokio::test]
async fn a_step_called_after_the_attempt_timed_out_does_not_run_its_body() {
    let (_dir, path) = temp_file();
    let (engine, clock) = open_manual(&path).await;
    let charges = Arc::new(AtomicU32::new(0));
    let go = Arc::new(Notify::new());
    let (step_tx, mut step_rx) = mpsc::unbounded_channel();
    let (c, g) = (charges.clone(), go.clone());
    let h = engine
        .register(
            JobSpec::new("charge").lease(secs(10)).max_attempts(2),
            move |ctx: JobCtx, _: ()| {
                let (c, g, step_tx) = (c.clone(), g.clone(), step_tx.clone());
                async move {
                    if ctx.attempt() == 1 {
                        // Ignores its stop signal, and calls the step only once told to.
                        g.notified().await;
                    }
                    let step = ctx
                        .step("charge", || async {
                            Ok::<_, JobError>(c.fetch_add(1, Ordering::SeqCst) + 1)
                        })
                        .await;
                    step_tx
                        .send((
                            ctx.attempt(),
                            step.as_ref().map_err(|e| e.code_str().to_string()).copied(),
                        ))
                        .ok();
                    step
                }
            },
        )
        .unwrap();
    let id = h.submit(()).await.unwrap().id;
    wait_for(&engine, id, |k| {
        matches!(k, JobEventKind::Started { attempt: 1, .. })
    })
    .await;
    clock.advance(secs(10));
    engine.tick().await.unwrap();
    // The retry starts while attempt 1 is still stuck, and charges once.
    assert_eq!(within(step_rx.recv()).await, Some((2, Ok(1))));
    assert_eq!(
        within(h.join(id, None)).await.unwrap(),
        Outcome::Completed(1)
    );
    // Attempt 1 wakes up and calls the step: refused before the body runs.
    go.notify_one();
    assert_eq!(step_rx.recv().await, Some((1, Err("LOST".to_string()))));
    assert_eq!(
        charges.load(Ordering::SeqCst),
        1,
        "the card is charged once"
    );
    assert_eq!(
        event_names(&engine, id).await,
        [
            "submitted",
            "started",
            "retry_scheduled",
            "started",
            "step_completed",
            "completed"
        ]
    );
}

#[tokio::test]
async fn a_step_result_that_arrives_after_the_timeout_is_refused() {
    let (_dir, path) = temp_file();
    let (engine, clock) = open_manual(&path).await;
    let in_body = Arc::new(Notify::new());
    let finish_body = Arc::new(Notify::new());
    let (step_tx, mut step_rx) = mpsc::unbounded_channel();
    let (ib, fb) = (in_body.clone(), finish_body.clone());
    let h = engine
        .register(
            JobSpec::new("slow-step").lease(secs(10)),
            move |ctx: JobCtx, _: ()| {
                let (ib, fb, step_tx) = (ib.clone(), fb.clone(), step_tx.clone());
                async move {
                    let step = ctx
                        .step("s", || async {
                            ib.notify_one();
                            fb.notified().await;
                            Ok::<_, JobError>(7u32)
                        })
                        .await;
                    step_tx
                        .send(step.as_ref().map_err(|e| e.code_str().to_string()).copied())
                        .ok();
                    step
                }
            },
        )
        .unwrap();
    let id = h.submit(()).await.unwrap().id;
    in_body.notified().await;
    clock.advance(secs(10));
    engine.tick().await.unwrap();
    finish_body.notify_one();
    assert_eq!(step_rx.recv().await, Some(Err("LOST".to_string())));
    let Outcome::TimedOut(f) = h.join(id, None).await.unwrap() else {
        panic!("expected a timeout")
    };
    assert_eq!((f.code.as_str(), f.attempt), ("TIMEOUT", 1));
    assert_eq!(
        event_names(&engine, id).await,
        ["submitted", "started", "timed_out"]
    );
}

#[tokio::test]
async fn a_timed_out_handler_that_ignores_its_signal_gives_its_slot_to_the_retry() {
    let (_dir, path) = temp_file();
    let (engine, clock) = open_manual(&path).await;
    let (started_tx, mut started_rx) = mpsc::unbounded_channel();
    let h = engine
        .register(
            JobSpec::new("stubborn").lease(secs(10)).max_attempts(2),
            move |ctx: JobCtx, n: u32| {
                let started_tx = started_tx.clone();
                async move {
                    started_tx.send((n, ctx.attempt())).ok();
                    if n == 0 && ctx.attempt() == 1 {
                        // Ignores its stop signal for good.
                        std::future::pending::<()>().await;
                    }
                    Ok(n)
                }
            },
        )
        .unwrap();
    let stuck = h.submit(0).await.unwrap().id;
    assert_eq!(started_rx.recv().await, Some((0, 1)));
    let other = h.submit(1).await.unwrap().id;
    clock.advance(secs(10));
    engine.tick().await.unwrap();
    // Concurrency 1: the retry and the other job run only because the slot came back.
    assert_eq!(
        within(h.join(stuck, None)).await.unwrap(),
        Outcome::Completed(0)
    );
    assert_eq!(
        within(h.join(other, None)).await.unwrap(),
        Outcome::Completed(1)
    );
    let mut seen = vec![
        started_rx.recv().await.unwrap(),
        started_rx.recv().await.unwrap(),
    ];
    seen.sort();
    assert_eq!(seen, [(0, 2), (1, 1)]);
    assert_eq!(
        event_names(&engine, stuck).await,
        [
            "submitted",
            "started",
            "retry_scheduled",
            "started",
            "completed"
        ]
    );
}

#[tokio::test]
async fn a_cancelled_handler_that_ignores_its_signal_gives_its_slot_back() {
    let (_dir, path) = temp_file();
    let (engine, _clock) = open_manual(&path).await;
    let (started_tx, mut started_rx) = mpsc::unbounded_channel();
    let h = engine
        .register(
            JobSpec::new("ignores-cancel"),
            move |_ctx: JobCtx, n: u32| {
                let started_tx = started_tx.clone();
                async move {
                    started_tx.send(n).ok();
                    if n == 0 {
                        std::future::pending::<()>().await;
                    }
                    Ok(n)
                }
            },
        )
        .unwrap();
    let stuck = h.submit(0).await.unwrap().id;
    assert_eq!(started_rx.recv().await, Some(0));
    let other = h.submit(1).await.unwrap().id;
    assert_eq!(h.get(other).await.unwrap().unwrap().state, JobState::Queued);
    h.cancel(stuck, "operator").await.unwrap();
    assert_eq!(
        within(h.join(other, None)).await.unwrap(),
        Outcome::Completed(1)
    );
    assert_eq!(started_rx.recv().await, Some(1));
    assert_eq!(
        h.join(stuck, None).await.unwrap(),
        Outcome::Cancelled("operator".to_string())
    );
}

/// Bytes written to the file by 100 heartbeats and 100 progress reports of one running job
/// whose input is `input_len` bytes.
async fn bytes_per_100_writes(input_len: usize) -> (u64, u64) {
    let (_dir, path) = temp_file();
    let (engine, faults) = common::open_faulty(&path).await;
    let (ctx_tx, mut ctx_rx) = mpsc::unbounded_channel();
    let h = engine
        .register(JobSpec::new("big"), move |ctx: JobCtx, input: String| {
            let ctx_tx = ctx_tx.clone();
            async move {
                ctx_tx.send(ctx).ok();
                std::future::pending::<()>().await;
                Ok(input.len())
            }
        })
        .unwrap();
    h.submit("x".repeat(input_len)).await.unwrap();
    let ctx: JobCtx = ctx_rx.recv().await.unwrap();
    let before = faults.bytes_written();
    for _ in 0..100 {
        ctx.heartbeat().await.unwrap();
    }
    let heartbeats = faults.bytes_written() - before;
    let before = faults.bytes_written();
    for i in 0..100 {
        ctx.progress(i, "working").await.unwrap();
    }
    let progress = faults.bytes_written() - before;
    // The input is still whole where the job's readers look for it.
    assert_eq!(
        h.get(ctx.id()).await.unwrap().unwrap().input_json.len(),
        input_len + 2,
        "the stored input is the JSON string"
    );
    (heartbeats, progress)
}

#[tokio::test]
async fn heartbeats_and_progress_cost_the_same_whatever_the_input_size() {
    let (small_hb, small_pr) = bytes_per_100_writes(1).await;
    let (big_hb, big_pr) = bytes_per_100_writes(1_000_000).await;
    eprintln!(
        "100 heartbeats: {small_hb} bytes with a 1-byte input, {big_hb} with 1 MB; 100 progress reports: {small_pr} and {big_pr}"
    );
    // Page-for-page the same work; allow for the B-tree pages landing differently.
    for (small, big, what) in [
        (small_hb, big_hb, "heartbeats"),
        (small_pr, big_pr, "progress"),
    ] {
        assert!(
            big <= small + small / 2,
            "{what}: {big} bytes with a 1 MB input against {small} with 1 byte"
        );
    }
}

#[tokio::test]
async fn outputs_and_step_results_over_the_result_limit_fail_with_a_typed_code() {
    let (_dir, path) = temp_file();
    let (engine, _clock) = open_manual(&path).await;
    let h = engine
        .register(
            JobSpec::new("big-results")
                .result_limit(1_000)
                .max_attempts(3),
            |ctx: JobCtx, what: String| async move {
                if what == "step" {
                    ctx.step("blob", || async { Ok::<_, JobError>("s".repeat(1_000)) })
                        .await?;
                }
                if what == "fits" {
                    // 998 characters and two quotes: exactly the limit.
                    return Ok("f".repeat(998));
                }
                Ok("o".repeat(2_000))
            },
        )
        .unwrap();
    let output = h.submit("output".to_string()).await.unwrap().id;
    let step = h.submit("step".to_string()).await.unwrap().id;
    let fits = h.submit("fits".to_string()).await.unwrap().id;
    for (id, code) in [(output, "OUTPUT_TOO_LARGE"), (step, "STEP_TOO_LARGE")] {
        let Outcome::Failed(f) = h.join(id, None).await.unwrap() else {
            panic!("job {id} should fail")
        };
        // Permanent: no retry would make it smaller.
        assert_eq!((f.code.as_str(), f.attempt), (code, 1), "{}", f.message);
        assert!(f.message.contains("1000 bytes"), "{}", f.message);
    }
    assert_eq!(
        h.join(fits, None).await.unwrap(),
        Outcome::Completed("f".repeat(998))
    );
    // The oversized step result was not stored.
    assert!(!event_names(&engine, step).await.contains(&"step_completed"));
}
