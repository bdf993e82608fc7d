//! Workflows: jobs that run after other jobs (`Submit::after`). Chains, a fan-in, dependencies
//! that fail (cancelling their dependents, or not with `after_allowing_failure`), outputs
//! passed along, and the waiting state across a restart. Run with workers the test drives
//! (`manual_workers` and `drain`) on a manual clock, so the order is exact.

mod common;

use std::path::Path;

use common::{T0, secs};
use jobfile::{
    Dependency, Engine, EngineOptions, Error, JobCtx, JobError, JobEventKind, JobSpec, JobState,
    ManualClock, Outcome,
};

async fn in_memory(clock: &ManualClock) -> Engine {
    EngineOptions::new()
        .clock(clock.clone())
        .manual_workers(true)
        .open_in_memory()
        .await
        .unwrap()
}

async fn on_file(path: &Path, clock: &ManualClock) -> Engine {
    EngineOptions::new()
        .clock(clock.clone())
        .manual_workers(true)
        .open(path)
        .await
        .unwrap()
}

/// The (id, state) of every attempt a drain ran, in order.
async fn drained(engine: &Engine) -> Vec<(u64, JobState)> {
    engine
        .drain()
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.id, d.state))
        .collect()
}

async fn state(engine: &Engine, id: u64) -> JobState {
    engine.jobs().get(id).await.unwrap().unwrap().state
}

/// `resize` doubles its input; `sum` adds the outputs of every job it runs after (`None` for
/// one that did not complete counts 1,000).
fn register(engine: &Engine) {
    engine
        .register(JobSpec::new("resize"), |_: JobCtx, n: u64| async move {
            if n == 0 {
                return Err(JobError::permanent("nothing to resize"));
            }
            Ok::<_, JobError>(n * 2)
        })
        .unwrap();
    engine
        .register(
            JobSpec::new("sum"),
            |ctx: JobCtx, deps: Vec<u64>| async move {
                let mut total = 0;
                for id in deps {
                    total += ctx.dependency_output::<u64>(id).await?.unwrap_or(1_000);
                }
                Ok::<_, JobError>(total)
            },
        )
        .unwrap();
}

#[tokio::test]
async fn a_chain_runs_in_order_and_each_reads_the_output_before_it() {
    let clock = ManualClock::new(T0);
    let engine = in_memory(&clock).await;
    register(&engine);
    let resize = engine.job::<u64, u64>(JobSpec::new("resize")).unwrap();
    let sum = engine.job::<Vec<u64>, u64>(JobSpec::new("sum")).unwrap();
    let a = resize.submit(21).await.unwrap().id;
    let b = sum.submit(vec![a]).after(&[a]).await.unwrap().id;
    let c = sum.submit(vec![b]).after(&[b]).await.unwrap().id;

    let info = engine.jobs().get(b).await.unwrap().unwrap();
    assert_eq!(info.state, JobState::Waiting);
    assert_eq!(info.waiting_for, Some(1));
    assert_eq!(
        info.after
            .iter()
            .map(|d: &Dependency| (d.id, d.allow_failure))
            .collect::<Vec<_>>(),
        [(a, false)]
    );
    let counts = engine.jobs().counts().await.unwrap();
    let sums = counts.iter().find(|c| c.name == "sum").unwrap();
    assert_eq!((sums.waiting, sums.queued), (2, 0));

    // One drain: a, then b (queued by a's completion), then c.
    assert_eq!(
        drained(&engine).await,
        [
            (a, JobState::Completed),
            (b, JobState::Completed),
            (c, JobState::Completed)
        ]
    );
    assert_eq!(sum.join(c, None).await.unwrap(), Outcome::Completed(42));
    let events: Vec<_> = engine
        .jobs()
        .events(b)
        .read(0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.kind.name(), e.at_ms))
        .collect();
    assert_eq!(
        events,
        [
            ("submitted", T0),
            ("dependencies_met", T0),
            ("started", T0),
            ("completed", T0)
        ]
    );
}

#[tokio::test]
async fn a_fan_in_of_100_runs_once_after_the_last_and_counts_down() {
    let clock = ManualClock::new(T0);
    let engine = in_memory(&clock).await;
    register(&engine);
    let resize = engine.job::<u64, u64>(JobSpec::new("resize")).unwrap();
    let sum = engine.job::<Vec<u64>, u64>(JobSpec::new("sum")).unwrap();
    // Parts 1..=100, the last 50 due a minute later.
    let mut parts = Vec::new();
    for n in 1..=100u64 {
        let submit = resize.submit(n);
        let submit = if n > 50 {
            submit.delay(secs(60))
        } else {
            submit
        };
        parts.push(submit.await.unwrap().id);
    }
    let total = sum.submit(parts.clone()).after(&parts).await.unwrap().id;
    assert_eq!(
        engine.jobs().get(total).await.unwrap().unwrap().waiting_for,
        Some(100)
    );
    let ran = drained(&engine).await;
    assert_eq!(ran.len(), 50);
    let info = engine.jobs().get(total).await.unwrap().unwrap();
    assert_eq!(
        (info.state, info.waiting_for),
        (JobState::Waiting, Some(50))
    );

    clock.advance(secs(60));
    let ran = drained(&engine).await;
    assert_eq!(ran.len(), 51);
    assert_eq!(ran.last(), Some(&(total, JobState::Completed)));
    // 2 * (1 + ... + 100)
    assert_eq!(
        sum.join(total, None).await.unwrap(),
        Outcome::Completed(10_100)
    );
}

