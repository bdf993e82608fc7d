//! Job behaviour with exact values, on a manual clock: no test sleeps on the wall clock.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use common::{T0, open_manual, secs, temp_file};
use jobfile::{
    Backoff, CancelOutcome, Engine, EngineOptions, Error, JobCtx, JobError, JobEvent, JobEventKind,
    JobFailure, JobHandle, JobSpec, JobState, ManualClock, Outcome, StopReason,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc, watch};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Add {
    a: u32,
    b: u32,
}

fn names(events: &[JobEvent]) -> Vec<&'static str> {
    events.iter().map(|e| e.kind.name()).collect()
}

/// Follows the job's events until one matches, returning it.
async fn wait_for(engine: &Engine, id: u64, want: impl Fn(&JobEventKind) -> bool) -> JobEvent {
    let mut stream = engine.jobs().events(id).follow(0);
    while let Some(event) = stream.next().await {
        let event = event.expect("event");
        if want(&event.kind) {
            return event;
        }
    }
    panic!("job {id} ended without the awaited event");
}

fn failure(code: &str, attempt: u32) -> impl Fn(&JobFailure) -> bool + '_ {
    move |f: &JobFailure| f.code == code && f.attempt == attempt
}

#[tokio::test]
async fn happy_path_with_steps_progress_and_events() {
    let (_dir, path) = temp_file();
    let (engine, _clock) = open_manual(&path).await;
    let add = engine
        .register(JobSpec::new("add"), |ctx: JobCtx, input: Add| async move {
            let a = ctx
                .step("load-a", || async { Ok::<_, JobError>(input.a) })
                .await?;
            ctx.progress(50, "adding").await?;
            let sum = ctx
                .step("add", || async move { Ok::<_, JobError>(a + input.b) })
                .await?;
            Ok(sum)
        })
        .unwrap();
    let sub = add
        .submit(Add { a: 2, b: 40 })
        .meta("correlation_id", "req-7")
        .await
        .unwrap();
    assert_eq!(sub.id, 1);
    assert!(!sub.deduplicated);
    assert_eq!(
        add.join(sub.id, None).await.unwrap(),
        Outcome::Completed(42)
    );

    let info = add.get(sub.id).await.unwrap().unwrap();
    assert_eq!(info.state, JobState::Completed);
    assert_eq!(info.attempts, 1);
    assert_eq!(info.output_json.as_deref(), Some(&b"42"[..]));
    assert_eq!(
        info.progress
            .as_ref()
            .map(|p| (p.percent, p.stage.as_str())),
        Some((50, "adding"))
    );
    assert_eq!(
        info.meta,
        vec![("correlation_id".to_string(), "req-7".to_string())]
    );
    assert_eq!(info.finished_at_ms, Some(T0));

    let events = engine.jobs().events(sub.id).read(0, 100).await.unwrap();
    assert_eq!(
        names(&events),
        [
            "submitted",
            "started",
            "step_completed",
            "progress",
            "step_completed",
            "completed"
        ]
    );
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4, 5]
    );
    assert!(events.iter().all(|e| e.at_ms == T0));
    assert_eq!(
        events[1].kind,
        JobEventKind::Started {
            attempt: 1,
            epoch: 1
        }
    );
    assert_eq!(
        events[2].kind,
        JobEventKind::StepCompleted {
            step: "load-a".into()
        }
    );
    assert_eq!(
        events[3].kind,
        JobEventKind::Progress {
            percent: 50,
            stage: "adding".into()
        }
    );
    // Replay from an offset.
    let tail = engine.jobs().events(sub.id).read(4, 100).await.unwrap();
    assert_eq!(names(&tail), ["step_completed", "completed"]);

    let m = engine.jobs().metrics().await.unwrap();
    assert_eq!(
        (m.submitted, m.started, m.completed, m.failed),
        (1, 1, 1, 0)
    );
    assert_eq!((m.running_now, m.queued_now), (0, 0));
}

#[tokio::test]
async fn a_live_stream_sees_every_event_in_order_and_ends_after_the_terminal_one() {
    let (_dir, path) = temp_file();
    let (engine, _clock) = open_manual(&path).await;
    let (go_tx, go_rx) = watch::channel(false);
    let go_rx = Arc::new(go_rx);
    let h = engine
        .register(JobSpec::new("slow"), move |ctx: JobCtx, _: ()| {
            let mut go = (*go_rx).clone();
            async move {
                ctx.progress(10, "waiting").await?;
                go.wait_for(|g| *g).await.ok();
                ctx.progress(90, "finishing").await?;
                Ok(())
            }
        })
        .unwrap();
    let id = h.submit(()).await.unwrap().id;
    let mut stream = engine.jobs().events(id).follow(0);
    let mut seen = Vec::new();
    while let Some(e) = stream.next().await {
        let e = e.unwrap();
        if e.kind
            == (JobEventKind::Progress {
                percent: 10,
                stage: "waiting".into(),
            })
        {
            go_tx.send(true).unwrap();
        }
        seen.push(e.kind.name());
    }
    assert_eq!(
        seen,
        ["submitted", "started", "progress", "progress", "completed"]
    );
}

#[tokio::test]
async fn retryable_error_then_success() {
    let (_dir, path) = temp_file();
    let (engine, _clock) = open_manual(&path).await;
    let h = engine
        .register(
            JobSpec::new("flaky").max_attempts(3),
            |ctx: JobCtx, _: ()| async move {
                if ctx.attempt() == 1 {
                    return Err(JobError::retryable("network down").code("NET"));
                }
                Ok(ctx.attempt())
            },
        )
        .unwrap();
    let id = h.submit(()).await.unwrap().id;
    assert_eq!(h.join(id, None).await.unwrap(), Outcome::Completed(2));
    let events = engine.jobs().events(id).read(0, 100).await.unwrap();
    assert_eq!(
        names(&events),
        [
            "submitted",
            "started",
            "retry_scheduled",
            "started",
            "completed"
        ]
    );
    let JobEventKind::RetryScheduled { next_at_ms, error } = &events[2].kind else {
        panic!("{:?}", events[2]);
    };
    assert_eq!(*next_at_ms, T0, "no backoff: ready at once");
    assert_eq!(
        (error.code.as_str(), error.message.as_str(), error.attempt),
        ("NET", "network down", 1)
    );
    let info = h.get(id).await.unwrap().unwrap();
    assert_eq!(info.attempts, 2);
    assert_eq!(info.last_error.unwrap().code, "NET");
    assert_eq!(engine.jobs().metrics().await.unwrap().retried, 1);
}

