//! How jobs fail and recover, with exact values on a manual clock: retries and backoff, leases
//! and timeouts, cancel, panics, undecodable inputs and memoized steps.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use common::jobs::{Add, AllIn, failure, names, wait_for};
use common::pg::Place;
use common::{T0, secs};
use jobfile::{
    Backoff, CancelOutcome, Error, JobCtx, JobError, JobEventKind, JobHandle, JobSpec, JobState,
    ManualClock, Outcome, StopReason,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc, watch};

async fn retryable_error_then_success(place: Place) {
    let (engine, _clock) = place.open_at(T0).await;
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

async fn a_permanent_error_is_not_retried(place: Place) {
    let (engine, _clock) = place.open_at(T0).await;
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

async fn attempts_exhausted_fails_with_the_last_error(place: Place) {
    let (engine, _clock) = place.open_at(T0).await;
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
async fn observed_delays(place: Place, backoff: Backoff, attempts: u32) -> Vec<u64> {
    let (engine, clock) = place.open_at(T0).await;
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

async fn fixed_and_exponential_backoff_wait_exactly(place: Place) {
    let ms = Duration::from_millis;
    assert_eq!(
        observed_delays(place.fresh(), Backoff::fixed(ms(10_000)), 4).await,
        [10_000, 10_000, 10_000]
    );
    assert_eq!(
        observed_delays(place.fresh(), Backoff::exponential(ms(1_000), ms(5_000)), 6).await,
        [1_000, 2_000, 4_000, 5_000, 5_000]
    );
    let jittered = observed_delays(
        place.fresh(),
        Backoff::exponential(ms(1_000), ms(4_000)).jitter(0.5),
        5,
    )
    .await;
    let bounds = [(500, 1_500), (1_000, 3_000), (2_000, 6_000), (2_000, 6_000)];
    assert_eq!(jittered.len(), 4);
    for (d, (lo, hi)) in jittered.iter().zip(bounds) {
        assert!((lo..=hi).contains(d), "{jittered:?}");
    }
}

async fn a_missed_lease_times_the_attempt_out_and_signals_the_handler(place: Place) {
    let (engine, clock) = place.open_at(T0).await;
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

async fn heartbeats_keep_a_long_job_alive_and_extend_its_timeout(place: Place) {
    let (engine, clock) = place.open_at(T0).await;
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

async fn the_attempt_timeout_fires_without_heartbeats_even_within_the_lease(place: Place) {
    let (engine, clock) = place.open_at(T0).await;
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

async fn cancel_queued_running_and_finished_jobs(place: Place) {
    let (engine, _clock) = place.open_at(T0).await;
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
async fn cancel_racing_a_completion_always_wins_on_a_file() {
    cancel_racing_a_completion_always_wins(Place::file()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_racing_a_completion_always_wins_on_postgres() {
    let Some(place) = Place::postgres() else {
        return;
    };
    cancel_racing_a_completion_always_wins(place).await
}

async fn cancel_racing_a_completion_always_wins(place: Place) {
    let (engine, _clock) = place.open_at(T0).await;
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
                // Ignores the cancel signal on purpose and completes as soon as released. A
                // watch keeps only the latest release: the next round's (a higher id) may come
                // before this task looks, and releases it too.
                go.wait_for(|g| *g >= ctx.id()).await.ok();
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
    let settled = async {
        while jobs.metrics().await.unwrap().running_now > 0 || returned.load(Ordering::SeqCst) < 100
        {
            tokio::task::yield_now().await;
        }
    };
    // A bound on a wait that must end, so a handler that is never released fails the test
    // rather than hanging it.
    tokio::time::timeout(Duration::from_secs(60), settled)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{} of 100 handlers returned",
                returned.load(Ordering::SeqCst)
            )
        });
    assert_eq!(jobs.metrics().await.unwrap().completed, 0);
    assert_eq!(jobs.all_in(JobState::Cancelled).await.len(), 100);
}

async fn a_panic_is_recorded_as_panic_and_retried(place: Place) {
    let (engine, _clock) = place.open_at(T0).await;
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

async fn an_input_that_no_longer_decodes_fails_permanently_and_the_worker_goes_on(place: Place) {
    let (engine, _clock) = place.open_at(T0).await;
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

async fn committed_steps_are_not_run_again_on_retry(place: Place) {
    let (engine, _clock) = place.open_at(T0).await;
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

async fn a_step_id_used_twice_in_one_run_is_an_error(place: Place) {
    let (engine, _clock) = place.open_at(T0).await;
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

in_both_places!(
    retryable_error_then_success,
    a_permanent_error_is_not_retried,
    attempts_exhausted_fails_with_the_last_error,
    fixed_and_exponential_backoff_wait_exactly,
    a_missed_lease_times_the_attempt_out_and_signals_the_handler,
    heartbeats_keep_a_long_job_alive_and_extend_its_timeout,
    the_attempt_timeout_fires_without_heartbeats_even_within_the_lease,
    cancel_queued_running_and_finished_jobs,
    a_panic_is_recorded_as_panic_and_retried,
    an_input_that_no_longer_decodes_fails_permanently_and_the_worker_goes_on,
    committed_steps_are_not_run_again_on_retry,
    a_step_id_used_twice_in_one_run_is_an_error,
);

in_memory_too!(
    retryable_error_then_success,
    a_permanent_error_is_not_retried,
    attempts_exhausted_fails_with_the_last_error,
    fixed_and_exponential_backoff_wait_exactly,
    a_missed_lease_times_the_attempt_out_and_signals_the_handler,
    heartbeats_keep_a_long_job_alive_and_extend_its_timeout,
    the_attempt_timeout_fires_without_heartbeats_even_within_the_lease,
    cancel_queued_running_and_finished_jobs,
    a_panic_is_recorded_as_panic_and_retried,
    an_input_that_no_longer_decodes_fails_permanently_and_the_worker_goes_on,
    committed_steps_are_not_run_again_on_retry,
    a_step_id_used_twice_in_one_run_is_an_error,
);
