//! What an application's own tests get: an engine in memory, workers that run only when the
//! test drains them, and the list of what was submitted, all on a manual clock.

use crate::common;

use std::time::Duration;

use common::{T0, secs};
use jobfile::{
    Backoff, Drained, Engine, EngineOptions, JobCtx, JobError, JobSpec, JobState, ManualClock,
    Outcome,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Email {
    to: String,
}

async fn manual(clock: &ManualClock) -> Engine {
    EngineOptions::new()
        .clock(clock.clone())
        .manual_workers(true)
        .open_in_memory()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_engine_in_memory_runs_jobs_and_leaves_no_file() {
    let cwd = std::env::current_dir().unwrap();
    let before: Vec<_> = std::fs::read_dir(&cwd)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let engine = Engine::in_memory().await.unwrap();
    assert_eq!(engine.path(), std::path::Path::new(":memory:"));
    assert_eq!(engine.epoch(), 1);
    let double = engine
        .register(JobSpec::new("double"), |_: JobCtx, n: u32| async move {
            Ok::<_, JobError>(n * 2)
        })
        .unwrap();
    let id = double.submit(21).await.unwrap().id;
    assert_eq!(double.join(id, None).await.unwrap(), Outcome::Completed(42));
    let q = engine.queue("q").unwrap();
    q.send(b"x".to_vec()).await.unwrap();
    assert_eq!(q.try_receive(1, secs(1)).await.unwrap().len(), 1);
    engine.shutdown(secs(1)).await.unwrap();
    let after: Vec<_> = std::fs::read_dir(&cwd)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(before, after, "nothing written beside the tests");
    // A second engine in memory starts empty.
    let other = Engine::in_memory().await.unwrap();
    assert!(other.jobs().get(id).await.unwrap().is_none());
}

#[tokio::test]
async fn jobs_run_only_when_drained_and_the_report_says_how_each_attempt_ended() {
    let clock = ManualClock::new(T0);
    let engine = manual(&clock).await;
    // Fails its first attempt for ann, retried after 10 s.
    let mail = engine
        .register(
            JobSpec::new("mail")
                .max_attempts(2)
                .backoff(Backoff::fixed(secs(10))),
            |ctx: JobCtx, email: Email| async move {
                if email.to == "ann" && ctx.attempt() == 1 {
                    return Err(JobError::retryable("mailbox busy").code("BUSY"));
                }
                Ok::<_, JobError>(format!("sent to {}", email.to))
            },
        )
        .unwrap();
    let ann = mail.submit(Email { to: "ann".into() }).await.unwrap().id;
    let bob = mail
        .submit(Email { to: "bob".into() })
        .delay(secs(60))
        .await
        .unwrap()
        .id;
    // Nothing ran: the test decides when.
    let submitted = mail.submitted().await.unwrap();
    let inputs: Vec<&str> = submitted.iter().map(|s| s.input.to.as_str()).collect();
    assert_eq!(inputs, ["ann", "bob"]);
    assert!(submitted.iter().all(|s| s.job.state == JobState::Queued));
    assert_eq!(submitted[1].job.run_at_ms, Some(T0 + 60_000));

    let ran = engine.drain().await.unwrap();
    assert_eq!(ran.len(), 1, "bob is not due");
    let first: &Drained = &ran[0];
    assert_eq!(
        (first.id, first.attempt, first.state),
        (ann, 1, JobState::Queued)
    );
    let error = first.error.as_ref().unwrap();
    assert_eq!(
        (error.code.as_str(), error.message.as_str()),
        ("BUSY", "mailbox busy")
    );
    assert!(
        engine.drain().await.unwrap().is_empty(),
        "the retry waits 10 s"
    );

    clock.advance(secs(10));
    let ran = engine.drain().await.unwrap();
    assert_eq!(
        ran.iter()
            .map(|d| (d.id, d.attempt, d.state))
            .collect::<Vec<_>>(),
        [(ann, 2, JobState::Completed)]
    );
    assert_eq!(ran[0].error, None);
    clock.advance(secs(50));
    let ran = engine.drain().await.unwrap();
    assert_eq!(
        ran.iter()
            .map(|d| (d.id, d.attempt, d.state))
            .collect::<Vec<_>>(),
        [(bob, 1, JobState::Completed)]
    );
    assert_eq!(
        mail.join(ann, Some(Duration::ZERO)).await.unwrap(),
        Outcome::Completed("sent to ann".into())
    );
    let names: Vec<_> = engine.jobs().submitted("mail").await.unwrap();
    assert_eq!(names.len(), 2);
    assert!(names.iter().all(|j| j.state == JobState::Completed));
}

#[tokio::test]
async fn a_drain_runs_due_chains_in_order_and_respects_pause_and_start_limits() {
    let clock = ManualClock::new(T0);
    let engine = manual(&clock).await;
    // Each step submits the next until 3: one drain runs the whole chain.
    let steps = engine.job::<u32, u32>(JobSpec::new("step")).unwrap();
    let next = steps.clone();
    engine
        .register(JobSpec::new("step"), move |_: JobCtx, n: u32| {
            let next = next.clone();
            async move {
                if n < 3 {
                    next.submit(n + 1).await?;
                }
                Ok::<_, JobError>(n)
            }
        })
        .unwrap();
    steps.submit(1).await.unwrap();
    let ran = engine.drain().await.unwrap();
    assert_eq!(ran.iter().map(|d| d.id).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(ran.iter().all(|d| d.state == JobState::Completed));

    // Paused: left queued. Limited to 2 per 10 s: 2 now, the third once the window has room.
    let sms = engine
        .register(
            JobSpec::new("sms").rate_limit(2, secs(10)),
            |_: JobCtx, n: u32| async move { Ok::<_, JobError>(n) },
        )
        .unwrap();
    for n in 0..3 {
        sms.submit(n).await.unwrap();
    }
    engine.jobs().pause("sms").await.unwrap();
    assert!(engine.drain().await.unwrap().is_empty());
    engine.jobs().resume("sms").await.unwrap();
    assert_eq!(engine.drain().await.unwrap().len(), 2);
    clock.advance(secs(10));
    // The 2 weigh 2 * 10,000 / 10,000 at the window's start: no room; 1 ms later 2 * 9,999 /
    // 10,000 rounds down to 1: room for one.
    assert!(engine.drain().await.unwrap().is_empty());
    clock.advance(Duration::from_millis(1));
    assert_eq!(engine.drain().await.unwrap().len(), 1);
}