#[tokio::test]
async fn a_permanent_error_is_not_retried() {
    let (_dir, path) = temp_file();
    let (engine, _clock) = open_manual(&path).await;
    let runs = Arc::new(AtomicU32::new(0));
    let r = runs.clone();
    let h = engine
        .register(
            JobSpec::new("charge").max_attempts(5),
            move |_: JobCtx, _: ()| {
                r.fetch_add(1, Ordering::SeqCst);
                async { Err::<(), _>(JobError::permanent("card declined").code("DECLINED")) }
            },
        )
        .unwrap();
    let id = h.submit(()).await.unwrap().id;
    let Outcome::Failed(error) = h.join(id, None).await.unwrap() else {
        panic!("not failed");
    };
    assert_eq!(
        (error.code.as_str(), error.message.as_str(), error.attempt),
        ("DECLINED", "card declined", 1)
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let events = engine.jobs().events(id).read(0, 100).await.unwrap();
    assert_eq!(names(&events), ["submitted", "started", "failed"]);
}

#[tokio::test]
async fn attempts_exhausted_fails_with_the_last_error() {
    let (_dir, path) = temp_file();
    let (engine, _clock) = open_manual(&path).await;
    let h = engine
        .register(
            JobSpec::new("doomed").max_attempts(3),
            |ctx: JobCtx, _: ()| async move {
                Err::<(), _>(JobError::retryable(format!("try {}", ctx.attempt())))
            },
        )
        .unwrap();
    let id = h.submit(()).await.unwrap().id;
    let Outcome::Failed(f) = h.join(id, None).await.unwrap() else {
        panic!("expected failure")
    };
    assert_eq!(
        (f.code.as_str(), f.message.as_str(), f.attempt),
        ("ERROR", "try 3", 3)
    );
    let events = engine.jobs().events(id).read(0, 100).await.unwrap();
    assert_eq!(
        names(&events),
        [
            "submitted",
            "started",
            "retry_scheduled",
            "started",
            "retry_scheduled",
            "started",
            "failed"
        ]
    );
    assert_eq!(h.get(id).await.unwrap().unwrap().attempts, 3);
}

/// Runs a job that always fails through `attempts` attempts, advancing the manual clock exactly
/// to each retry. Returns the delays between failure and retry, in ms.
async fn observed_delays(backoff: Backoff, attempts: u32) -> Vec<u64> {
    let (_dir, path) = temp_file();
    let (engine, clock) = open_manual(&path).await;
    let h = engine
        .register(
            JobSpec::new("backoff")
                .max_attempts(attempts)
                .backoff(backoff),
            |_: JobCtx, _: ()| async { Err::<(), _>(JobError::retryable("again")) },
        )
        .unwrap();
    let id = h.submit(()).await.unwrap().id;
    let mut delays = Vec::new();
    let mut stream = engine.jobs().events(id).follow(0);
    while let Some(e) = stream.next().await {
        if let JobEventKind::RetryScheduled { next_at_ms, .. } = e.unwrap().kind {
            let now = clock.now();
            delays.push(next_at_ms - now);
            // One ms early: still waiting.
            clock.set(next_at_ms - 1);
            engine.tick().await.unwrap();
            assert_eq!(h.get(id).await.unwrap().unwrap().state, JobState::Queued);
            assert_eq!(
                h.get(id).await.unwrap().unwrap().run_at_ms,
                Some(next_at_ms)
            );
            clock.set(next_at_ms);
            engine.tick().await.unwrap();
        }
    }
    assert!(matches!(
        h.join(id, None).await.unwrap(),
        Outcome::Failed(_)
    ));
    delays
}

trait Now {
    fn now(&self) -> u64;
}
impl Now for ManualClock {
    fn now(&self) -> u64 {
        use jobfile::Clock;
        self.now_ms()
    }
}

#[tokio::test]
async fn fixed_and_exponential_backoff_wait_exactly() {
    let ms = Duration::from_millis;
    assert_eq!(
        observed_delays(Backoff::fixed(ms(10_000)), 4).await,
        [10_000, 10_000, 10_000]
    );
    assert_eq!(
        observed_delays(Backoff::exponential(ms(1_000), ms(5_000)), 6).await,
        [1_000, 2_000, 4_000, 5_000, 5_000]
    );
    let jittered = observed_delays(Backoff::exponential(ms(1_000), ms(4_000)).jitter(0.5), 5).await;
    let bounds = [(500, 1_500), (1_000, 3_000), (2_000, 6_000), (2_000, 6_000)];
    assert_eq!(jittered.len(), 4);
    for (d, (lo, hi)) in jittered.iter().zip(bounds) {
        assert!((lo..=hi).contains(d), "{jittered:?}");
    }
}

#[tokio::test]
async fn a_missed_lease_times_the_attempt_out_and_signals_the_handler() {
    let (_dir, path) = temp_file();
    let (engine, clock) = open_manual(&path).await;
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel();
    let h = engine
        .register(
            JobSpec::new("stuck").lease(secs(10)).max_attempts(2),
            move |ctx: JobCtx, _: ()| {
                let seen = seen_tx.clone();
                async move {
                    let why = ctx.cancelled().await;
                    seen.send((ctx.attempt(), why)).ok();
                    // Returning Ok after the timeout changes nothing.
                    Ok(())
                }
            },
        )
        .unwrap();
    let id = h.submit(()).await.unwrap().id;
    wait_for(&engine, id, |k| {
        matches!(k, JobEventKind::Started { attempt: 1, .. })
    })
    .await;
    assert_eq!(
        h.get(id).await.unwrap().unwrap().lease_deadline_ms,
        Some(T0 + 10_000)
    );
    clock.advance(Duration::from_millis(9_999));
    engine.tick().await.unwrap();
    assert_eq!(h.get(id).await.unwrap().unwrap().state, JobState::Running);
    clock.advance(Duration::from_millis(1));
    engine.tick().await.unwrap();
    assert_eq!(seen_rx.recv().await, Some((1, StopReason::TimedOut)));
    wait_for(&engine, id, |k| {
        matches!(k, JobEventKind::Started { attempt: 2, .. })
    })
    .await;
    clock.advance(secs(10));
    engine.tick().await.unwrap();
    assert_eq!(seen_rx.recv().await, Some((2, StopReason::TimedOut)));
    let Outcome::TimedOut(f) = h.join(id, None).await.unwrap() else {
        panic!("expected a timeout")
    };
    assert_eq!((f.code.as_str(), f.attempt), ("TIMEOUT", 2));
    let events = engine.jobs().events(id).read(0, 100).await.unwrap();
    assert_eq!(
        names(&events),
        [
            "submitted",
            "started",
            "retry_scheduled",
            "started",
            "timed_out"
        ]
    );
    let JobEventKind::RetryScheduled { error, .. } = &events[2].kind else {
        panic!()
    };
    assert!(failure("TIMEOUT", 1)(error));
    assert_eq!(engine.jobs().metrics().await.unwrap().timed_out, 1);
}

#[tokio::test]
async fn heartbeats_keep_a_long_job_alive_and_extend_its_timeout() {
    let (_dir, path) = temp_file();
    let (engine, clock) = open_manual(&path).await;
    let (beat_tx, beat_rx) = mpsc::unbounded_channel::<bool>();
    let beat_rx = Arc::new(tokio::sync::Mutex::new(beat_rx));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<()>();
    let h = engine
        .register(
            JobSpec::new("long").lease(secs(10)).timeout(secs(15)),
            move |ctx: JobCtx, _: ()| {
                let beats = beat_rx.clone();
                let done = done_tx.clone();
                async move {
                    // Each `true` asks for a heartbeat; `false` finishes.
                    while let Some(true) = beats.lock().await.recv().await {
                        ctx.heartbeat().await?;
                        done.send(()).ok();
                    }
                    Ok(7u8)
                }
            },
        )
        .unwrap();
    let id = h.submit(()).await.unwrap().id;
    wait_for(&engine, id, |k| matches!(k, JobEventKind::Started { .. })).await;
    for round in 1..=4u64 {
        clock.advance(secs(8));
        engine.tick().await.unwrap();
        beat_tx.send(true).unwrap();
        done_rx.recv().await.unwrap();
        let info = h.get(id).await.unwrap().unwrap();
        assert_eq!(info.state, JobState::Running, "round {round}");
        assert_eq!(info.lease_deadline_ms, Some(T0 + round * 8_000 + 10_000));
    }
    // 32 s in: well past both the first lease (10 s) and the first timeout (15 s).
    clock.advance(secs(9));
    engine.tick().await.unwrap();
    assert_eq!(h.get(id).await.unwrap().unwrap().state, JobState::Running);
    beat_tx.send(false).unwrap();
    assert_eq!(h.join(id, None).await.unwrap(), Outcome::Completed(7));
    let beats = engine
        .jobs()
        .events(id)
        .read(0, 100)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.kind == JobEventKind::Heartbeat)
        .count();
    assert_eq!(beats, 4);
}

