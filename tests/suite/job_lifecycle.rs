//! Jobs from submit to outcome, with exact values on a manual clock: events, join, keys,
//! priorities, delays, batches, concurrency, metrics and shutdown.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use common::jobs::{Add, AllIn, names, wait_for};
use common::pg::Place;
use common::{T0, open_manual, secs, table_rows, temp_file};
use jobfile::{
    Backoff, EngineOptions, Error, JobCtx, JobError, JobEventKind, JobHandle, JobSpec, JobState,
    ManualClock, Outcome,
};
use tokio::sync::{Notify, mpsc, watch};

async fn happy_path_with_steps_progress_and_events(place: Place) {
    let (engine, _clock) = place.open_at(T0).await;
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
            stage: "adding".into(),
            items: None,
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

async fn a_live_stream_sees_every_event_in_order_and_ends_after_the_terminal_one(place: Place) {
    let (engine, clock) = place.open_at(T0).await;
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
                items: None,
            })
        {
            // A second later, so that the next progress is an event of its own (progress
            // within one second is coalesced).
            clock.advance(secs(1));
            go_tx.send(true).unwrap();
        }
        seen.push(e.kind.name());
    }
    assert_eq!(
        seen,
        ["submitted", "started", "progress", "progress", "completed"]
    );
}

