//! Bulk operator actions on 10,000 items each while workers or consumers run: cancel every
//! queued job of a definition, delete the failed ones older than an instant, retry every
//! failed one, requeue every dead letter of a queue. Counts are exact, and nothing is lost or
//! run twice. Each test runs on a file and on a PostgreSQL schema.

use crate::common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::pg::Place;
use common::{T0, secs};
use jobfile::{Engine, JobCtx, JobError, JobHandle, JobSpec, JobState, Outcome, QueueOptions};

const N: u32 = 10_000;

/// Submits `N` jobs, 1,000 per transaction; their ids in order.
async fn submit_all(handle: &JobHandle<u32, u32>) -> Vec<u64> {
    let mut ids = Vec::new();
    for chunk in (0..N).collect::<Vec<_>>().chunks(1_000) {
        let batch = chunk.iter().map(|&n| handle.submit(n));
        ids.extend(
            handle
                .submit_many(batch)
                .await
                .unwrap()
                .iter()
                .map(|s| s.id),
        );
    }
    ids
}

/// How many times each job's handler ran, by job id.
type Runs = Arc<Mutex<HashMap<u64, u32>>>;

fn counting(engine: &Engine, name: &str, runs: Runs, fail: Arc<AtomicBool>) -> JobHandle<u32, u32> {
    engine
        .register(
            JobSpec::new(name).concurrency(8),
            move |ctx: JobCtx, n: u32| {
                *runs.lock().unwrap().entry(ctx.id()).or_default() += 1;
                let fail = fail.load(Ordering::SeqCst);
                async move {
                    if fail {
                        Err(JobError::permanent("no"))
                    } else {
                        Ok(n)
                    }
                }
            },
        )
        .unwrap()
}

async fn cancelling_every_queued_job_beside_running_workers(place: Place) {
    let (engine, _clock) = place.open_at(T0).await;
    let runs = Runs::default();
    let work = counting(&engine, "work", runs.clone(), Arc::default());
    let ids = submit_all(&work).await;
    let cancelled = engine
        .jobs()
        .cancel_all_queued("work", "bulk")
        .await
        .unwrap();
    let (mut completed, mut gone) = (HashSet::new(), HashSet::new());
    for &id in &ids {
        match work.join(id, None).await.unwrap() {
            Outcome::Completed(_) => completed.insert(id),
            Outcome::Cancelled(reason) => {
                assert_eq!(reason, "bulk");
                gone.insert(id)
            }
            other => panic!("job {id}: {other:?}"),
        };
    }
    assert_eq!(gone.len() as u64, cancelled);
    assert_eq!(completed.len() + gone.len(), N as usize);
    let runs = runs.lock().unwrap().clone();
    assert!(runs.values().all(|&n| n == 1), "a job ran twice");
    let ran: HashSet<u64> = runs.keys().copied().collect();
    assert_eq!(ran, completed, "exactly the completed jobs ran");
    println!("{cancelled} of {N} cancelled while workers ran");
    assert_eq!(
        engine
            .jobs()
            .cancel_all_queued("work", "again")
            .await
            .unwrap(),
        0
    );
}

async fn deleting_old_failures_then_retrying_the_rest_beside_running_workers(place: Place) {
    let (engine, clock) = place.open_at(T0).await;
    let runs = Runs::default();
    let fail = Arc::new(AtomicBool::new(true));
    let work = counting(&engine, "work", runs.clone(), fail.clone());
    let old = submit_all(&work).await;
    for &id in &old {
        assert!(matches!(
            work.join(id, None).await.unwrap(),
            Outcome::Failed(_)
        ));
    }
    // Failures of the second lot come while the delete runs, a minute later.
    clock.advance(secs(60));
    let new = submit_all(&work).await;
    let deleted = engine
        .jobs()
        .delete_failed_before(Some("work"), T0 + 30_000)
        .await
        .unwrap();
    assert_eq!(deleted, u64::from(N));
    for &id in &new {
        assert!(matches!(
            work.join(id, None).await.unwrap(),
            Outcome::Failed(_)
        ));
    }
    assert!(engine.jobs().get(old[0]).await.unwrap().is_none());
    let counts = engine.jobs().counts().await.unwrap();
    assert_eq!(counts[0].failed, u64::from(N));
    // Now they succeed: every one of the second lot runs once more.
    fail.store(false, Ordering::SeqCst);
    assert_eq!(
        engine.jobs().retry_all_failed(Some("work")).await.unwrap(),
        u64::from(N)
    );
    for (n, &id) in new.iter().enumerate() {
        assert_eq!(
            work.join(id, None).await.unwrap(),
            Outcome::Completed(n as u32)
        );
        assert_eq!(
            runs.lock().unwrap()[&id],
            2,
            "job {id}: one failure, one retry"
        );
    }
    let state = engine.jobs().get(new[0]).await.unwrap().unwrap().state;
    assert_eq!(state, JobState::Completed);
}

async fn requeueing_every_dead_letter_beside_a_running_consumer(place: Place) {
    let (engine, clock) = place.open_at(T0).await;
    let q = engine
        .queue_with("inbox", QueueOptions::default().max_age(secs(1)))
        .unwrap();
    let senders: Vec<_> = (0..16u32)
        .map(|t| {
            let q = q.clone();
            tokio::spawn(async move {
                for i in (t..N).step_by(16) {
                    q.send(i.to_be_bytes().to_vec()).await.unwrap();
                }
            })
        })
        .collect();
    for s in senders {
        s.await.unwrap();
    }
    // Past their age, every message goes to the dead-letter list.
    clock.advance(secs(2));
    while q.stats().await.unwrap().dead < u64::from(N) {
        engine.tick().await.unwrap();
    }
    let consumer = tokio::spawn({
        let q = q.clone();
        async move {
            let mut seen = Vec::new();
            while seen.len() < N as usize {
                for d in q.receive_batch(100, secs(60)).await.unwrap() {
                    seen.push(u32::from_be_bytes(d.payload().try_into().unwrap()));
                    d.ack().await.unwrap();
                }
            }
            seen
        }
    });
    assert_eq!(q.requeue_all_dead().await.unwrap(), u64::from(N));
    let mut seen = consumer.await.unwrap();
    seen.sort_unstable();
    assert_eq!(seen, (0..N).collect::<Vec<_>>(), "each once");
    let stats = q.stats().await.unwrap();
    assert_eq!((stats.ready, stats.leased, stats.dead), (0, 0, 0));
}

in_both_places!(
    cancelling_every_queued_job_beside_running_workers,
    deleting_old_failures_then_retrying_the_rest_beside_running_workers,
    requeueing_every_dead_letter_beside_a_running_consumer,
);