#[tokio::test]
async fn the_attempt_timeout_fires_without_heartbeats_even_within_the_lease() {
    let (_dir, path) = temp_file();
    let (engine, clock) = open_manual(&path).await;
    let h = engine
        .register(
            JobSpec::new("capped").lease(secs(60)).timeout(secs(5)),
            |ctx: JobCtx, _: ()| async move {
                ctx.cancelled().await;
                Ok(())
            },
        )
        .unwrap();
    let id = h.submit(()).await.unwrap().id;
    wait_for(&engine, id, |k| matches!(k, JobEventKind::Started { .. })).await;
    clock.advance(secs(5));
    engine.tick().await.unwrap();
    let Outcome::TimedOut(f) = h.join(id, None).await.unwrap() else {
        panic!()
    };
    assert_eq!(f.code, "TIMEOUT");
    assert!(f.message.contains("timeout of 5000 ms"), "{}", f.message);
}

#[tokio::test]
async fn cancel_queued_running_and_finished_jobs() {
    let (_dir, path) = temp_file();
    let (engine, _clock) = open_manual(&path).await;
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel();
    let started = Arc::new(Notify::new());
    let s = started.clone();
    let h: JobHandle<u32, u32> = engine
        .register(JobSpec::new("work"), move |ctx: JobCtx, n: u32| {
            let seen = seen_tx.clone();
            let started = s.clone();
            async move {
                if n == 0 {
                    return Ok(0);
                }
                started.notify_one();
                let why = ctx.cancelled().await;
                seen.send(why).ok();
                Ok(n) // dropped: cancel wins
            }
        })
        .unwrap();
    // Queued (delayed): cancelled at once, never runs.
    let queued = h.submit(5).delay(secs(3600)).await.unwrap().id;
    assert_eq!(
        h.cancel(queued, "not needed").await.unwrap(),
        CancelOutcome::Cancelled
    );
    assert_eq!(
        h.join(queued, None).await.unwrap(),
        Outcome::Cancelled("not needed".into())
    );
    // Running: cancelled at once, handler signalled, its late Ok dropped.
    let running = h.submit(9).await.unwrap().id;
    started.notified().await;
    assert_eq!(
        h.cancel(running, "user abort").await.unwrap(),
        CancelOutcome::Cancelled
    );
    assert_eq!(
        h.get(running).await.unwrap().unwrap().state,
        JobState::Cancelled
    );
    assert_eq!(
        seen_rx.recv().await,
        Some(StopReason::Cancelled("user abort".into()))
    );
    assert_eq!(
        h.join(running, None).await.unwrap(),
        Outcome::Cancelled("user abort".into())
    );
    // Finished: a no-op that says so.
    let done = h.submit(0).await.unwrap().id;
    assert_eq!(h.join(done, None).await.unwrap(), Outcome::Completed(0));
    assert_eq!(
        h.cancel(done, "too late").await.unwrap(),
        CancelOutcome::AlreadyFinished(JobState::Completed)
    );
    assert_eq!(
        h.get(done).await.unwrap().unwrap().state,
        JobState::Completed
    );
    let events = engine.jobs().events(running).read(0, 100).await.unwrap();
    assert_eq!(names(&events), ["submitted", "started", "cancelled"]);
    assert!(matches!(
        h.cancel(999, "x").await,
        Err(Error::UnknownJob { id: 999 })
    ));
    assert_eq!(engine.jobs().metrics().await.unwrap().cancelled, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_racing_a_completion_always_wins() {
    let (_dir, path) = temp_file();
    let (engine, _clock) = open_manual(&path).await;
    let (go_tx, go_rx) = watch::channel(0u64);
    let go_rx = Arc::new(go_rx);
    let returned = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(Notify::new());
    let (r, s) = (returned.clone(), started.clone());
    let h = engine
        .register(JobSpec::new("racer"), move |ctx: JobCtx, _: ()| {
            let mut go = (*go_rx).clone();
            let (returned, started) = (r.clone(), s.clone());
            async move {
                started.notify_one();
                // Ignores the cancel signal on purpose and completes as soon as released.
                go.wait_for(|g| *g == ctx.id()).await.ok();
                returned.fetch_add(1, Ordering::SeqCst);
                Ok(ctx.id())
            }
        })
        .unwrap();
    for round in 0..100 {
        let id = h.submit(()).await.unwrap().id;
        started.notified().await;
        // The cancel and the release of the handler race.
        let cancel = h.cancel(id, "race");
        let release = async {
            go_tx.send(id).unwrap();
        };
        let (cancelled, ()) = tokio::join!(cancel, release);
        assert_eq!(
            cancelled.unwrap(),
            CancelOutcome::Cancelled,
            "round {round}"
        );
        assert_eq!(
            h.join(id, None).await.unwrap(),
            Outcome::Cancelled("race".into())
        );
    }
    // Every handler did return Ok; each completion lost.
    let jobs = engine.jobs();
    while jobs.metrics().await.unwrap().running_now > 0 || returned.load(Ordering::SeqCst) < 100 {
        tokio::task::yield_now().await;
    }
    assert_eq!(jobs.metrics().await.unwrap().completed, 0);
    assert_eq!(
        jobs.list(JobState::Cancelled, 0, 1_000)
            .await
            .unwrap()
            .len(),
        100
    );
}

#[tokio::test]
async fn join_timeout_returns_a_timed_out_result_and_unknown_ids_are_errors() {
    let (_dir, path) = temp_file();
    let (engine, clock) = open_manual(&path).await;
    // No handler registered: the job waits.
    let h = engine.job::<(), ()>(JobSpec::new("nobody")).unwrap();
    let id = h.submit(()).await.unwrap().id;
    let join = h.join(id, Some(secs(5)));
    let advance = async {
        tokio::task::yield_now().await;
        clock.advance(secs(5));
    };
    let (joined, ()) = tokio::join!(join, advance);
    assert_eq!(joined.unwrap(), Outcome::JoinTimedOut(JobState::Queued));
    assert_eq!(
        h.get(id).await.unwrap().unwrap().state,
        JobState::Queued,
        "the job goes on"
    );
    assert!(matches!(
        h.join(77, None).await,
        Err(Error::UnknownJob { id: 77 })
    ));
    assert!(matches!(
        engine.jobs().events(77).read(0, 10).await,
        Err(Error::UnknownJob { id: 77 })
    ));
    let mut s = engine.jobs().events(77).follow(0);
    assert!(matches!(
        s.next().await,
        Some(Err(Error::UnknownJob { id: 77 }))
    ));
}

#[tokio::test]
async fn a_job_submitted_without_a_handler_runs_once_one_is_registered() {
    let (_dir, path) = temp_file();
    let (engine, _clock) = open_manual(&path).await;
    let submitter = engine.job::<Add, u32>(JobSpec::new("add")).unwrap();
    let id = submitter.submit(Add { a: 1, b: 2 }).await.unwrap().id;
    assert_eq!(
        submitter.get(id).await.unwrap().unwrap().state,
        JobState::Queued
    );
    let _runner = engine
        .register(JobSpec::new("add"), |_: JobCtx, i: Add| async move {
            Ok(i.a + i.b)
        })
        .unwrap();
    assert_eq!(
        submitter.join(id, None).await.unwrap(),
        Outcome::Completed(3)
    );
    let again = engine.register(
        JobSpec::new("add"),
        |_: JobCtx, i: Add| async move { Ok(i.a) },
    );
    assert!(matches!(
        again,
        Err(Error::InvalidArgument {
            what: "job name",
            ..
        })
    ));
}

#[tokio::test]
async fn the_same_key_gives_the_same_id_until_the_job_is_pruned() {
    let (_dir, path) = temp_file();
    let (engine, clock) = open_manual(&path).await;
    let runs = Arc::new(AtomicU32::new(0));
    let r = runs.clone();
    let h = engine
        .register(
            JobSpec::new("mail").retention(secs(60)),
            move |_: JobCtx, to: String| {
                r.fetch_add(1, Ordering::SeqCst);
                async move { Ok(format!("sent to {to}")) }
            },
        )
        .unwrap();
    let first = h.submit("ann".into()).key("welcome-ann").await.unwrap();
    let again = h.submit("ann".into()).key("welcome-ann").await.unwrap();
    assert_eq!((again.id, again.deduplicated), (first.id, true));
    assert_eq!(
        h.join(first.id, None).await.unwrap(),
        Outcome::Completed("sent to ann".into())
    );
    let after = h.submit("ann".into()).key("welcome-ann").await.unwrap();
    assert_eq!((after.id, after.deduplicated), (first.id, true));
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "finished work is not redone"
    );
    // Past retention the job, its events and its key are gone.
    clock.advance(Duration::from_millis(59_999));
    engine.tick().await.unwrap();
    assert_eq!(
        h.get(first.id).await.unwrap().unwrap().state,
        JobState::Completed
    );
    clock.advance(Duration::from_millis(1));
    engine.tick().await.unwrap();
    assert_eq!(h.get(first.id).await.unwrap(), None);
    assert!(matches!(
        engine.jobs().events(first.id).read(0, 10).await,
        Err(Error::UnknownJob { .. })
    ));
    let fresh = h.submit("ann".into()).key("welcome-ann").await.unwrap();
    assert!(!fresh.deduplicated);
    assert_ne!(fresh.id, first.id);
    h.join(fresh.id, None).await.unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn higher_priority_first_fifo_within_a_priority() {
    let (_dir, path) = temp_file();
    let (engine, _clock) = open_manual(&path).await;
    let submit = engine.job::<String, ()>(JobSpec::new("p")).unwrap();
    for (name, prio) in [("a", 0), ("b", 0), ("c", 5), ("d", -1), ("e", 5), ("f", 0)] {
        submit.submit(name.into()).priority(prio).await.unwrap();
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    engine
        .register(JobSpec::new("p"), move |_: JobCtx, name: String| {
            tx.send(name).ok();
            async { Ok(()) }
        })
        .map(|_: JobHandle<String, ()>| ())
        .unwrap();
    let mut order = Vec::new();
    for _ in 0..6 {
        order.push(rx.recv().await.unwrap());
    }
    assert_eq!(order, ["c", "e", "a", "b", "f", "d"]);
}

#[tokio::test]
async fn delayed_jobs_start_exactly_on_time_and_at_wins_over_delay() {
    let (_dir, path) = temp_file();
    let (engine, clock) = open_manual(&path).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let h = engine
        .register(
            JobSpec::new("later").concurrency(4),
            move |_: JobCtx, n: u32| {
                tx.send(n).ok();
                async { Ok(()) }
            },
        )
        .unwrap();
    let at = std::time::UNIX_EPOCH + Duration::from_millis(T0 + 2_000);
    let a = h.submit(1).delay(secs(5)).await.unwrap().id;
    let b = h.submit(2).delay(secs(60)).at(at).await.unwrap().id;
    assert_eq!(h.get(a).await.unwrap().unwrap().run_at_ms, Some(T0 + 5_000));
    assert_eq!(h.get(b).await.unwrap().unwrap().run_at_ms, Some(T0 + 2_000));
    clock.advance(Duration::from_millis(1_999));
    engine.tick().await.unwrap();
    assert_eq!(h.get(b).await.unwrap().unwrap().state, JobState::Queued);
    clock.advance(Duration::from_millis(1));
    engine.tick().await.unwrap();
    assert_eq!(rx.recv().await, Some(2));
    clock.advance(Duration::from_millis(2_999));
    engine.tick().await.unwrap();
    assert_eq!(h.get(a).await.unwrap().unwrap().state, JobState::Queued);
    clock.advance(Duration::from_millis(1));
    engine.tick().await.unwrap();
    assert_eq!(rx.recv().await, Some(1));
    h.join(a, None).await.unwrap();
}

/// Counts handlers running at once; each waits for the test to release it.
struct Gauge {
    now: watch::Sender<usize>,
    max: AtomicUsize,
    release: tokio::sync::Semaphore,
}

impl Gauge {
    fn new() -> Arc<Self> {
        Arc::new(Gauge {
            now: watch::channel(0).0,
            max: AtomicUsize::new(0),
            release: tokio::sync::Semaphore::new(0),
        })
    }

    async fn hold(&self) {
        self.now.send_modify(|n| *n += 1);
        let n = *self.now.borrow();
        self.max.fetch_max(n, Ordering::SeqCst);
        self.release.acquire().await.unwrap().forget();
        self.now.send_modify(|n| *n -= 1);
    }

    /// Waits until exactly `n` handlers are running, then releases them all.
    async fn release_when(&self, n: usize) {
        self.now
            .subscribe()
            .wait_for(|now| *now == n)
            .await
            .unwrap();
        self.release.add_permits(n);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limits_are_never_exceeded() {
    let (_dir, path) = temp_file();
    let (engine, _clock) = open_manual(&path).await;
    let gauge = Gauge::new();
    let g = gauge.clone();
    let h = engine
        .register(
            JobSpec::new("limited").concurrency(3),
            move |_: JobCtx, _: u32| {
                let g = g.clone();
                async move {
                    g.hold().await;
                    Ok(())
                }
            },
        )
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..9 {
        ids.push(h.submit(i).await.unwrap().id);
    }
    for _ in 0..3 {
        gauge.release_when(3).await;
    }
    for id in ids {
        h.join(id, None).await.unwrap();
    }
    assert_eq!(gauge.max.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_global_cap_limits_handlers_across_definitions() {
    let (_dir, path) = temp_file();
    let clock = ManualClock::new(T0);
    let engine = EngineOptions::new()
        .clock(clock)
        .max_running_jobs(2)
        .open(&path)
        .await
        .unwrap();
    let gauge = Gauge::new();
    let mut handles = Vec::new();
    for name in ["x", "y"] {
        let g = gauge.clone();
        handles.push(
            engine
                .register(
                    JobSpec::new(name).concurrency(2),
                    move |_: JobCtx, _: ()| {
                        let g = g.clone();
                        async move {
                            g.hold().await;
                            Ok(())
                        }
                    },
                )
                .unwrap(),
        );
    }
    let mut ids = Vec::new();
    for h in &handles {
        for _ in 0..3 {
            ids.push((h.clone(), h.submit(()).await.unwrap().id));
        }
    }
    for _ in 0..3 {
        gauge.release_when(2).await;
    }
    for (h, id) in ids {
        h.join(id, None).await.unwrap();
    }
    assert_eq!(gauge.max.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_panic_is_recorded_as_panic_and_retried() {
    let (_dir, path) = temp_file();
    let (engine, _clock) = open_manual(&path).await;
    let h = engine
        .register(
            JobSpec::new("boom").max_attempts(2),
            |ctx: JobCtx, _: ()| async move {
                if ctx.attempt() == 1 {
                    panic!("index out of range");
                }
                Ok("fine".to_string())
            },
        )
        .unwrap();
    let id = h.submit(()).await.unwrap().id;
    assert_eq!(
        h.join(id, None).await.unwrap(),
        Outcome::Completed("fine".to_string())
    );
    let events = engine.jobs().events(id).read(0, 100).await.unwrap();
    let JobEventKind::RetryScheduled { error, .. } = &events[2].kind else {
        panic!("{events:?}")
    };
    assert_eq!(error.code, "PANIC");
    assert!(
        error.message.contains("index out of range"),
        "{}",
        error.message
    );
    // The worker lives on.
    assert_eq!(
        h.join(h.submit(()).await.unwrap().id, None).await.unwrap(),
        Outcome::Completed("fine".to_string())
    );
}

#[tokio::test]
async fn an_input_that_no_longer_decodes_fails_permanently_and_the_worker_goes_on() {
    let (_dir, path) = temp_file();
    let (engine, _clock) = open_manual(&path).await;
    #[derive(Serialize, Deserialize)]
    struct OldInput {
        path: String,
    }
    let old = engine.job::<OldInput, u32>(JobSpec::new("add")).unwrap();
    let bad = old
        .submit(OldInput {
            path: "x.png".into(),
        })
        .await
        .unwrap()
        .id;
    let h = engine
        .register(
            JobSpec::new("add").max_attempts(5),
            |_: JobCtx, i: Add| async move { Ok(i.a + i.b) },
        )
        .unwrap();
    let Outcome::Failed(f) = h.join(bad, None).await.unwrap() else {
        panic!()
    };
    assert_eq!((f.code.as_str(), f.attempt), ("INPUT_DECODE", 1));
    assert!(f.message.contains("Add"), "{}", f.message);
    let good = h.submit(Add { a: 1, b: 1 }).await.unwrap().id;
    assert_eq!(h.join(good, None).await.unwrap(), Outcome::Completed(2));
}

#[tokio::test]
async fn committed_steps_are_not_run_again_on_retry() {
    let (_dir, path) = temp_file();
    let (engine, _clock) = open_manual(&path).await;
    let charges = Arc::new(AtomicU32::new(0));
    let mails = Arc::new(AtomicU32::new(0));
    let (c, m) = (charges.clone(), mails.clone());
    let h = engine
        .register(
            JobSpec::new("order").max_attempts(3),
            move |ctx: JobCtx, _: ()| {
                let (c, m) = (c.clone(), m.clone());
                async move {
                    let receipt = ctx
                        .step("charge", || async {
                            let n = c.fetch_add(1, Ordering::SeqCst) + 1;
                            Ok::<_, JobError>(format!("receipt-{n}"))
                        })
                        .await?;
                    ctx.step("mail", || async {
                        let n = m.fetch_add(1, Ordering::SeqCst) + 1;
                        if n == 1 {
                            return Err(JobError::retryable("smtp down"));
                        }
                        Ok(n)
                    })
                    .await?;
                    Ok(receipt)
                }
            },
        )
        .unwrap();
    let id = h.submit(()).await.unwrap().id;
    assert_eq!(
        h.join(id, None).await.unwrap(),
        Outcome::Completed("receipt-1".to_string())
    );
    assert_eq!(
        charges.load(Ordering::SeqCst),
        1,
        "the card is charged once"
    );
    assert_eq!(mails.load(Ordering::SeqCst), 2, "a failed step runs again");
    let steps: Vec<_> = engine
        .jobs()
        .events(id)
        .read(0, 100)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.kind {
            JobEventKind::StepCompleted { step } => Some(step),
            _ => None,
        })
        .collect();
    assert_eq!(steps, ["charge", "mail"]);
}

#[tokio::test]
async fn a_step_id_used_twice_in_one_run_is_an_error() {
    let (_dir, path) = temp_file();
    let (engine, _clock) = open_manual(&path).await;
    let h = engine
        .register(
            JobSpec::new("dup").max_attempts(3),
            |ctx: JobCtx, _: ()| async move {
                ctx.step("s", || async { Ok::<_, JobError>(1) }).await?;
                ctx.step("s", || async { Ok::<_, JobError>(2) }).await?;
                Ok(())
            },
        )
        .unwrap();
    let id = h.submit(()).await.unwrap().id;
    let Outcome::Failed(f) = h.join(id, None).await.unwrap() else {
        panic!()
    };
    assert_eq!((f.code.as_str(), f.attempt), ("DUPLICATE_STEP", 1));
}

#[tokio::test]
async fn failed_jobs_can_be_listed_retried_with_a_fresh_budget_and_deleted() {
    let (_dir, path) = temp_file();
    let (engine, _clock) = open_manual(&path).await;
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let f = fail.clone();
    let h = engine
        .register(
            JobSpec::new("dl").max_attempts(2),
            move |_: JobCtx, n: u32| {
                let f = f.clone();
                async move {
                    if f.load(Ordering::SeqCst) {
                        Err(JobError::retryable("down"))
                    } else {
                        Ok(n)
                    }
                }
            },
        )
        .unwrap();
    let a = h.submit(1).await.unwrap().id;
    let b = h.submit(2).await.unwrap().id;
    h.join(a, None).await.unwrap();
    h.join(b, None).await.unwrap();
    let jobs = engine.jobs();
    let failed: Vec<(u64, u32)> = jobs
        .list(JobState::Failed, 0, 10)
        .await
        .unwrap()
        .iter()
        .map(|j| (j.id, j.attempts))
        .collect();
    assert_eq!(failed, [(a, 2), (b, 2)]);
    assert_eq!(
        jobs.list(JobState::Failed, a, 10).await.unwrap().len(),
        1,
        "paging after an id"
    );
    fail.store(false, Ordering::SeqCst);
    jobs.retry(a).await.unwrap();
    assert_eq!(h.join(a, None).await.unwrap(), Outcome::Completed(1));
    assert_eq!(
        h.get(a).await.unwrap().unwrap().attempts,
        1,
        "a fresh attempt budget"
    );
    assert!(matches!(
        jobs.retry(a).await,
        Err(Error::InvalidArgument { .. })
    ));
    jobs.delete(b).await.unwrap();
    assert_eq!(jobs.get(b).await.unwrap(), None);
    assert!(jobs.list(JobState::Failed, 0, 10).await.unwrap().is_empty());
    let queued = engine
        .job::<u32, u32>(JobSpec::new("idle"))
        .unwrap()
        .submit(3)
        .await
        .unwrap()
        .id;
    assert!(matches!(
        jobs.delete(queued).await,
        Err(Error::InvalidArgument { .. })
    ));
    assert_eq!(
        jobs.list(JobState::Queued, 0, 10).await.unwrap()[0].id,
        queued
    );
}

#[tokio::test]
async fn bad_submissions_and_definitions_are_typed_errors_that_write_nothing() {
    let (_dir, path) = temp_file();
    let (engine, _clock) = open_manual(&path).await;
    let h = engine
        .job::<String, ()>(JobSpec::new("big").payload_limit(100))
        .unwrap();
    let before = engine.store_stats().commits;
    let too_big = h.submit("x".repeat(99)).await; // 101 bytes as JSON
    assert!(matches!(
        too_big,
        Err(Error::PayloadTooLarge {
            size: 101,
            limit: 100
        })
    ));
    assert!(h.submit("x".repeat(98)).await.is_ok());
    assert_eq!(engine.store_stats().commits, before + 1);
    assert!(matches!(
        h.submit("a".into()).key("").await,
        Err(Error::InvalidArgument { what: "key", .. })
    ));
    assert!(matches!(
        h.submit("a".into()).max_attempts(0).await,
        Err(Error::InvalidArgument {
            what: "max_attempts",
            ..
        })
    ));
    assert!(matches!(
        h.submit("a".into()).lease(Duration::ZERO).await,
        Err(Error::InvalidArgument { what: "lease", .. })
    ));
    let jitter = Backoff::exponential(secs(1), secs(2)).jitter(2.0);
    assert!(matches!(
        h.submit("a".into()).backoff(jitter).await,
        Err(Error::InvalidArgument {
            what: "backoff",
            ..
        })
    ));
    assert!(matches!(
        engine.job::<(), ()>(JobSpec::new("")),
        Err(Error::InvalidArgument {
            what: "job name",
            ..
        })
    ));
    assert!(matches!(
        engine.job::<(), ()>(JobSpec::new("c").concurrency(0)),
        Err(Error::InvalidArgument {
            what: "concurrency",
            ..
        })
    ));
    assert_eq!(engine.store_stats().commits, before + 1);
    assert_eq!(engine.jobs().metrics().await.unwrap().queued_now, 1);
}

#[tokio::test]
async fn shutdown_hands_unfinished_jobs_back_without_charging_an_attempt() {
    let (_dir, path) = temp_file();
    let (engine, _clock) = open_manual(&path).await;
    let started = Arc::new(Notify::new());
    let s = started.clone();
    let h = engine
        .register(
            JobSpec::new("stubborn").concurrency(2),
            move |ctx: JobCtx, polite: bool| {
                let s = s.clone();
                async move {
                    s.notify_one();
                    if polite {
                        // Stops when asked, with an error: not charged at shutdown.
                        ctx.cancelled().await;
                        return Err(JobError::retryable("stopped"));
                    }
                    std::future::pending::<()>().await;
                    Ok(())
                }
            },
        )
        .unwrap();
    let polite = h.submit(true).await.unwrap().id;
    started.notified().await;
    let stubborn = h.submit(false).await.unwrap().id;
    started.notified().await;
    engine.shutdown(Duration::from_millis(200)).await.unwrap();
    drop(h);
    drop(engine);

    let (engine, _clock) = open_manual(&path).await;
    assert_eq!(engine.epoch(), 2);
    for id in [polite, stubborn] {
        let info = engine.jobs().get(id).await.unwrap().unwrap();
        assert_eq!(
            (info.state, info.attempts, info.crashes),
            (JobState::Queued, 0, 0),
            "job {id}"
        );
        let events = engine.jobs().events(id).read(0, 10).await.unwrap();
        assert_eq!(names(&events), ["submitted", "started", "recovered"]);
    }
    let h = engine
        .register(
            JobSpec::new("stubborn").concurrency(2),
            |ctx: JobCtx, _: bool| async move { Ok(ctx.attempt()) },
        )
        .unwrap();
    assert_eq!(h.join(polite, None).await.unwrap(), Outcome::Completed(1));
    assert_eq!(h.join(stubborn, None).await.unwrap(), Outcome::Completed(1));
}

#[tokio::test]
async fn the_metrics_callback_sees_each_event_and_a_panicking_one_is_ignored() {
    let (_dir, path) = temp_file();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    let engine = EngineOptions::new()
        .clock(ManualClock::new(T0))
        .on_job_metric(move |m| {
            s.lock().unwrap().push(format!("{m:?}"));
            panic!("a broken metrics sink");
        })
        .open(&path)
        .await
        .unwrap();
    let h = engine
        .register(JobSpec::new("m"), |_: JobCtx, _: ()| async { Ok(()) })
        .unwrap();
    let id = h.submit(()).await.unwrap().id;
    h.join(id, None).await.unwrap();
    // The callback runs just after the commit that join may already have seen.
    while seen.lock().unwrap().len() < 3 {
        tokio::task::yield_now().await;
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen[0].starts_with("Submitted"));
    assert!(seen[1].starts_with("Started"));
    assert!(seen[2].starts_with("Completed"));
}

#[tokio::test]
async fn a_submit_to_an_idle_worker_starts_the_job_in_the_same_commit() {
    let (_dir, path) = temp_file();
    let (engine, _clock) = open_manual(&path).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let release = Arc::new(Notify::new());
    let r = release.clone();
    let h = engine
        .register(JobSpec::new("idle"), move |ctx: JobCtx, _: ()| {
            tx.send(ctx.id()).ok();
            let r = r.clone();
            async move {
                // Holds its result back until the test has counted the commits.
                r.notified().await;
                Ok(())
            }
        })
        .unwrap();
    // An idle worker holds no slot and makes no commits.
    for _ in 0..3 {
        let before = engine.store_stats().commits;
        let id = h.submit(()).await.unwrap().id;
        assert_eq!(rx.recv().await, Some(id));
        assert_eq!(
            engine.store_stats().commits,
            before + 1,
            "the handler runs after the submit's commit alone, with no claim commit"
        );
        release.notify_one();
        // The slot is handed back when the handler returns, before its result commits.
        h.join(id, None).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_more_than_one_batch_of_jobs() {
    let (_dir, path) = temp_file();
    let (engine, clock) = open_manual(&path).await;
    let h = engine
        .job::<u32, ()>(JobSpec::new("shortlived").retention(secs(60)))
        .unwrap();
    let ids: Vec<u64> = futures_join_all((0..520).map(|i| {
        let h = h.clone();
        async move { h.submit(i).await.unwrap().id }
    }))
    .await;
    let jobs = engine.jobs();
    futures_join_all(ids.iter().map(|id| {
        let jobs = jobs.clone();
        let id = *id;
        async move { jobs.cancel(id, "done with it").await.unwrap() }
    }))
    .await;
    assert_eq!(
        jobs.list(JobState::Cancelled, 0, 1_000)
            .await
            .unwrap()
            .len(),
        520
    );
    clock.advance(Duration::from_millis(59_999));
    engine.tick().await.unwrap();
    assert_eq!(
        jobs.list(JobState::Cancelled, 0, 1_000)
            .await
            .unwrap()
            .len(),
        520
    );
    clock.advance(Duration::from_millis(1));
    // One pass prunes at most 512 jobs and asks for another at once; two passes clear all.
    engine.tick().await.unwrap();
    engine.tick().await.unwrap();
    assert!(
        jobs.list(JobState::Cancelled, 0, 1_000)
            .await
            .unwrap()
            .is_empty()
    );
    for id in &ids {
        assert_eq!(jobs.get(*id).await.unwrap(), None);
    }
    assert!(matches!(
        jobs.events(ids[519]).read(0, 10).await,
        Err(Error::UnknownJob { .. })
    ));
}

/// Runs the futures concurrently (each on its own task) and collects their outputs in order.
async fn futures_join_all<T: Send + 'static>(
    futures: impl Iterator<Item = impl std::future::Future<Output = T> + Send + 'static>,
) -> Vec<T> {
    let tasks: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test]
async fn submit_many_is_one_commit_all_or_nothing() {
    let (_dir, path) = temp_file();
    let (engine, _clock) = open_manual(&path).await;
    let h = engine
        .register(
            JobSpec::new("sum").concurrency(4),
            |_: JobCtx, n: u32| async move { Ok(n + 1) },
        )
        .unwrap();
    let commits = engine.store_stats().commits;
    let done = h
        .submit_many([h.submit(1).key("a"), h.submit(2), h.submit(3).key("a")])
        .await
        .unwrap();
    assert_eq!(
        engine.store_stats().commits,
        commits + 1,
        "one commit for the batch"
    );
    assert_eq!(done.len(), 3);
    assert_eq!(
        done.iter().map(|s| s.deduplicated).collect::<Vec<_>>(),
        [false, false, true]
    );
    assert_eq!(
        done[2].id, done[0].id,
        "a key used twice gives the first job"
    );
    for (s, want) in done[..2].iter().zip([2, 3]) {
        match h.join(s.id, None).await.unwrap() {
            Outcome::Completed(out) => assert_eq!(out, want),
            other => panic!("{other:?}"),
        }
    }
    // One bad item: nothing of the batch is written.
    let before = engine
        .jobs()
        .list(JobState::Completed, 0, 100)
        .await
        .unwrap()
        .len();
    let err = h
        .submit_many([h.submit(4), h.submit(5).key("")])
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidArgument { what: "key", .. }),
        "{err}"
    );
    let other = engine.job::<u32, u32>(JobSpec::new("other")).unwrap();
    let err = h.submit_many([other.submit(6)]).await.unwrap_err();
    assert!(
        matches!(err, Error::InvalidArgument { what: "job", .. }),
        "{err}"
    );
    assert!(
        engine
            .jobs()
            .list(JobState::Queued, 0, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        engine
            .jobs()
            .list(JobState::Completed, 0, 100)
            .await
            .unwrap()
            .len(),
        before
    );
    assert!(h.submit_many([]).await.unwrap().is_empty());
}

#[tokio::test]
async fn compact_on_open_gives_back_the_space_of_pruned_jobs_and_keeps_the_rest() {
    let (_dir, path) = temp_file();
    let kept;
    {
        let (engine, clock) = open_manual(&path).await;
        let h = engine
            .register(
                JobSpec::new("big")
                    .concurrency(8)
                    .retention(Duration::from_secs(60)),
                |_: JobCtx, s: String| async move { Ok(s.len()) },
            )
            .unwrap();
        let blob = "x".repeat(4_000);
        for chunk in 0..10 {
            let done = h
                .submit_many((0..200).map(|i| h.submit(format!("{chunk}-{i}-{blob}"))))
                .await
                .unwrap();
            for s in done {
                h.join(s.id, None).await.unwrap();
            }
        }
        let waiting = engine
            .job::<String, usize>(JobSpec::new("waiting"))
            .unwrap();
        kept = waiting.submit("still here".into()).await.unwrap().id;
        clock.advance(Duration::from_secs(61));
        engine.tick().await.unwrap();
        assert!(
            engine
                .jobs()
                .list(JobState::Completed, 0, 10)
                .await
                .unwrap()
                .is_empty(),
            "retention pruned every finished job"
        );
        engine.shutdown(secs(5)).await.unwrap();
    }
    let before = std::fs::metadata(&path).unwrap().len();
    let engine = EngineOptions::new()
        .compact_on_open(true)
        .open(&path)
        .await
        .unwrap();
    let after = std::fs::metadata(&path).unwrap().len();
    eprintln!("compacted {before} -> {after} bytes");
    assert!(
        after * 4 < before,
        "compaction should give back most of {before} bytes, left {after}"
    );
    let job = engine.jobs().get(kept).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Queued);
    engine.shutdown(secs(5)).await.unwrap();
}

#[tokio::test]
async fn listing_by_state_pages_in_id_order_across_mixed_states() {
    let (_dir, path) = temp_file();
    let (engine, _clock) = open_manual(&path).await;
    // Odd inputs fail for good, even ones complete; jobs of "parked" have no handler.
    let h = engine
        .register(
            JobSpec::new("mixed").max_attempts(1),
            |_: JobCtx, n: u32| async move {
                if n % 2 == 1 {
                    Err(JobError::permanent("odd"))
                } else {
                    Ok(n)
                }
            },
        )
        .unwrap();
    let parked = engine.job::<u32, u32>(JobSpec::new("parked")).unwrap();
    let mut completed = Vec::new();
    let mut failed = Vec::new();
    let mut queued = Vec::new();
    for n in 0..12u32 {
        if n % 3 == 0 {
            queued.push(parked.submit(n).await.unwrap().id);
        }
        let id = h.submit(n).await.unwrap().id;
        h.join(id, None).await.unwrap();
        if n % 2 == 0 {
            completed.push(id);
        } else {
            failed.push(id);
        }
    }
    let cancelled = parked.submit(99).await.unwrap().id;
    parked.cancel(cancelled, "not needed").await.unwrap();

    let jobs = engine.jobs();
    let page = async |state: JobState, after: u64, limit: usize| -> Vec<u64> {
        jobs.list(state, after, limit)
            .await
            .unwrap()
            .iter()
            .map(|j| {
                assert_eq!(j.state, state);
                j.id
            })
            .collect()
    };
    // Completed jobs page through in id order, skipping the other states between them.
    let first = page(JobState::Completed, 0, 4).await;
    assert_eq!(first, completed[..4]);
    let rest = page(JobState::Completed, first[3], 4).await;
    assert_eq!(rest, completed[4..]);
    assert!(page(JobState::Completed, completed[5], 4).await.is_empty());
    assert_eq!(page(JobState::Failed, 0, 100).await, failed);
    assert_eq!(page(JobState::Failed, failed[2], 2).await, failed[3..5]);
    assert_eq!(page(JobState::Queued, 0, 100).await, queued);
    assert_eq!(page(JobState::Cancelled, 0, 100).await, [cancelled]);
    assert!(page(JobState::Completed, 0, 0).await.is_empty());
}

/// Rows of job `id` in the events table of the file at `path`.
fn event_rows(path: &std::path::Path, id: u64) -> usize {
    let db = redb::Database::open(path).unwrap();
    let rtx = redb::ReadableDatabase::begin_read(&db).unwrap();
    let events: redb::TableDefinition<(u64, u32), &[u8]> = redb::TableDefinition::new("job_events");
    let table = rtx.open_table(events).unwrap();
    redb::ReadableTable::range(&table, (id, 0)..=(id, u32::MAX))
        .unwrap()
        .count()
}

#[tokio::test]
async fn events_past_the_inline_ones_read_in_order_and_old_records_still_read_and_prune() {
    let (_dir, path) = temp_file();
    let spec = || JobSpec::new("chatty").retention(secs(60));
    let handler = |ctx: JobCtx, n: u8| async move {
        for p in 0..n {
            ctx.progress(p, "step").await?;
        }
        Ok(n)
    };
    let (short, long, full);
    {
        let (engine, _clock) = open_manual(&path).await;
        let h = engine.register(spec(), handler).unwrap();
        short = h.submit(1).await.unwrap().id;
        long = h.submit(10).await.unwrap().id;
        h.join(short, None).await.unwrap();
        h.join(long, None).await.unwrap();
        let events = engine.jobs().events(long);
        full = events.read(0, 100).await.unwrap();
        assert_eq!(
            full.iter().map(|e| e.seq).collect::<Vec<_>>(),
            (0..13).collect::<Vec<u32>>()
        );
        let mut want = vec!["submitted", "started"];
        want.extend(["progress"; 10]);
        want.push("completed");
        assert_eq!(names(&full), want);
        // Every window, across the boundary between the record and the table.
        for from in 0..=14u32 {
            for limit in 1..=4usize {
                let end = (from as usize + limit).min(full.len());
                let start = (from as usize).min(end);
                assert_eq!(
                    events.read(from, limit).await.unwrap(),
                    full[start..end],
                    "read({from}, {limit})"
                );
            }
        }
        let mut followed = Vec::new();
        let mut stream = events.follow(4);
        while let Some(e) = stream.next().await {
            followed.push(e.unwrap());
        }
        assert_eq!(followed, full[4..]);
        engine.shutdown(secs(5)).await.unwrap();
    }
    // The short job's four events live in its record; the long one's past the sixth are rows.
    assert_eq!(event_rows(&path, short), 0);
    assert_eq!(event_rows(&path, long), 13 - 6);

    // Both stored the way the first format did: every event a row, completed jobs indexed.
    assert!(jobfile::testing::rewrite_job_as_v1(&path, short).unwrap());
    assert!(jobfile::testing::rewrite_job_as_v1(&path, long).unwrap());
    assert!(!jobfile::testing::rewrite_job_as_v1(&path, 999).unwrap());
    assert_eq!(event_rows(&path, short), 4);
    assert_eq!(event_rows(&path, long), 13);
    let (engine, clock) = open_manual(&path).await;
    engine.register(spec(), handler).unwrap();
    assert_eq!(engine.jobs().events(long).read(0, 100).await.unwrap(), full);
    assert_eq!(
        engine.jobs().events(long).read(5, 3).await.unwrap(),
        full[5..8]
    );
    let listed: Vec<u64> = engine
        .jobs()
        .list(JobState::Completed, 0, 10)
        .await
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(listed, [short, long]);
    // Retention removes old-format jobs whole: record, event rows and index entries.
    clock.advance(secs(61));
    engine.tick().await.unwrap();
    for id in [short, long] {
        assert_eq!(engine.jobs().get(id).await.unwrap(), None);
    }
    assert!(
        engine
            .jobs()
            .list(JobState::Completed, 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    engine.shutdown(secs(5)).await.unwrap();
    drop(engine);
    assert_eq!(event_rows(&path, short) + event_rows(&path, long), 0);
    let db = redb::Database::open(&path).unwrap();
    let rtx = redb::ReadableDatabase::begin_read(&db).unwrap();
    let finished: redb::TableDefinition<(u8, u64), ()> = redb::TableDefinition::new("job_finished");
    let finished = rtx.open_table(finished).unwrap();
    assert_eq!(redb::ReadableTableMetadata::len(&finished).unwrap(), 0);
}

/// Rows of the job tables in the file at `path`, which no engine holds.
fn job_table_rows(path: &std::path::Path) -> Vec<(&'static str, usize)> {
    use redb::{ReadableDatabase, ReadableTableMetadata, TableDefinition};
    let db = redb::Database::open(path).unwrap();
    let rtx = db.begin_read().unwrap();
    let len = |n: u64| usize::try_from(n).unwrap();
    let by_id: TableDefinition<u64, &[u8]> = TableDefinition::new("jobs");
    let events: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("job_events");
    let ready: TableDefinition<(&str, u32, u64), u64> = TableDefinition::new("job_ready");
    let pairs = |name| TableDefinition::<(u64, u64), ()>::new(name);
    let finished: TableDefinition<(u8, u64), ()> = TableDefinition::new("job_finished");
    vec![
        ("jobs", len(rtx.open_table(by_id).unwrap().len().unwrap())),
        (
            "job_events",
            len(rtx.open_table(events).unwrap().len().unwrap()),
        ),
        (
            "job_ready",
            len(rtx.open_table(ready).unwrap().len().unwrap()),
        ),
        (
            "job_delayed",
            len(rtx.open_table(pairs("job_delayed")).unwrap().len().unwrap()),
        ),
        (
            "job_leases",
            len(rtx.open_table(pairs("job_leases")).unwrap().len().unwrap()),
        ),
        (
            "job_finished",
            len(rtx.open_table(finished).unwrap().len().unwrap()),
        ),
        (
            "job_retention",
            len(rtx
                .open_table(pairs("job_retention"))
                .unwrap()
                .len()
                .unwrap()),
        ),
    ]
}

#[tokio::test]
async fn a_finished_job_leaves_its_record_and_retention_entry_only_and_a_failed_one_is_indexed() {
    let (_dir, path) = temp_file();
    {
        let (engine, _clock) = open_manual(&path).await;
        let ok = engine
            .register(JobSpec::new("ok"), |_: JobCtx, n: u32| async move { Ok(n) })
            .unwrap();
        let bad = engine
            .register(
                JobSpec::new("bad").max_attempts(1),
                |_: JobCtx, _: ()| async { Err::<(), _>(JobError::permanent("no")) },
            )
            .unwrap();
        // Singly (each started by its submit) and as a batch (claimed by the worker).
        let mut ids = Vec::new();
        for n in 0..5 {
            ids.push(ok.submit(n).await.unwrap().id);
        }
        let batch = ok.submit_many((5..25).map(|n| ok.submit(n))).await.unwrap();
        ids.extend(batch.iter().map(|s| s.id));
        for (n, id) in ids.iter().enumerate() {
            assert_eq!(
                ok.join(*id, None).await.unwrap(),
                Outcome::Completed(n as u32)
            );
        }
        let failed = bad.submit(()).await.unwrap().id;
        assert!(matches!(
            bad.join(failed, None).await.unwrap(),
            Outcome::Failed(_)
        ));
        let m = engine.jobs().metrics().await.unwrap();
        assert_eq!(
            (m.completed, m.failed, m.queued_now, m.running_now),
            (25, 1, 0, 0)
        );
        // Its three events (submitted, started, failed) read back in order from the record.
        let events = engine.jobs().events(failed).read(0, 10).await.unwrap();
        assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [0, 1, 2]);
        assert!(matches!(events[0].kind, JobEventKind::Submitted));
        assert!(matches!(
            events[1].kind,
            JobEventKind::Started { attempt: 1, .. }
        ));
        assert!(matches!(events[2].kind, JobEventKind::Failed { .. }));
        engine.shutdown(secs(5)).await.unwrap();
    }
    // What the write path saves: events in the records, no lease or ready entry left over, and
    // only the failed job in the finished index; every job has its retention entry.
    assert_eq!(
        job_table_rows(&path),
        [
            ("jobs", 26),
            ("job_events", 0),
            ("job_ready", 0),
            ("job_delayed", 0),
            ("job_leases", 0),
            ("job_finished", 1),
            ("job_retention", 26),
        ]
    );
}

#[tokio::test]
async fn claims_in_batches_take_each_ready_job_once_in_priority_order() {
    let (_dir, path) = temp_file();
    {
        let (engine, _clock) = open_manual(&path).await;
        // Queued before any handler runs: every job goes through the ready index.
        let queue = engine.job::<u32, ()>(JobSpec::new("batch")).unwrap();
        let items = (0..10u32).map(|n| queue.submit(n).priority(if n % 3 == 0 { 1 } else { 0 }));
        let ids: Vec<u64> = queue
            .submit_many(items)
            .await
            .unwrap()
            .iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(engine.jobs().metrics().await.unwrap().queued_now, 10);
        let (tx, mut rx) = mpsc::unbounded_channel();
        // A job lost from the ready index would never start: fail rather than hang.
        async fn next(rx: &mut mpsc::UnboundedReceiver<u32>) -> u32 {
            tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .expect("a queued job never started")
                .unwrap()
        }
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let g = gate.clone();
        let h = engine
            .register(
                JobSpec::new("batch").concurrency(3),
                move |_: JobCtx, n: u32| {
                    tx.send(n).ok();
                    let g = g.clone();
                    async move {
                        g.acquire().await.unwrap().forget();
                        Ok(())
                    }
                },
            )
            .unwrap();
        // The first claim takes three, highest priority first, and leaves seven queued.
        let mut first = Vec::new();
        for _ in 0..3 {
            first.push(next(&mut rx).await);
        }
        first.sort();
        assert_eq!(first, [0, 3, 6]);
        let m = engine.jobs().metrics().await.unwrap();
        assert_eq!((m.queued_now, m.running_now), (7, 3));
        // Then the rest, as slots free up: the last priority-1 job first, then FIFO.
        gate.add_permits(10);
        let mut rest = Vec::new();
        for _ in 0..7 {
            rest.push(next(&mut rx).await);
        }
        assert_eq!(rest[0], 9, "{rest:?}");
        let mut all: Vec<u32> = first.into_iter().chain(rest).collect();
        all.sort();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        for id in ids {
            assert!(matches!(
                h.join(id, None).await.unwrap(),
                Outcome::Completed(())
            ));
        }
        let m = engine.jobs().metrics().await.unwrap();
        assert_eq!((m.completed, m.queued_now, m.running_now), (10, 0, 0));
        engine.shutdown(secs(5)).await.unwrap();
    }
    let rows = job_table_rows(&path);
    assert!(
        rows.contains(&("job_ready", 0)) && rows.contains(&("job_leases", 0)),
        "{rows:?}"
    );
}