#[tokio::test]
async fn a_failed_dependency_cancels_its_dependents_down_the_chain_unless_failure_is_allowed() {
    let clock = ManualClock::new(T0);
    let engine = in_memory(&clock).await;
    register(&engine);
    let resize = engine.job::<u64, u64>(JobSpec::new("resize")).unwrap();
    let sum = engine.job::<Vec<u64>, u64>(JobSpec::new("sum")).unwrap();
    let bad = resize.submit(0).await.unwrap().id;
    let good = resize.submit(5).await.unwrap().id;
    let b = sum.submit(vec![bad]).after(&[bad, good]).await.unwrap().id;
    let c = sum.submit(vec![b]).after(&[b]).await.unwrap().id;
    let tolerant = sum
        .submit(vec![bad, good])
        .after_allowing_failure(&[bad])
        .after(&[good])
        .await
        .unwrap()
        .id;

    let ran = drained(&engine).await;
    assert_eq!(
        ran,
        [
            (bad, JobState::Failed),
            (good, JobState::Completed),
            (tolerant, JobState::Completed)
        ]
    );
    let b_info = engine.jobs().get(b).await.unwrap().unwrap();
    assert_eq!(b_info.state, JobState::Cancelled);
    assert_eq!(
        b_info.cancel_reason.as_deref(),
        Some(format!("job {bad} (resize), which this job runs after, ended failed").as_str())
    );
    let c_info = engine.jobs().get(c).await.unwrap().unwrap();
    assert_eq!(
        c_info.cancel_reason.as_deref(),
        Some(format!("job {b} (sum), which this job runs after, ended cancelled").as_str())
    );
    assert_eq!(
        sum.join(c, None).await.unwrap(),
        Outcome::Cancelled(format!(
            "job {b} (sum), which this job runs after, ended cancelled"
        ))
    );
    // The failed one reads as `None` (1,000 in this handler), the completed one as 10.
    assert_eq!(
        sum.join(tolerant, None).await.unwrap(),
        Outcome::Completed(1_010)
    );
    let counts = engine.jobs().counts().await.unwrap();
    let sums = counts.iter().find(|c| c.name == "sum").unwrap();
    assert_eq!((sums.waiting, sums.cancelled, sums.completed), (0, 2, 1));
}

