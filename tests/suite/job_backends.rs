//! Job behaviour on both backends with the same exact assertions: each test runs on a file and
//! on a PostgreSQL schema (see `on_both_backends!`), on a manual clock.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::jobs::{Add, names};
use common::{T0, secs};
use jobfile::{Backoff, CancelOutcome, JobCtx, JobError, JobEventKind, JobSpec, JobState, Outcome};

on_both_backends! {
    async fn a_job_runs_its_steps_reports_progress_and_completes(engine, clock) {
        let add = engine
            .register(JobSpec::new("add"), |ctx: JobCtx, input: Add| async move {
                let a = ctx.step("load-a", || async move { Ok::<_, JobError>(input.a) }).await?;
                ctx.progress(50, "adding").await?;
                let b = ctx.step("load-b", || async move { Ok::<_, JobError>(input.b) }).await?;
                Ok(a + b)
            })
            .unwrap();
        let sub = add.submit(Add { a: 2, b: 40 }).meta("correlation_id", "req-7").await.unwrap();
        assert_eq!((sub.id, sub.deduplicated), (1, false));
        assert_eq!(add.join(sub.id, None).await.unwrap(), Outcome::Completed(42));
        let info = add.get(sub.id).await.unwrap().unwrap();
        assert_eq!(info.state, JobState::Completed);
        assert_eq!(info.attempts, 1);
        assert_eq!(info.output_json.as_deref(), Some(&b"42"[..]));
        assert_eq!(info.progress.as_ref().map(|p| (p.percent, p.stage.as_str())), Some((50, "adding")));
        assert_eq!(info.meta, vec![("correlation_id".to_string(), "req-7".to_string())]);
        assert_eq!(info.finished_at_ms, Some(T0));
        let events = engine.jobs().events(sub.id).read(0, 100).await.unwrap();
        assert_eq!(
            names(&events),
            ["submitted", "started", "step_completed", "progress", "step_completed", "completed"]
        );
        assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [0, 1, 2, 3, 4, 5]);
        assert!(events.iter().all(|e| e.at_ms == T0));
        assert_eq!(engine.jobs().events(sub.id).read(4, 100).await.unwrap().len(), 2);
        let m = engine.jobs().metrics().await.unwrap();
        assert_eq!((m.submitted, m.started, m.completed, m.failed), (1, 1, 1, 0));
        assert_eq!((m.running_now, m.queued_now), (0, 0));
    }

    async fn a_retryable_failure_waits_out_its_backoff_to_the_millisecond(engine, clock) {
        let runs = Arc::new(AtomicU32::new(0));
        let r = runs.clone();
        let flaky = engine
            .register(
                JobSpec::new("flaky").max_attempts(3).backoff(Backoff::fixed(secs(10))),
                move |ctx: JobCtx, _: ()| {
                    r.fetch_add(1, Ordering::SeqCst);
                    async move {
                        if ctx.attempt() < 3 {
                            Err(JobError::retryable(format!("try {}", ctx.attempt())).code("BUSY"))
                        } else {
                            Ok(ctx.attempt())
                        }
                    }
                },
            )
            .unwrap();
        let id = flaky.submit(()).await.unwrap().id;
        common::jobs::wait_for(&engine, id, |k| matches!(k, JobEventKind::RetryScheduled { .. })).await;
        let info = engine.jobs().get(id).await.unwrap().unwrap();
        assert_eq!((info.state, info.run_at_ms), (JobState::Queued, Some(T0 + 10_000)));
        assert_eq!(info.last_error.as_ref().map(|e| e.code.as_str()), Some("BUSY"));
        // One millisecond early: nothing runs.
        clock.advance(Duration::from_millis(9_999));
        engine.tick().await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        clock.advance(Duration::from_millis(1));
        engine.tick().await.unwrap();
        let second = common::jobs::wait_for(&engine, id, |k| matches!(k, JobEventKind::RetryScheduled { next_at_ms, .. } if *next_at_ms == T0 + 20_000)).await;
        assert_eq!(second.at_ms, T0 + 10_000);
        clock.advance(secs(10));
        engine.tick().await.unwrap();
        assert_eq!(flaky.join(id, None).await.unwrap(), Outcome::Completed(3));
        let events = engine.jobs().events(id).read(0, 100).await.unwrap();
        assert_eq!(
            names(&events),
            ["submitted", "started", "retry_scheduled", "started", "retry_scheduled", "started", "completed"]
        );
        let m = engine.jobs().metrics().await.unwrap();
        assert_eq!((m.started, m.retried, m.completed), (3, 2, 1));
    }

    async fn a_failed_job_is_listed_retried_with_a_fresh_budget_and_deleted(engine, clock) {
        let fail = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let f = fail.clone();
        let h = engine
            .register(JobSpec::new("dl").max_attempts(1), move |_: JobCtx, n: u32| {
                let fail = f.load(Ordering::SeqCst);
                async move {
                    if fail { Err(JobError::permanent(format!("bad {n}")).code("BAD")) } else { Ok(n) }
                }
            })
            .unwrap();
        let a = h.submit(1).await.unwrap().id;
        let b = h.submit(2).await.unwrap().id;
        assert!(matches!(h.join(a, None).await.unwrap(), Outcome::Failed(ref e) if e.code == "BAD" && e.message == "bad 1"));
        assert!(matches!(h.join(b, None).await.unwrap(), Outcome::Failed(_)));
        let failed = engine.jobs().list().state(JobState::Failed).await.unwrap();
        assert_eq!(failed.jobs.iter().map(|j| j.id).collect::<Vec<_>>(), [b, a]);
        let oldest = engine.jobs().list().state(JobState::Failed).oldest_first().limit(1).await.unwrap();
        assert_eq!((oldest.jobs.len(), oldest.jobs[0].id, oldest.next), (1, a, Some(a)));
        fail.store(false, Ordering::SeqCst);
        engine.jobs().retry(a).await.unwrap();
        assert_eq!(h.join(a, None).await.unwrap(), Outcome::Completed(1));
        assert!(matches!(engine.jobs().retry(a).await, Err(jobfile::Error::InvalidArgument { .. })));
        assert_eq!(engine.jobs().retry_all_failed(Some("dl")).await.unwrap(), 1);
        assert_eq!(h.join(b, None).await.unwrap(), Outcome::Completed(2));
        engine.jobs().delete(a).await.unwrap();
        assert_eq!(engine.jobs().get(a).await.unwrap(), None);
        assert!(matches!(engine.jobs().events(a).read(0, 10).await, Err(jobfile::Error::UnknownJob { id }) if id == a));
        let counts = engine.jobs().counts().await.unwrap();
        assert_eq!(counts.iter().map(|c| (c.name.as_str(), c.completed, c.failed)).collect::<Vec<_>>(), [("dl", 1, 0)]);
    }

    async fn an_idempotency_key_gives_the_same_job(engine, clock) {
        let h = engine.job::<u32, u32>(JobSpec::new("keyed")).unwrap();
        let first = h.submit(1).key("order-1").await.unwrap();
        let again = h.submit(2).key("order-1").await.unwrap();
        let other = h.submit(3).key("order-2").await.unwrap();
        assert_eq!((first.id, first.deduplicated), (1, false));
        assert_eq!((again.id, again.deduplicated), (1, true));
        assert_eq!((other.id, other.deduplicated), (2, false));
        let many = h.submit_many(vec![h.submit(4), h.submit(5)]).await.unwrap();
        assert_eq!(many.iter().map(|s| s.id).collect::<Vec<_>>(), [3, 4]);
        assert_eq!(engine.jobs().metrics().await.unwrap().queued_now, 4);
    }

    async fn a_batch_with_keys_answers_each_job_in_order(engine, clock) {
        let h = engine.job::<u32, u32>(JobSpec::new("keyed")).unwrap();
        let held = h.submit(0).key("held").await.unwrap();
        assert_eq!((held.id, held.deduplicated), (1, false));
        let done = h
            .submit_many(vec![
                h.submit(1).key("a"),
                h.submit(2),
                h.submit(3).key("a"),
                h.submit(4).key("held"),
                h.submit(5).delay(secs(60)),
                h.submit(6).key("b"),
            ])
            .await
            .unwrap();
        assert_eq!(
            done.iter().map(|s| (s.id, s.deduplicated)).collect::<Vec<_>>(),
            [(2, false), (3, false), (2, true), (1, true), (4, false), (5, false)]
        );
        let inputs: Vec<_> = engine.jobs().list().oldest_first().await.unwrap().jobs.iter().map(|j| (j.id, j.state, j.input_json.clone())).collect();
        assert_eq!(inputs.len(), 5, "{inputs:?}");
        let m = engine.jobs().metrics().await.unwrap();
        assert_eq!((m.submitted, m.queued_now), (5, 5));
        let delayed = engine.jobs().get(4).await.unwrap().unwrap();
        assert_eq!(delayed.run_at_ms, Some(T0 + 60_000));
        for id in [1, 2, 3, 5] {
            let events = engine.jobs().events(id).read(0, 10).await.unwrap();
            assert_eq!(names(&events), ["submitted"], "job {id}");
        }
        // Submits racing with one new key: one job, every other answer names it.
        let racers: Vec<_> = (0..8)
            .map(|n| {
                let h = h.clone();
                tokio::spawn(async move { h.submit(100 + n).key("race").await.unwrap() })
            })
            .collect();
        let mut answers = Vec::new();
        for r in racers {
            answers.push(r.await.unwrap());
        }
        assert_eq!(answers.iter().filter(|a| !a.deduplicated).count(), 1);
        assert!(answers.iter().all(|a| a.id == answers[0].id));
    }

    async fn cancel_stops_a_queued_job_and_a_running_one(engine, clock) {
        let parked = engine.job::<u32, u32>(JobSpec::new("parked")).unwrap();
        let id = parked.submit(1).await.unwrap().id;
        assert_eq!(engine.jobs().cancel(id, "not needed").await.unwrap(), CancelOutcome::Cancelled);
        assert_eq!(engine.jobs().cancel(id, "again").await.unwrap(), CancelOutcome::AlreadyFinished(JobState::Cancelled));
        assert_eq!(parked.join(id, None).await.unwrap(), Outcome::Cancelled("not needed".into()));
        let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel();
        let slow = engine
            .register(JobSpec::new("slow"), move |ctx: JobCtx, _: ()| {
                let started = started_tx.clone();
                async move {
                    started.send(()).unwrap();
                    let why = ctx.cancelled().await;
                    Err::<(), _>(JobError::permanent(format!("stopped: {why:?}")))
                }
            })
            .unwrap();
        let id = slow.submit(()).await.unwrap().id;
        started.recv().await.unwrap();
        assert_eq!(engine.jobs().cancel(id, "operator").await.unwrap(), CancelOutcome::Cancelled);
        assert_eq!(slow.join(id, None).await.unwrap(), Outcome::Cancelled("operator".into()));
        let events = engine.jobs().events(id).read(0, 10).await.unwrap();
        assert_eq!(names(&events), ["submitted", "started", "cancelled"]);
    }

    async fn an_attempt_past_its_lease_times_out_and_its_handler_is_told(engine, clock) {
        let (told_tx, mut told) = tokio::sync::mpsc::unbounded_channel();
        let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel();
        let stuck = engine
            .register(
                JobSpec::new("stuck").max_attempts(1).lease(secs(30)),
                move |ctx: JobCtx, _: ()| {
                    let (told, started) = (told_tx.clone(), started_tx.clone());
                    async move {
                        started.send(()).unwrap();
                        let why = ctx.cancelled().await;
                        told.send(why).unwrap();
                        Ok(())
                    }
                },
            )
            .unwrap();
        let id = stuck.submit(()).await.unwrap().id;
        started.recv().await.unwrap();
        assert_eq!(engine.jobs().get(id).await.unwrap().unwrap().lease_deadline_ms, Some(T0 + 30_000));
        clock.advance(Duration::from_millis(29_999));
        engine.tick().await.unwrap();
        assert_eq!(engine.jobs().get(id).await.unwrap().unwrap().state, JobState::Running);
        clock.advance(Duration::from_millis(1));
        engine.tick().await.unwrap();
        assert_eq!(told.recv().await.unwrap(), jobfile::StopReason::TimedOut);
        match stuck.join(id, None).await.unwrap() {
            Outcome::TimedOut(e) => {
                assert_eq!(e.code, "TIMEOUT");
                assert_eq!(e.message, "attempt 1 neither finished nor sent a heartbeat within its lease of 30000 ms");
            }
            other => panic!("expected TimedOut, got {other:?}"),
        }
        assert_eq!(engine.jobs().get(id).await.unwrap().unwrap().finished_at_ms, Some(T0 + 30_000));
    }

    async fn a_delayed_job_starts_when_its_time_comes(engine, clock) {
        let h = engine
            .register(JobSpec::new("later"), |_: JobCtx, n: u32| async move { Ok(n * 2) })
            .unwrap();
        let id = h.submit(21).delay(secs(5)).await.unwrap().id;
        let info = engine.jobs().get(id).await.unwrap().unwrap();
        assert_eq!((info.state, info.run_at_ms), (JobState::Queued, Some(T0 + 5_000)));
        clock.advance(Duration::from_millis(4_999));
        engine.tick().await.unwrap();
        assert_eq!(engine.jobs().get(id).await.unwrap().unwrap().attempts, 0);
        clock.advance(Duration::from_millis(1));
        engine.tick().await.unwrap();
        assert_eq!(h.join(id, None).await.unwrap(), Outcome::Completed(42));
        assert_eq!(engine.jobs().get(id).await.unwrap().unwrap().finished_at_ms, Some(T0 + 5_000));
    }

    async fn a_finished_job_is_purged_when_its_retention_ends(engine, clock) {
        let h = engine
            .register(JobSpec::new("short").retention(secs(60)), |_: JobCtx, n: u32| async move { Ok(n) })
            .unwrap();
        let id = h.submit(7).key("k").await.unwrap().id;
        assert_eq!(h.join(id, None).await.unwrap(), Outcome::Completed(7));
        clock.advance(Duration::from_millis(59_999));
        engine.tick().await.unwrap();
        assert!(engine.jobs().get(id).await.unwrap().is_some());
        clock.advance(Duration::from_millis(1));
        engine.tick().await.unwrap();
        assert_eq!(engine.jobs().get(id).await.unwrap(), None);
        // Its key went with it: the same key makes a new job.
        let again = h.submit(8).key("k").await.unwrap();
        assert!(!again.deduplicated);
        assert_ne!(again.id, id);
    }

    async fn a_retried_job_is_purged_when_its_last_retention_ends_and_a_deleted_one_is_skipped(engine, clock) {
        let h = engine
            .register(
                JobSpec::new("flaky").max_attempts(1).retention(secs(60)),
                |_: JobCtx, _: ()| async { Err::<(), _>(JobError::permanent("no")) },
            )
            .unwrap();
        let retried = h.submit(()).await.unwrap().id;
        let deleted = h.submit(()).await.unwrap().id;
        for id in [retried, deleted] {
            assert!(matches!(h.join(id, None).await.unwrap(), Outcome::Failed(_)));
        }
        // Half way through its retention the first is retried and fails again: its retention
        // starts over. The second is deleted.
        clock.advance(Duration::from_secs(30));
        engine.jobs().retry(retried).await.unwrap();
        assert!(matches!(h.join(retried, None).await.unwrap(), Outcome::Failed(_)));
        engine.jobs().delete(deleted).await.unwrap();
        // When the first retention would have ended, nothing goes (and the deleted job's
        // entry is no error).
        clock.advance(Duration::from_secs(30));
        engine.tick().await.unwrap();
        assert!(engine.jobs().get(retried).await.unwrap().is_some());
        clock.advance(Duration::from_millis(29_999));
        engine.tick().await.unwrap();
        assert!(engine.jobs().get(retried).await.unwrap().is_some());
        clock.advance(Duration::from_millis(1));
        engine.tick().await.unwrap();
        assert_eq!(engine.jobs().get(retried).await.unwrap(), None);
    }
}