async fn join_timeout_returns_a_timed_out_result_and_unknown_ids_are_errors(place: Place) {
    let (engine, clock) = place.open_at(T0).await;
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

async fn a_job_submitted_without_a_handler_runs_once_one_is_registered(place: Place) {
    let (engine, _clock) = place.open_at(T0).await;
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

async fn the_same_key_gives_the_same_id_until_the_job_is_pruned(place: Place) {
    let (engine, clock) = place.open_at(T0).await;
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

async fn higher_priority_first_fifo_within_a_priority(place: Place) {
    let (engine, _clock) = place.open_at(T0).await;
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

async fn delayed_jobs_start_exactly_on_time_and_at_wins_over_delay(place: Place) {
    let (engine, clock) = place.open_at(T0).await;
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
        // The peak is read inside the update: read after it, a handler released at that moment
        // could already have lowered the count, and the peak would be missed.
        self.now.send_modify(|n| {
            *n += 1;
            self.max.fetch_max(*n, Ordering::SeqCst);
        });
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
async fn concurrency_limits_are_never_exceeded_on_a_file() {
    concurrency_limits_are_never_exceeded(Place::file()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limits_are_never_exceeded_on_postgres() {
    let Some(place) = Place::postgres() else {
        return;
    };
    concurrency_limits_are_never_exceeded(place).await
}

async fn concurrency_limits_are_never_exceeded(place: Place) {
    let (engine, _clock) = place.open_at(T0).await;
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
async fn the_global_cap_limits_handlers_across_definitions_on_a_file() {
    the_global_cap_limits_handlers_across_definitions(Place::file()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_global_cap_limits_handlers_across_definitions_on_postgres() {
    let Some(place) = Place::postgres() else {
        return;
    };
    the_global_cap_limits_handlers_across_definitions(place).await
}

async fn the_global_cap_limits_handlers_across_definitions(place: Place) {
    let clock = ManualClock::new(T0);
    let engine = place
        .open(EngineOptions::new().clock(clock).max_running_jobs(2))
        .await;
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

fn started(kind: &JobEventKind) -> bool {
    matches!(kind, JobEventKind::Started { .. })
}

async fn state_of(engine: &jobfile::Engine, id: u64) -> JobState {
    engine.jobs().get(id).await.unwrap().unwrap().state
}

/// The end of an attempt and the start of its definition's next ready job are one write, in
/// the slot the attempt frees: the job does not wait for a claim of its own.
#[tokio::test]
async fn an_ending_attempt_starts_the_next_ready_job_in_the_write_that_records_its_end() {
    let (_dir, path) = temp_file();
    let (engine, _clock) = open_manual(&path).await;
    let (release, released) = watch::channel(0u32);
    let h = engine
        .register(
            JobSpec::new("one").concurrency(1),
            move |_: JobCtx, n: u32| {
                let mut released = released.clone();
                async move {
                    released.wait_for(|r| *r >= n).await.unwrap();
                    Ok::<_, JobError>(n)
                }
            },
        )
        .unwrap();
    let a = h.submit(1).await.unwrap().id;
    wait_for(&engine, a, started).await;
    let b = h.submit(2).await.unwrap().id;
    let c = h.submit(3).await.unwrap().id;
    let ops = engine.store_stats().ops;
    release.send(1).unwrap();
    wait_for(&engine, b, started).await;
    assert_eq!(
        engine.store_stats().ops,
        ops + 1,
        "one write ends a and starts b"
    );
    assert_eq!(state_of(&engine, a).await, JobState::Completed);
    assert_eq!(state_of(&engine, c).await, JobState::Queued);
    release.send(3).unwrap();
    assert_eq!(h.join(b, None).await.unwrap(), Outcome::Completed(2));
    assert_eq!(h.join(c, None).await.unwrap(), Outcome::Completed(3));
    let counts = engine.jobs().counts().await.unwrap();
    let one = counts.iter().find(|c| c.name == "one").unwrap();
    assert_eq!((one.queued, one.running, one.completed), (0, 0, 3));
}

/// An attempt that ends while its definition's worker claims jobs for the slots it had free
/// keeps its slot too, for the next ready job, started in the write that records its end: the
/// worker's claim takes only as many jobs as it had slots, so a slot freed meanwhile would wait
/// for the worker's next claim (under load, half the slots sat idle that way). Every sync is
/// slowed by a second while it matters, so the claim is still unanswered when the attempt ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_ending_while_its_worker_claims_starts_the_next_ready_job() {
    let (_dir, path) = temp_file();
    let faults = jobfile::testing::FaultInjector::new();
    let engine = EngineOptions::new()
        .clock(ManualClock::new(T0))
        .fault_injector(faults.clone())
        .open(&path)
        .await
        .unwrap();
    // Job `n` waits for gate `n`; job 2 then fails.
    let (gates, opened) = watch::channel(0u32);
    let h = engine
        .register(
            JobSpec::new("two").concurrency(2),
            move |_: JobCtx, n: u32| {
                let mut opened = opened.clone();
                async move {
                    opened.wait_for(|g| g & (1 << n) != 0).await.unwrap();
                    match n {
                        2 => Err(JobError::permanent("b fails")),
                        n => Ok(n),
                    }
                }
            },
        )
        .unwrap();
    let a = h.submit(1).await.unwrap().id;
    let b = h.submit(2).await.unwrap().id;
    wait_for(&engine, a, started).await;
    wait_for(&engine, b, started).await;
    let mut queued = Vec::new();
    for n in 3..=5 {
        queued.push(h.submit(n).await.unwrap().id);
    }
    let ops = engine.store_stats().ops;
    faults.slow_syncs(Duration::from_secs(1));
    // `b` fails: a failed attempt frees its slot before its end is written, and the worker
    // claims one job with it. Both are written; the claim stays unanswered for a second.
    gates.send_modify(|g| *g |= 1 << 2);
    while engine.store_stats().ops < ops + 2 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    gates.send_modify(|g| *g |= 1 << 1);
    // `a`'s end is written.
    while engine.store_stats().ops < ops + 3 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    faults.slow_syncs(Duration::ZERO);
    // The claim started the first queued job, the write that ended `a` the second: no
    // further write (the two wait at their gates).
    wait_for(&engine, queued[0], started).await;
    wait_for(&engine, queued[1], started).await;
    assert_eq!(
        engine.store_stats().ops,
        ops + 3,
        "b's end, the claim, and one write that ended a and started the next job"
    );
    assert_eq!(state_of(&engine, a).await, JobState::Completed);
    assert_eq!(state_of(&engine, queued[2]).await, JobState::Queued);
    gates.send_modify(|g| *g |= 0b111 << 3);
    for (&id, n) in queued.iter().zip(3..) {
        assert_eq!(h.join(id, None).await.unwrap(), Outcome::Completed(n));
    }
}

/// A definition whose worker waits for a permit of the global cap gets the slot an ending
/// attempt frees, before the ending definition's own next job: one busy definition does not
/// keep the cap to itself.
#[tokio::test]
async fn a_freed_slot_goes_first_to_a_definition_waiting_under_the_global_cap() {
    let (_dir, path) = temp_file();
    let engine = EngineOptions::new()
        .clock(ManualClock::new(T0))
        .max_running_jobs(1)
        .open(&path)
        .await
        .unwrap();
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (release, released) = watch::channel(false);
    let o = order.clone();
    let x = engine
        .register(JobSpec::new("x"), move |_: JobCtx, n: u32| {
            o.lock().unwrap().push(format!("x{n}"));
            let mut released = released.clone();
            async move {
                released.wait_for(|r| *r).await.unwrap();
                Ok::<_, JobError>(n)
            }
        })
        .unwrap();
    let o = order.clone();
    let y = engine
        .register(JobSpec::new("y"), move |_: JobCtx, n: u32| {
            o.lock().unwrap().push(format!("y{n}"));
            async move { Ok::<_, JobError>(n) }
        })
        .unwrap();
    let x1 = x.submit(1).await.unwrap().id;
    wait_for(&engine, x1, started).await;
    // y's worker wakes for its job and waits for the cap's one permit.
    let y1 = y.submit(1).await.unwrap().id;
    let x2 = x.submit(2).await.unwrap().id;
    let x3 = x.submit(3).await.unwrap().id;
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    release.send(true).unwrap();
    for id in [x1, x2, x3] {
        x.join(id, None).await.unwrap();
    }
    y.join(y1, None).await.unwrap();
    assert_eq!(*order.lock().unwrap(), ["x1", "y1", "x2", "x3"]);
}

/// An attempt that ends while the engine shuts down starts nothing in its slot: the next ready
/// job stays queued, untouched, for the next open. The slot the ending attempt frees and the
/// stop can reach the waiting worker in one poll, where either may be taken first: the rounds
/// make that order come up both ways.
#[tokio::test]
async fn an_attempt_ending_during_shutdown_starts_no_next_job() {
    for round in 0..40 {
        an_attempt_ending_during_shutdown_starts_no_next_job_round(round).await;
    }
}

async fn an_attempt_ending_during_shutdown_starts_no_next_job_round(round: u32) {
    let (_dir, path) = temp_file();
    {
        let (engine, _clock) = open_manual(&path).await;
        let h = engine
            .register(
                JobSpec::new("one").concurrency(1),
                |ctx: JobCtx, n: u32| async move {
                    ctx.cancelled().await;
                    Ok::<_, JobError>(n)
                },
            )
            .unwrap();
        let a = h.submit(1).await.unwrap().id;
        wait_for(&engine, a, started).await;
        h.submit(2).await.unwrap();
        engine.shutdown(secs(5)).await.unwrap();
    }
    let (engine, _clock) = open_manual(&path).await;
    let jobs = engine.jobs();
    let all = jobs.list().oldest_first().limit(10).await.unwrap().jobs;
    let states: Vec<JobState> = all.iter().map(|j| j.state).collect();
    assert_eq!(
        states,
        [JobState::Completed, JobState::Queued],
        "round {round}"
    );
    let events = jobs.events(all[1].id).read(0, 10).await.unwrap();
    assert_eq!(names(&events), ["submitted"], "round {round}");
}

async fn bad_submissions_and_definitions_are_typed_errors_that_write_nothing(place: Place) {
    let (engine, _clock) = place.open_at(T0).await;
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
    if !place.is_postgres() {
        // (The file counts its commits.)
        assert_eq!(engine.store_stats().commits, before + 1);
    }
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
    if !place.is_postgres() {
        assert_eq!(engine.store_stats().commits, before + 1);
    }
    assert_eq!(engine.jobs().metrics().await.unwrap().queued_now, 1);
}

async fn shutdown_hands_unfinished_jobs_back_without_charging_an_attempt(place: Place) {
    let (engine, _clock) = place.open_at(T0).await;
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

    let (engine, _clock) = place.open_at(T0).await;
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

async fn the_metrics_callback_sees_each_event_and_a_panicking_one_is_ignored(place: Place) {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    let engine = EngineOptions::new()
        .clock(ManualClock::new(T0))
        .on_job_metric(move |m| {
            s.lock().unwrap().push(format!("{m:?}"));
            panic!("a broken metrics sink");
        });
    let engine = place.open(engine).await;
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

/// On a file (PostgreSQL has no direct hand-off: an idle worker claims).
#[tokio::test]
async fn a_submit_to_an_idle_worker_starts_the_job_in_the_same_commit() {
    let place = Place::file();
    let (engine, _clock) = place.open_at(T0).await;
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

async fn submit_many_is_one_commit_all_or_nothing(place: Place) {
    let (engine, _clock) = place.open_at(T0).await;
    // No handler yet: its worker, woken by the batch, would claim the jobs in a commit of its
    // own, which may land before the count below.
    let h = engine
        .job::<u32, u32>(JobSpec::new("sum").concurrency(4))
        .unwrap();
    let commits = engine.store_stats().commits;
    let done = h
        .submit_many([h.submit(1).key("a"), h.submit(2), h.submit(3).key("a")])
        .await
        .unwrap();
    if !place.is_postgres() {
        assert_eq!(
            engine.store_stats().commits,
            commits + 1,
            "one commit for the batch"
        );
    }
    engine
        .register(
            JobSpec::new("sum").concurrency(4),
            |_: JobCtx, n: u32| async move { Ok(n + 1) },
        )
        .unwrap();
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
    let before = engine.jobs().all_in(JobState::Completed).await.len();
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
    assert!(engine.jobs().all_in(JobState::Queued).await.is_empty());
    assert_eq!(
        engine.jobs().all_in(JobState::Completed).await.len(),
        before
    );
    assert!(h.submit_many([]).await.unwrap().is_empty());
}

async fn claims_in_batches_take_each_ready_job_once_in_priority_order(place: Place) {
    {
        let (engine, _clock) = place.open_at(T0).await;
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
    if place.is_postgres() {
        return;
    }
    let rows = table_rows(place.path(), "job_");
    assert!(
        rows.contains(&("job_ready".to_string(), 0))
            && rows.contains(&("job_leases".to_string(), 0)),
        "{rows:?}"
    );
}

async fn attempt_durations_are_bucketed_by_definition_and_outcome(place: Place) {
    let (engine, clock) = place.open_at(T0).await;
    let (open, gate) = watch::channel(false);
    let slow = engine
        .register(JobSpec::new("slow"), move |_: JobCtx, _: ()| {
            let mut gate = gate.clone();
            async move {
                let _ = gate.wait_for(|open| *open).await;
                Ok(())
            }
        })
        .unwrap();
    let bad = engine
        .register(
            JobSpec::new("bad").max_attempts(2),
            |_: JobCtx, _: ()| async { Err::<(), _>(JobError::retryable("no")) },
        )
        .unwrap();
    let stuck = engine
        .register(
            JobSpec::new("stuck").lease(secs(10)),
            |_: JobCtx, _: ()| async { std::future::pending::<Result<(), JobError>>().await },
        )
        .unwrap();
    // slow runs 120 ms on the manual clock; bad fails twice at once; stuck misses its lease.
    let s = slow.submit(()).await.unwrap().id;
    wait_for(&engine, s, |k| matches!(k, JobEventKind::Started { .. })).await;
    clock.advance(Duration::from_millis(120));
    open.send(true).unwrap();
    slow.join(s, None).await.unwrap();
    let b = bad.submit(()).await.unwrap().id;
    bad.join(b, None).await.unwrap();
    let t = stuck.submit(()).await.unwrap().id;
    wait_for(&engine, t, |k| matches!(k, JobEventKind::Started { .. })).await;
    clock.advance(secs(11));
    engine.tick().await.unwrap();
    stuck.join(t, None).await.unwrap();

    /// (name, outcome, count, sum in ms, the buckets that hold attempts)
    type Row = (String, String, u64, u64, Vec<(u64, u64)>);
    let got: Vec<Row> = engine
        .jobs()
        .attempt_durations()
        .into_iter()
        .map(|h| {
            let filled = h.buckets.into_iter().filter(|(_, n)| *n > 0).collect();
            (h.name, h.outcome, h.count, h.sum_ms, filled)
        })
        .collect();
    let s = |v: &str| v.to_string();
    assert_eq!(
        got,
        [
            (s("bad"), s("failed"), 2, 0, vec![(5, 2)]),
            (s("slow"), s("completed"), 1, 120, vec![(250, 1)]),
            (s("stuck"), s("timed_out"), 1, 11_000, vec![(30_000, 1)]),
        ]
    );
    let all = engine.jobs().attempt_durations();
    assert_eq!(all[0].buckets.len(), 15);
    assert_eq!(all[0].buckets.last(), Some(&(u64::MAX, 0)));
}

async fn progress_updates_within_one_second_make_one_event_holding_the_latest(place: Place) {
    #[derive(Debug)]
    enum Cmd {
        Progress(u8),
        Heartbeat,
        Done,
    }
    let (engine, clock) = place.open_at(T0).await;
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel::<Cmd>();
    let (ack_tx, mut ack_rx) = mpsc::unbounded_channel::<()>();
    let cmds = Arc::new(tokio::sync::Mutex::new(cmd_rx));
    let h = engine
        .register(JobSpec::new("report"), move |ctx: JobCtx, _: ()| {
            let (cmds, ack) = (cmds.clone(), ack_tx.clone());
            async move {
                let mut cmds = cmds.lock().await;
                while let Some(cmd) = cmds.recv().await {
                    match cmd {
                        Cmd::Progress(p) => ctx.progress(p, &format!("s{p}")).await?,
                        Cmd::Heartbeat => ctx.heartbeat().await?,
                        Cmd::Done => break,
                    }
                    ack.send(()).unwrap();
                }
                Ok(())
            }
        })
        .unwrap();
    let id = h.submit(()).await.unwrap().id;
    // (ms after T0, command); T0 is a whole second.
    let script = [
        (0, Cmd::Progress(10)),
        (400, Cmd::Progress(20)),
        (999, Cmd::Progress(30)),
        (1_000, Cmd::Progress(40)),
        (1_500, Cmd::Heartbeat),
        (1_600, Cmd::Progress(50)),
        (1_700, Cmd::Progress(60)),
        (3_000, Cmd::Progress(70)),
        (3_200, Cmd::Progress(80)),
    ];
    for (at, cmd) in script {
        clock.set(T0 + at);
        cmd_tx.send(cmd).unwrap();
        ack_rx.recv().await.unwrap();
    }
    let info = h.get(id).await.unwrap().unwrap();
    assert_eq!(
        info.progress.map(|p| (p.percent, p.stage)),
        Some((80, "s80".to_string()))
    );
    cmd_tx.send(Cmd::Done).unwrap();
    h.join(id, None).await.unwrap();
    let events = engine.jobs().events(id).read(0, 100).await.unwrap();
    let got: Vec<(u32, u64, String)> = events
        .iter()
        .map(|e| {
            let what = match &e.kind {
                JobEventKind::Progress { percent, .. } => format!("progress {percent}"),
                other => other.name().to_string(),
            };
            (e.seq, e.at_ms - T0, what)
        })
        .collect();
    let s = |v: &str| v.to_string();
    assert_eq!(
        got,
        [
            (0, 0, s("submitted")),
            (1, 0, s("started")),
            (2, 999, s("progress 30")),
            (3, 1_000, s("progress 40")),
            (4, 1_500, s("heartbeat")),
            (5, 1_700, s("progress 60")),
            // Past the events kept in the record: the same in the events table.
            (6, 3_200, s("progress 80")),
            (7, 3_200, s("completed")),
        ]
    );
}

in_both_places!(
    happy_path_with_steps_progress_and_events,
    a_live_stream_sees_every_event_in_order_and_ends_after_the_terminal_one,
    join_timeout_returns_a_timed_out_result_and_unknown_ids_are_errors,
    a_job_submitted_without_a_handler_runs_once_one_is_registered,
    the_same_key_gives_the_same_id_until_the_job_is_pruned,
    higher_priority_first_fifo_within_a_priority,
    delayed_jobs_start_exactly_on_time_and_at_wins_over_delay,
    bad_submissions_and_definitions_are_typed_errors_that_write_nothing,
    shutdown_hands_unfinished_jobs_back_without_charging_an_attempt,
    submit_many_is_one_commit_all_or_nothing,
    attempt_durations_are_bucketed_by_definition_and_outcome,
    the_metrics_callback_sees_each_event_and_a_panicking_one_is_ignored,
    claims_in_batches_take_each_ready_job_once_in_priority_order,
    progress_updates_within_one_second_make_one_event_holding_the_latest,
);

// In memory too, but for the two that reopen the engine or read the file's commit counts.
in_memory_too!(
    happy_path_with_steps_progress_and_events,
    a_live_stream_sees_every_event_in_order_and_ends_after_the_terminal_one,
    join_timeout_returns_a_timed_out_result_and_unknown_ids_are_errors,
    a_job_submitted_without_a_handler_runs_once_one_is_registered,
    the_same_key_gives_the_same_id_until_the_job_is_pruned,
    higher_priority_first_fifo_within_a_priority,
    delayed_jobs_start_exactly_on_time_and_at_wins_over_delay,
    bad_submissions_and_definitions_are_typed_errors_that_write_nothing,
    submit_many_is_one_commit_all_or_nothing,
    attempt_durations_are_bucketed_by_definition_and_outcome,
    the_metrics_callback_sees_each_event_and_a_panicking_one_is_ignored,
    progress_updates_within_one_second_make_one_event_holding_the_latest,
);
