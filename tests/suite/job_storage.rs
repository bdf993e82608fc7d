//! What jobs leave in the file, with exact values on a manual clock: listing and paging,
//! the dead-letter view, retention, compaction and the rows each job keeps.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::jobs::{AllIn, futures_join_all, names};
use common::pg::Place;
use common::{T0, open_manual, secs, table_rows, temp_file};
use jobfile::{
    EngineOptions, Error, JobCtx, JobError, JobEventKind, JobPage, JobSpec, JobState, Outcome,
};

async fn failed_jobs_can_be_listed_retried_with_a_fresh_budget_and_deleted(place: Place) {
    let (engine, _clock) = place.open_at(T0).await;
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
        .all_in(JobState::Failed)
        .await
        .iter()
        .map(|j| (j.id, j.attempts))
        .collect();
    assert_eq!(failed, [(a, 2), (b, 2)]);
    assert_eq!(
        jobs.list()
            .state(JobState::Failed)
            .oldest_first()
            .after(a)
            .limit(10)
            .await
            .unwrap()
            .jobs
            .len(),
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
    assert!(jobs.all_in(JobState::Failed).await.is_empty());
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
    assert_eq!(jobs.all_in(JobState::Queued).await[0].id, queued);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_more_than_one_batch_of_jobs_on_a_file() {
    retention_prunes_more_than_one_batch_of_jobs(Place::file()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_more_than_one_batch_of_jobs_on_postgres() {
    let Some(place) = Place::postgres() else {
        return;
    };
    retention_prunes_more_than_one_batch_of_jobs(place).await
}

async fn retention_prunes_more_than_one_batch_of_jobs(place: Place) {
    let (engine, clock) = place.open_at(T0).await;
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
    assert_eq!(jobs.all_in(JobState::Cancelled).await.len(), 520);
    clock.advance(Duration::from_millis(59_999));
    engine.tick().await.unwrap();
    assert_eq!(jobs.all_in(JobState::Cancelled).await.len(), 520);
    clock.advance(Duration::from_millis(1));
    // One pass prunes at most 512 jobs and asks for another at once; two passes clear all.
    engine.tick().await.unwrap();
    engine.tick().await.unwrap();
    assert!(jobs.all_in(JobState::Cancelled).await.is_empty());
    for id in &ids {
        assert_eq!(jobs.get(*id).await.unwrap(), None);
    }
    assert!(matches!(
        jobs.events(ids[519]).read(0, 10).await,
        Err(Error::UnknownJob { .. })
    ));
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
        // A pass prunes at most 512 jobs; four passes cover the 2,000 (the background timer
        // may run some of them first).
        for _ in 0..4 {
            engine.tick().await.unwrap();
        }
        assert!(
            engine.jobs().all_in(JobState::Completed).await.is_empty(),
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

async fn listing_by_state_pages_in_id_order_across_mixed_states(place: Place) {
    let (engine, _clock) = place.open_at(T0).await;
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
        jobs.list()
            .state(state)
            .oldest_first()
            .after(after)
            .limit(limit)
            .await
            .unwrap()
            .jobs
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

/// The ids of a page, and where the next one starts.
fn ids(page: JobPage) -> (Vec<u64>, Option<u64>) {
    (page.jobs.iter().map(|j| j.id).collect(), page.next)
}

async fn listing_filters_by_name_state_and_meta_newest_first(place: Place) {
    let (engine, _clock) = place.open_at(T0).await;
    let mail = engine
        .register(
            JobSpec::new("mail").max_attempts(1),
            |_: JobCtx, n: u32| async move {
                if n == 0 {
                    Err(JobError::permanent("bounced"))
                } else {
                    Ok(n)
                }
            },
        )
        .unwrap();
    let parked = engine.job::<u32, u32>(JobSpec::new("parked")).unwrap();
    // ids 1..=6: mail acme (fails), parked acme, mail globex, parked globex, mail acme, parked.
    let mut all = Vec::new();
    for (n, tenant) in [
        (0, "acme"),
        (1, "acme"),
        (2, "globex"),
        (3, "globex"),
        (4, "acme"),
    ] {
        let id = if n % 2 == 0 {
            let id = mail.submit(n).meta("tenant", tenant).await.unwrap().id;
            mail.join(id, None).await.unwrap();
            id
        } else {
            parked.submit(n).meta("tenant", tenant).await.unwrap().id
        };
        all.push(id);
    }
    all.push(parked.submit(5).await.unwrap().id);
    assert_eq!(all, [1, 2, 3, 4, 5, 6]);

    let jobs = engine.jobs();
    assert_eq!(
        ids(jobs.list().await.unwrap()),
        (vec![6, 5, 4, 3, 2, 1], None)
    );
    assert_eq!(
        ids(jobs.list().name("mail").await.unwrap()),
        (vec![5, 3, 1], None)
    );
    assert_eq!(
        ids(jobs.list().meta("tenant", "acme").await.unwrap()),
        (vec![5, 2, 1], None)
    );
    assert_eq!(
        ids(jobs
            .list()
            .name("parked")
            .meta("tenant", "globex")
            .await
            .unwrap()),
        (vec![4], None)
    );
    assert_eq!(
        ids(jobs
            .list()
            .name("mail")
            .state(JobState::Completed)
            .await
            .unwrap()),
        (vec![5, 3], None)
    );
    assert_eq!(
        ids(jobs
            .list()
            .state(JobState::Failed)
            .meta("tenant", "acme")
            .await
            .unwrap()),
        (vec![1], None)
    );
    assert_eq!(
        ids(jobs
            .list()
            .state(JobState::Queued)
            .oldest_first()
            .await
            .unwrap()),
        (vec![2, 4, 6], None)
    );
    assert_eq!(
        ids(jobs.list().meta("tenant", "initech").await.unwrap()),
        (vec![], None)
    );
    // A full page says where the next starts; the last page says there is no more.
    assert_eq!(
        ids(jobs.list().limit(4).await.unwrap()),
        (vec![6, 5, 4, 3], Some(3))
    );
    assert_eq!(
        ids(jobs.list().after(3).limit(4).await.unwrap()),
        (vec![2, 1], None)
    );
    assert_eq!(ids(jobs.list().limit(0).await.unwrap()), (vec![], None));
    // The page's jobs carry what `get` shows.
    let page = jobs.list().name("mail").limit(1).await.unwrap();
    assert_eq!(page.jobs[0], jobs.get(5).await.unwrap().unwrap());
}

/// On a file. (On PostgreSQL the database answers the filters from its indexes: a page is
/// always complete, and the scan limit does not apply.)
#[tokio::test]
async fn a_scan_limit_bounds_each_page_and_its_cursor_goes_on() {
    let place = Place::file();
    let (engine, _clock) = place.open_at(T0).await;
    let parked = engine.job::<u32, u32>(JobSpec::new("parked")).unwrap();
    for n in 1..=20u32 {
        let submit = parked.submit(n);
        let submit = if n == 3 {
            submit.meta("order", "o-3")
        } else {
            submit
        };
        assert_eq!(submit.await.unwrap().id, u64::from(n));
    }
    // Each page examines five jobs; only job 3 matches.
    let jobs = engine.jobs();
    let page = |after: Option<u64>| {
        let list = jobs.list().meta("order", "o-3").scan_limit(5);
        async move {
            match after {
                Some(after) => ids(list.after(after).await.unwrap()),
                None => ids(list.await.unwrap()),
            }
        }
    };
    assert_eq!(page(None).await, (vec![], Some(16)));
    assert_eq!(page(Some(16)).await, (vec![], Some(11)));
    assert_eq!(page(Some(11)).await, (vec![], Some(6)));
    assert_eq!(page(Some(6)).await, (vec![3], Some(1)));
    assert_eq!(page(Some(1)).await, (vec![], None));
}

async fn paging_never_lists_a_job_twice_while_jobs_change_state_and_arrive(place: Place) {
    let (engine, _clock) = place.open_at(T0).await;
    let parked = engine.job::<u32, u32>(JobSpec::new("parked")).unwrap();
    for n in 0..30u32 {
        parked.submit(n).await.unwrap();
    }
    let jobs = engine.jobs();
    let mut seen = Vec::new();
    let mut after = None;
    let mut round = 0u32;
    loop {
        let list = jobs.list().state(JobState::Queued).limit(7);
        let list = match after {
            Some(id) => list.after(id),
            None => list,
        };
        let page = list.await.unwrap();
        seen.extend(page.jobs.iter().map(|j| j.id));
        let Some(next) = page.next else { break };
        after = Some(next);
        // Between pages: new jobs arrive (above the cursor: not on this walk), one job behind
        // the cursor and one ahead of it are cancelled.
        round += 1;
        parked.submit(100 + round).await.unwrap();
        parked.cancel(next + 1, "behind the cursor").await.unwrap();
        if next > 2 {
            parked
                .cancel(next - 2, "ahead of the cursor")
                .await
                .unwrap();
        }
    }
    let mut unique = seen.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "listed twice: {seen:?}");
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "newest first: {seen:?}"
    );
    // Every job still queued at the end, from the walk's start down, was listed.
    let still: Vec<u64> = jobs
        .list()
        .state(JobState::Queued)
        .limit(1_000)
        .await
        .unwrap()
        .jobs
        .iter()
        .map(|j| j.id)
        .filter(|id| *id <= 30)
        .collect();
    assert!(
        still.iter().all(|id| seen.contains(id)),
        "{still:?} vs {seen:?}"
    );
    assert!(still.len() < 30 && seen.len() > still.len());
}

async fn a_large_queue_is_listed_by_walking_ids_with_the_same_pages(place: Place) {
    let (engine, _clock) = place.open_at(T0).await;
    let parked = engine.job::<u32, ()>(JobSpec::new("parked")).unwrap();
    // 10,020 jobs, every tenth of the newest 100 then cancelled: 10,010 queued, more than the
    // indexes are read whole for.
    let submitted: Vec<u64> = parked
        .submit_many((0..10_020).map(|n| parked.submit(n)))
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(submitted.len(), 10_020);
    for id in submitted.iter().rev().take(100).step_by(10) {
        parked.cancel(*id, "thinned").await.unwrap();
    }
    let jobs = engine.jobs();
    let page = jobs.list().state(JobState::Queued).limit(5).await.unwrap();
    assert_eq!(
        ids(page),
        (vec![10_019, 10_018, 10_017, 10_016, 10_015], Some(10_015))
    );
    // 10_010 is cancelled: the walk passes over it.
    let page = jobs
        .list()
        .state(JobState::Queued)
        .limit(3)
        .after(10_012)
        .await
        .unwrap();
    assert_eq!(ids(page), (vec![10_011, 10_009, 10_008], Some(10_008)));
    let page = jobs
        .list()
        .state(JobState::Queued)
        .oldest_first()
        .limit(2)
        .await
        .unwrap();
    assert_eq!(ids(page), (vec![1, 2], Some(2)));
    // A bounded walk: the newest 20 ids hold 18 queued jobs. (On PostgreSQL the page is
    // answered from the index whole: the scan limit does not apply.)
    let page = jobs
        .list()
        .state(JobState::Queued)
        .limit(100)
        .scan_limit(20)
        .await
        .unwrap();
    if place.is_postgres() {
        assert_eq!(page.jobs.len(), 100);
        assert_eq!(page.next, Some(9_911));
    } else {
        assert_eq!(page.jobs.len(), 18);
        assert_eq!(page.next, Some(10_001));
    }
}

/// The counts as (name, queued, running, completed, failed, cancelled, timed out).
async fn counts(engine: &jobfile::Engine) -> Vec<(String, u64, u64, u64, u64, u64, u64)> {
    engine
        .jobs()
        .counts()
        .await
        .unwrap()
        .into_iter()
        .map(|c| {
            (
                c.name,
                c.queued,
                c.running,
                c.completed,
                c.failed,
                c.cancelled,
                c.timed_out,
            )
        })
        .collect()
}

async fn counts_by_definition_and_state_follow_every_change_and_survive_a_restart(place: Place) {
    let s = |n: &str| n.to_string();
    {
        let (engine, clock) = place.open_at(T0).await;
        let mail = engine
            .register(
                JobSpec::new("mail").max_attempts(1).retention(secs(60)),
                |_: JobCtx, n: u32| async move {
                    if n == 0 {
                        Err(JobError::permanent("bounced"))
                    } else {
                        Ok(n)
                    }
                },
            )
            .unwrap();
        let (release, gate) = tokio::sync::watch::channel(false);
        let slow = engine
            .register(
                JobSpec::new("slow").lease(secs(10)).concurrency(2),
                move |_: JobCtx, _: u32| {
                    let mut gate = gate.clone();
                    async move {
                        let _ = gate.wait_for(|open| *open).await;
                        Ok(())
                    }
                },
            )
            .unwrap();
        let parked = engine.job::<u32, ()>(JobSpec::new("parked")).unwrap();
        assert_eq!(counts(&engine).await, []);
        for n in [0, 1, 2] {
            let id = mail.submit(n).await.unwrap().id;
            mail.join(id, None).await.unwrap();
        }
        let running: Vec<u64> = futures_join_all((0..2).map(|n| {
            let slow = slow.clone();
            async move { slow.submit(n).await.unwrap().id }
        }))
        .await;
        for id in &running {
            wait_for_state(&engine, *id, JobState::Running).await;
        }
        let waiting = parked.submit(1).await.unwrap().id;
        parked.submit(2).delay(secs(30)).await.unwrap();
        parked.cancel(waiting, "no").await.unwrap();
        assert_eq!(
            counts(&engine).await,
            [
                (s("mail"), 0, 0, 2, 1, 0, 0),
                (s("parked"), 1, 0, 0, 0, 1, 0),
                (s("slow"), 0, 2, 0, 0, 0, 0),
            ]
        );
        // A retry moves the failed job back to the queue (no handler runs it: mail's worker
        // takes it at once and it fails again, so wait for that).
        engine.jobs().retry(1).await.unwrap();
        mail.join(1, None).await.unwrap();
        assert_eq!(counts(&engine).await[0], (s("mail"), 0, 0, 2, 1, 0, 0));
        // The lease of the slow jobs runs out: timed out.
        clock.advance(secs(11));
        engine.tick().await.unwrap();
        assert_eq!(counts(&engine).await[2], (s("slow"), 0, 0, 0, 0, 0, 2));
        // Retention prunes mail's finished jobs: its counts go to zero, and it is not listed.
        clock.advance(secs(50));
        engine.tick().await.unwrap();
        let after = counts(&engine).await;
        assert!(after.iter().all(|c| c.0 != "mail"), "{after:?}");
        release.send(true).unwrap();
        engine.shutdown(secs(5)).await.unwrap();
    }
    let (engine, _clock) = place.open_at(T0).await;
    let now = counts(&engine).await;
    assert_eq!(
        now,
        [
            (s("parked"), 1, 0, 0, 0, 1, 0),
            (s("slow"), 0, 0, 0, 0, 0, 2),
        ]
    );
}

/// Waits until job `id` is in `state`.
async fn wait_for_state(engine: &jobfile::Engine, id: u64, state: JobState) {
    let mut events = engine.jobs().events(id).follow(0);
    loop {
        if engine.jobs().get(id).await.unwrap().unwrap().state == state {
            return;
        }
        events.next().await.unwrap().unwrap();
    }
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
    // Heartbeats: events that are never coalesced (progress within a second would be).
    let handler = |ctx: JobCtx, n: u8| async move {
        for _ in 0..n {
            ctx.heartbeat().await?;
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
        want.extend(["heartbeat"; 10]);
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
        .all_in(JobState::Completed)
        .await
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
    assert!(engine.jobs().all_in(JobState::Completed).await.is_empty());
    engine.shutdown(secs(5)).await.unwrap();
    drop(engine);
    assert_eq!(event_rows(&path, short) + event_rows(&path, long), 0);
    let db = redb::Database::open(&path).unwrap();
    let rtx = redb::ReadableDatabase::begin_read(&db).unwrap();
    let finished: redb::TableDefinition<(u8, u64), ()> = redb::TableDefinition::new("job_finished");
    let finished = rtx.open_table(finished).unwrap();
    assert_eq!(redb::ReadableTableMetadata::len(&finished).unwrap(), 0);
}

#[tokio::test]
async fn a_finished_job_leaves_its_record_and_retention_entry_only_and_a_failed_one_is_indexed() {
    let (_dir, path) = temp_file();
    let (ids, failed) = {
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
        (ids, failed)
    };
    // What the write path saves: events in the records, no lease or ready entry left over, and
    // only the failed job in the finished index; every job has its retention entry, grouped by
    // the batch that ended it (the old one-row-per-job index stays empty).
    let purges = purge_entries(&path);
    let mut purged_ids: Vec<u64> = purges
        .iter()
        .flat_map(|(_, g)| g.iter().map(|e| e.1))
        .collect();
    purged_ids.sort();
    let mut all_ids = ids;
    all_ids.push(failed);
    all_ids.sort();
    assert_eq!(purged_ids, all_ids);
    for (key, group) in &purges {
        // Keyed by its earliest purge instant.
        assert_eq!(key.0, group.iter().map(|e| e.0).min().unwrap());
    }
    assert_eq!(
        table_rows(&path, "job_"),
        [
            ("job_batch_members", 0),
            ("job_batches", 0),
            ("job_delayed", 0),
            ("job_dependents", 0),
            ("job_events", 0),
            ("job_finished", 1),
            ("job_flow", 0),
            ("job_inputs", 0),
            ("job_keys", 0),
            ("job_leases", 0),
            ("job_purges", purges.len() as u64),
            ("job_ready", 0),
            ("job_retention", 0),
            ("job_steps", 0),
        ]
        .map(|(t, n)| (t.to_string(), n))
    );
    assert_eq!(table_rows(&path, "jobs"), [("jobs".to_string(), 26)]);
}

/// The rows of the grouped retention index: (earliest purge instant, group number) and the
/// group's (purge instant, job id) entries.
type PurgeGroup = ((u64, u64), Vec<(u64, u64)>);

fn purge_entries(path: &std::path::Path) -> Vec<PurgeGroup> {
    use redb::{ReadableDatabase, ReadableTable};
    let db = redb::Database::open(path).unwrap();
    let rtx = db.begin_read().unwrap();
    let def: redb::TableDefinition<(u64, u64), &[u8]> = redb::TableDefinition::new("job_purges");
    let table = rtx.open_table(def).unwrap();
    let word = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap());
    table
        .iter()
        .unwrap()
        .map(|row| {
            let (key, value) = row.unwrap();
            let entries = value
                .value()
                .chunks_exact(16)
                .map(|e| (word(&e[..8]), word(&e[8..])))
                .collect();
            (key.value(), entries)
        })
        .collect()
}

async fn progress_in_items_is_kept_in_the_record_and_the_events_across_a_reopen(place: Place) {
    let id = {
        let (engine, clock) = place.open_at(T0).await;
        let h = engine
            .register(JobSpec::new("import"), |ctx: JobCtx, _: ()| async move {
                ctx.progress(5, "counting").await?;
                ctx.progress_items(1_234, 50_000, "rows").await?;
                Ok(())
            })
            .unwrap();
        let id = h.submit(()).await.unwrap().id;
        h.join(id, None).await.unwrap();
        drop(clock);
        engine.shutdown(secs(5)).await.unwrap();
        id
    };
    let (engine, _clock) = place.open_at(T0).await;
    let info = engine.jobs().get(id).await.unwrap().unwrap();
    let progress = info.progress.unwrap();
    assert_eq!(
        (progress.percent, progress.stage.as_str(), progress.items),
        (2, "rows", Some(jobfile::Items::new(1_234, 50_000)))
    );
    // Both reports fell in the same second of the manual clock: one event, the latest.
    let events = engine.jobs().events(id).read(0, 10).await.unwrap();
    assert_eq!(
        names(&events),
        ["submitted", "started", "progress", "completed"]
    );
    assert_eq!(
        events[2].kind,
        JobEventKind::Progress {
            percent: 2,
            stage: "rows".into(),
            items: Some(jobfile::Items::new(1_234, 50_000)),
        }
    );
    engine.shutdown(secs(5)).await.unwrap();
}

in_both_places!(
    failed_jobs_can_be_listed_retried_with_a_fresh_budget_and_deleted,
    listing_by_state_pages_in_id_order_across_mixed_states,
    listing_filters_by_name_state_and_meta_newest_first,
    paging_never_lists_a_job_twice_while_jobs_change_state_and_arrive,
    a_large_queue_is_listed_by_walking_ids_with_the_same_pages,
    counts_by_definition_and_state_follow_every_change_and_survive_a_restart,
    progress_in_items_is_kept_in_the_record_and_the_events_across_a_reopen,
);