#[tokio::test]
async fn dependencies_that_ended_before_the_submit_count_at_once_and_unknown_ones_are_refused() {
    let clock = ManualClock::new(T0);
    let engine = in_memory(&clock).await;
    register(&engine);
    let resize = engine.job::<u64, u64>(JobSpec::new("resize")).unwrap();
    let sum = engine.job::<Vec<u64>, u64>(JobSpec::new("sum")).unwrap();
    let done = resize.submit(4).await.unwrap().id;
    let failed = resize.submit(0).await.unwrap().id;
    drained(&engine).await;

    let after_done = sum.submit(vec![done]).after(&[done]).await.unwrap().id;
    assert_eq!(state(&engine, after_done).await, JobState::Queued);
    let after_failed = sum.submit(vec![]).after(&[failed]).await.unwrap().id;
    let info = engine.jobs().get(after_failed).await.unwrap().unwrap();
    assert_eq!(info.state, JobState::Cancelled);
    assert_eq!(
        info.cancel_reason.unwrap(),
        format!("job {failed} (resize), which this job runs after, ended failed")
    );
    assert_eq!(drained(&engine).await, [(after_done, JobState::Completed)]);

    let before = engine.jobs().submitted("sum").await.unwrap().len();
    match sum.submit(vec![]).after(&[done, 999]).await {
        Err(Error::InvalidArgument { what, detail }) => {
            assert_eq!(what, "after");
            assert!(detail.contains("job 999 does not exist"), "{detail}");
        }
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    assert_eq!(
        engine.jobs().submitted("sum").await.unwrap().len(),
        before,
        "nothing stored"
    );
}

#[tokio::test]
async fn cancelling_a_waiting_job_or_its_dependency_by_hand() {
    let clock = ManualClock::new(T0);
    let engine = in_memory(&clock).await;
    register(&engine);
    let resize = engine.job::<u64, u64>(JobSpec::new("resize")).unwrap();
    let sum = engine.job::<Vec<u64>, u64>(JobSpec::new("sum")).unwrap();
    let a = resize.submit(1).delay(secs(10)).await.unwrap().id;
    let waiting = sum.submit(vec![a]).after(&[a]).await.unwrap().id;
    let other = sum.submit(vec![a]).after(&[a]).await.unwrap().id;
    // A waiting job cancelled by hand stays cancelled when its dependency completes.
    sum.cancel(waiting, "not needed").await.unwrap();
    clock.advance(secs(10));
    assert_eq!(
        drained(&engine).await,
        [(a, JobState::Completed), (other, JobState::Completed)]
    );
    assert_eq!(
        sum.join(waiting, None).await.unwrap(),
        Outcome::Cancelled("not needed".into())
    );

    // A dependency cancelled by hand cancels the jobs waiting for it.
    let b = resize.submit(1).delay(secs(10)).await.unwrap().id;
    let dependent = sum.submit(vec![b]).after(&[b]).await.unwrap().id;
    resize.cancel(b, "stop").await.unwrap();
    assert_eq!(state(&engine, dependent).await, JobState::Cancelled);
    clock.advance(secs(10));
    assert!(drained(&engine).await.is_empty());
}

#[tokio::test]
async fn a_handler_reading_a_job_it_does_not_run_after_fails_at_once() {
    let clock = ManualClock::new(T0);
    let engine = in_memory(&clock).await;
    register(&engine);
    let resize = engine.job::<u64, u64>(JobSpec::new("resize")).unwrap();
    let sum = engine.job::<Vec<u64>, u64>(JobSpec::new("sum")).unwrap();
    let a = resize.submit(1).await.unwrap().id;
    let b = resize.submit(2).await.unwrap().id;
    let reads_b = sum.submit(vec![b]).after(&[a]).await.unwrap().id;
    let ran = engine.drain().await.unwrap();
    assert_eq!(ran.len(), 3);
    let last = ran.iter().find(|d| d.id == reads_b).unwrap();
    assert_eq!((last.attempt, last.state), (1, JobState::Failed));
    let error = last.error.as_ref().unwrap();
    assert_eq!(error.code, "NOT_A_DEPENDENCY");
    assert_eq!(
        error.message,
        format!("job {b} is not one that job {reads_b} runs after")
    );
}

#[tokio::test]
async fn waiting_jobs_are_listed_and_survive_a_restart() {
    let (_dir, path) = common::temp_file();
    let clock = ManualClock::new(T0);
    let (a, b) = {
        let engine = on_file(&path, &clock).await;
        register(&engine);
        let resize = engine.job::<u64, u64>(JobSpec::new("resize")).unwrap();
        let sum = engine.job::<Vec<u64>, u64>(JobSpec::new("sum")).unwrap();
        let a = resize.submit(3).delay(secs(10)).await.unwrap().id;
        let b = sum.submit(vec![a]).after(&[a]).await.unwrap().id;
        engine.shutdown(secs(1)).await.unwrap();
        (a, b)
    };
    let engine = on_file(&path, &clock).await;
    register(&engine);
    let page = engine.jobs().list().state(JobState::Waiting).await.unwrap();
    assert_eq!(page.jobs.iter().map(|j| j.id).collect::<Vec<_>>(), [b]);
    assert_eq!(page.jobs[0].run_at_ms, Some(T0));
    clock.advance(secs(10));
    assert_eq!(
        drained(&engine).await,
        [(a, JobState::Completed), (b, JobState::Completed)]
    );
    let events: Vec<JobEventKind> = engine
        .jobs()
        .events(b)
        .read(0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(events[1], JobEventKind::DependenciesMet);
}

#[tokio::test]
async fn a_delayed_job_with_dependencies_waits_for_both() {
    let clock = ManualClock::new(T0);
    let engine = in_memory(&clock).await;
    register(&engine);
    let resize = engine.job::<u64, u64>(JobSpec::new("resize")).unwrap();
    let sum = engine.job::<Vec<u64>, u64>(JobSpec::new("sum")).unwrap();
    let a = resize.submit(1).await.unwrap().id;
    let b = sum
        .submit(vec![a])
        .after(&[a])
        .delay(secs(30))
        .await
        .unwrap()
        .id;
    assert_eq!(drained(&engine).await, [(a, JobState::Completed)]);
    let info = engine.jobs().get(b).await.unwrap().unwrap();
    assert_eq!(
        (info.state, info.run_at_ms),
        (JobState::Queued, Some(T0 + 30_000))
    );
    clock.advance(secs(30));
    assert_eq!(drained(&engine).await, [(b, JobState::Completed)]);
}

#[tokio::test]
async fn dependencies_are_refused_on_postgresql_for_now() {
    let Some(place) = common::pg::Place::postgres() else {
        return;
    };
    let (engine, _clock) = place.open_at(T0).await;
    let resize = engine.job::<u64, u64>(JobSpec::new("resize")).unwrap();
    let a = resize.submit(1).await.unwrap().id;
    match resize.submit(2).after(&[a]).await {
        Err(Error::Unsupported { backend, .. }) => assert_eq!(backend, "PostgreSQL"),
        other => panic!("expected Unsupported, got {other:?}"),
    }
    // Submits without dependencies made at the same time are not refused with it.
    assert!(resize.submit(3).await.is_ok());
}
