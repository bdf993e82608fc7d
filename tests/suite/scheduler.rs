//! The cron scheduler on a manual clock: on-time slots, every misfire policy across a downtime,
//! daylight saving in Europe/Berlin and America/New_York with exact UTC instants,
//! re-registration, manual triggers, strictness and bad input. Each test runs on a file and on
//! a PostgreSQL schema (`in_both_places!`), with the same assertions where the backends agree.

use std::time::Duration;

use crate::common;

use chrono::{TimeZone, Utc};
use common::pg::Place;
use jobfile::{
    Engine, EngineOptions, Error, JobCtx, JobHandle, JobSpec, ManualClock, Misfire, Registered,
    ScheduleSpec,
};

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> u64 {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
        .unwrap()
        .timestamp_millis() as u64
}

fn report_job(engine: &Engine) -> JobHandle<String, ()> {
    engine
        .register(
            JobSpec::new("report").concurrency(8),
            |_: JobCtx, _: String| async { Ok(()) },
        )
        .unwrap()
}

/// The keys of every job submitted so far, in submit order.
async fn job_keys(engine: &Engine) -> Vec<String> {
    // Every state, in one snapshot: a clock jumped by hours can time out an attempt still
    // finishing.
    let all = engine
        .jobs()
        .list()
        .oldest_first()
        .limit(usize::MAX)
        .await
        .unwrap()
        .jobs;
    all.into_iter().filter_map(|j| j.key).collect()
}

fn slot_keys(id: &str, slots: &[u64]) -> Vec<String> {
    slots.iter().map(|s| format!("{id}:{s}")).collect()
}

async fn each_slot_submits_one_job_on_time(place: Place) {
    let start = utc(2026, 1, 1, 0, 0) + 1_000;
    let (engine, clock) = place.open_at(start).await;
    let job = report_job(&engine);
    let sched = engine.scheduler();
    let created = sched
        .register(
            ScheduleSpec::new("hourly", "0 * * * *"),
            &job,
            "daily numbers".into(),
        )
        .await
        .unwrap();
    assert_eq!(created, Registered::Created);
    let h1 = utc(2026, 1, 1, 1, 0);
    assert_eq!(
        sched.get("hourly").await.unwrap().unwrap().next_run_ms,
        Some(h1)
    );
    clock.set(h1 - 1);
    sched.tick().await.unwrap();
    assert!(job_keys(&engine).await.is_empty());
    clock.set(h1);
    sched.tick().await.unwrap();
    assert_eq!(job_keys(&engine).await, slot_keys("hourly", &[h1]));
    // The background timer alone also dispatches (no tick), and a late pass runs every due slot.
    clock.set(utc(2026, 1, 1, 3, 0) + 5);
    sched.tick().await.unwrap();
    assert_eq!(
        job_keys(&engine).await,
        slot_keys(
            "hourly",
            &[h1, utc(2026, 1, 1, 2, 0), utc(2026, 1, 1, 3, 0)]
        )
    );
    let info = sched.get("hourly").await.unwrap().unwrap();
    assert_eq!((info.dispatched, info.dropped), (3, 0));
    assert_eq!(info.next_run_ms, Some(utc(2026, 1, 1, 4, 0)));
}

/// Registers an hourly schedule at 00:00:01, closes, and reopens 10.5 hours later: slots 01:00
/// to 10:00 were missed.
async fn after_downtime(
    place: &Place,
    misfire: Misfire,
    max_catch_up: u32,
) -> (Vec<String>, u64, Option<u64>) {
    let place = place.fresh();
    {
        let (engine, _clock) = place.open_at(utc(2026, 1, 1, 0, 0) + 1_000).await;
        let job = report_job(&engine);
        engine
            .scheduler()
            .register(
                ScheduleSpec::new("h", "0 * * * *")
                    .misfire(misfire)
                    .max_catch_up(max_catch_up),
                &job,
                "x".into(),
            )
            .await
            .unwrap();
        engine.shutdown(Duration::from_secs(1)).await.unwrap();
    }
    let (engine, clock) = place.open_at(utc(2026, 1, 1, 10, 30)).await;
    let _job = report_job(&engine);
    engine.scheduler().tick().await.unwrap();
    let info = engine.scheduler().get("h").await.unwrap().unwrap();
    assert_eq!(info.next_run_ms, Some(utc(2026, 1, 1, 11, 0)));
    // The next on-time slot runs whatever the policy.
    let before = job_keys(&engine).await.len();
    clock.set(utc(2026, 1, 1, 11, 0));
    engine.scheduler().tick().await.unwrap();
    let keys = job_keys(&engine).await;
    assert_eq!(keys.len(), before + 1);
    assert_eq!(
        keys.last().unwrap(),
        &format!("h:{}", utc(2026, 1, 1, 11, 0))
    );
    (keys[..before].to_vec(), info.dropped, info.next_run_ms)
}

async fn misfire_policies_after_a_downtime_of_ten_slots(place: Place) {
    let hour = |h| utc(2026, 1, 1, h, 0);
    let (skip, dropped, _) = after_downtime(&place, Misfire::Skip, 100).await;
    assert_eq!((skip, dropped), (vec![], 10));
    let (one, dropped, _) = after_downtime(&place, Misfire::CatchUpOne, 100).await;
    assert_eq!((one, dropped), (slot_keys("h", &[hour(10)]), 9));
    let (all, dropped, _) = after_downtime(&place, Misfire::CatchUpAll, 100).await;
    let every: Vec<u64> = (1..=10).map(hour).collect();
    assert_eq!((all, dropped), (slot_keys("h", &every), 0));
    let (bounded, dropped, _) = after_downtime(&place, Misfire::CatchUpAll, 4).await;
    assert_eq!(
        (bounded, dropped),
        (slot_keys("h", &[hour(1), hour(2), hour(3), hour(4)]), 6)
    );
}

async fn next_runs(place: &Place, cron: &str, zone: &str, from: u64, n: usize) -> Vec<u64> {
    let place = place.fresh();
    let (engine, clock) = place.open_at(from).await;
    let job = report_job(&engine);
    let sched = engine.scheduler();
    sched
        .register(ScheduleSpec::new("dst", cron).zone(zone), &job, "x".into())
        .await
        .unwrap();
    let mut out = Vec::new();
    for _ in 0..n {
        let next = sched
            .get("dst")
            .await
            .unwrap()
            .unwrap()
            .next_run_ms
            .unwrap();
        out.push(next);
        clock.set(next);
        sched.tick().await.unwrap();
    }
    // Exactly one job per slot.
    assert_eq!(job_keys(&engine).await, slot_keys("dst", &out));
    out
}

async fn daylight_saving_in_berlin_skipped_time_runs_once_at_the_end_of_the_gap(place: Place) {
    // 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist that day.
    let runs = next_runs(
        &place,
        "30 2 * * *",
        "Europe/Berlin",
        utc(2026, 3, 27, 12, 0),
        3,
    )
    .await;
    assert_eq!(
        runs,
        [
            utc(2026, 3, 28, 1, 30), // 02:30 CET
            utc(2026, 3, 29, 1, 0),  // 03:00 CEST, the end of the gap
            utc(2026, 3, 30, 0, 30), // 02:30 CEST
        ]
    );
}

async fn daylight_saving_in_berlin_repeated_time_runs_once(place: Place) {
    // 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice.
    let runs = next_runs(
        &place,
        "30 2 * * *",
        "Europe/Berlin",
        utc(2026, 10, 24, 12, 0),
        2,
    )
    .await;
    assert_eq!(runs, [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]);
}

async fn daylight_saving_in_new_york_both_transitions(place: Place) {
    // 2026-03-08: 02:00 EST jumps to 03:00 EDT.
    let spring = next_runs(
        &place,
        "30 2 * * *",
        "America/New_York",
        utc(2026, 3, 7, 12, 0),
        2,
    )
    .await;
    assert_eq!(spring, [utc(2026, 3, 8, 7, 0), utc(2026, 3, 9, 6, 30)]);
    // 2026-11-01: 02:00 EDT falls back to 01:00 EST; 01:30 happens twice.
    let fall = next_runs(
        &place,
        "30 1 * * *",
        "America/New_York",
        utc(2026, 10, 31, 12, 0),
        2,
    )
    .await;
    assert_eq!(fall, [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]);
}

async fn re_registering_keeps_or_recomputes_the_next_slot(place: Place) {
    let (engine, clock) = place.open_at(utc(2026, 1, 1, 0, 30)).await;
    let job = report_job(&engine);
    let sched = engine.scheduler();
    sched
        .register(ScheduleSpec::new("r", "0 */6 * * *"), &job, "a".into())
        .await
        .unwrap();
    assert_eq!(
        sched.get("r").await.unwrap().unwrap().next_run_ms,
        Some(utc(2026, 1, 1, 6, 0))
    );
    clock.set(utc(2026, 1, 1, 2, 0));
    let same = sched
        .register(
            ScheduleSpec::new("r", "0 */6 * * *").misfire(Misfire::CatchUpAll),
            &job,
            "b".into(),
        )
        .await
        .unwrap();
    assert_eq!(same, Registered::Updated);
    let info = sched.get("r").await.unwrap().unwrap();
    assert_eq!(
        (info.next_run_ms, info.misfire),
        (Some(utc(2026, 1, 1, 6, 0)), Misfire::CatchUpAll)
    );
    sched
        .register(ScheduleSpec::new("r", "15 * * * *"), &job, "c".into())
        .await
        .unwrap();
    assert_eq!(
        sched.get("r").await.unwrap().unwrap().next_run_ms,
        Some(utc(2026, 1, 1, 2, 15))
    );
    sched
        .register(
            ScheduleSpec::new("r", "15 * * * *").zone("Asia/Kolkata"),
            &job,
            "c".into(),
        )
        .await
        .unwrap();
    // Kolkata is UTC+5:30: minute 15 local is minute 45 UTC.
    assert_eq!(
        sched.get("r").await.unwrap().unwrap().next_run_ms,
        Some(utc(2026, 1, 1, 2, 45))
    );
    assert_eq!(sched.list().await.unwrap().len(), 1);
    assert!(sched.unregister("r").await.unwrap());
    assert!(!sched.unregister("r").await.unwrap());
    assert_eq!(sched.get("r").await.unwrap(), None);
}

async fn trigger_now_twice_with_one_key_gives_one_job_and_leaves_the_cron_alone(place: Place) {
    let (engine, _clock) = place.open_at(utc(2026, 1, 1, 0, 30)).await;
    let job = report_job(&engine);
    let sched = engine.scheduler();
    sched
        .register(ScheduleSpec::new("t", "0 * * * *"), &job, "in".into())
        .await
        .unwrap();
    let a = sched.trigger_now("t", "backfill-1").await.unwrap();
    let b = sched.trigger_now("t", "backfill-1").await.unwrap();
    assert_eq!((b.id, b.deduplicated), (a.id, true));
    assert_eq!(job_keys(&engine).await, ["manual:t:backfill-1"]);
    assert_eq!(
        engine.jobs().get(a.id).await.unwrap().unwrap().input_json,
        b"\"in\""
    );
    assert_eq!(
        sched.get("t").await.unwrap().unwrap().next_run_ms,
        Some(utc(2026, 1, 1, 1, 0))
    );
    assert!(matches!(
        sched.trigger_now("nope", "k").await,
        Err(Error::UnknownSchedule { id }) if id == "nope"
    ));
}

async fn without_a_handler_strict_holds_the_slot_and_non_strict_drops_it(place: Place) {
    let (engine, clock) = place.open_at(utc(2026, 1, 1, 0, 30)).await;
    let nobody = engine.job::<String, ()>(JobSpec::new("unhandled")).unwrap();
    let sched = engine.scheduler();
    sched
        .register(
            ScheduleSpec::new("strict", "0 * * * *"),
            &nobody,
            "x".into(),
        )
        .await
        .unwrap();
    sched
        .register(
            ScheduleSpec::new("loose", "0 * * * *").strict(false),
            &nobody,
            "x".into(),
        )
        .await
        .unwrap();
    clock.set(utc(2026, 1, 1, 1, 0));
    let report = sched.tick().await.unwrap();
    assert!(job_keys(&engine).await.is_empty());
    let strict = sched.get("strict").await.unwrap().unwrap();
    assert_eq!(strict.next_run_ms, Some(utc(2026, 1, 1, 1, 0)), "still due");
    let loose = sched.get("loose").await.unwrap().unwrap();
    if place.is_postgres() {
        // Another node may have the handler: a node without it leaves every schedule of the
        // job to one that has it, strict or not.
        assert_eq!((report.submitted, report.held), (0, 2));
        assert_eq!(
            (loose.next_run_ms, loose.dropped),
            (Some(utc(2026, 1, 1, 1, 0)), 0)
        );
    } else {
        // (The background timer may have settled the non-strict one first; the strict one
        // stays.)
        assert_eq!((report.submitted, report.held), (0, 1));
        assert_eq!(
            (loose.next_run_ms, loose.dropped),
            (Some(utc(2026, 1, 1, 2, 0)), 1)
        );
    }
}

async fn bad_cron_expressions_and_zones_are_typed_errors_naming_the_problem(place: Place) {
    let (engine, _clock) = place.open_at(utc(2026, 1, 1, 0, 30) + 1_000).await;
    let job = report_job(&engine);
    let sched = engine.scheduler();
    // The last two parse but never match: February 30 and 31.
    for bad in [
        "61 * * * *",
        "* * * *",
        "0 0 * * * * *",
        "every hour",
        "0 0 30 2 *",
        "0 12 31 2 *",
    ] {
        match sched
            .register(ScheduleSpec::new("b", bad), &job, "x".into())
            .await
        {
            Err(Error::InvalidArgument {
                what: "cron",
                detail,
            }) => {
                assert!(detail.contains(bad), "{detail}")
            }
            other => panic!("{bad:?}: expected a cron error, got {other:?}"),
        }
    }
    match sched
        .register(
            ScheduleSpec::new("b", "0 * * * *").zone("Mars/Olympus"),
            &job,
            "x".into(),
        )
        .await
    {
        Err(Error::InvalidArgument {
            what: "time zone",
            detail,
        }) => assert!(detail.contains("Mars/Olympus")),
        other => panic!("expected a zone error, got {other:?}"),
    }
    // Six fields: seconds first. Opened at 00:30:01, the next slot is 00:30:10.
    sched
        .register(
            ScheduleSpec::new("secs", "*/10 * * * * *"),
            &job,
            "x".into(),
        )
        .await
        .unwrap();
    assert_eq!(
        sched.get("secs").await.unwrap().unwrap().next_run_ms,
        Some(utc(2026, 1, 1, 0, 30) + 10_000)
    );
    assert_eq!(
        sched.list().await.unwrap().len(),
        1,
        "nothing written for the bad ones"
    );
}

async fn metrics_count_what_the_scheduler_did_and_a_panicking_callback_is_ignored(place: Place) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    let clock = ManualClock::new(utc(2026, 1, 1, 0, 30));
    let options = EngineOptions::new()
        .clock(clock.clone())
        .on_scheduler_metric(move |m| {
            s.lock().unwrap().push(format!("{m:?}"));
            panic!("a broken metrics sink");
        });
    let engine = place.open(options).await;
    let job = report_job(&engine);
    let sched = engine.scheduler();
    sched
        .register(ScheduleSpec::new("m", "0 * * * *"), &job, "x".into())
        .await
        .unwrap();
    sched
        .register(ScheduleSpec::new("m", "0 * * * *"), &job, "y".into())
        .await
        .unwrap();
    sched.trigger_now("m", "k").await.unwrap();
    sched.trigger_now("m", "k").await.unwrap();
    assert!(matches!(
        sched.trigger_now("gone", "k").await,
        Err(jobfile::Error::UnknownSchedule { id }) if id == "gone"
    ));
    clock.set(utc(2026, 1, 1, 1, 0));
    sched.tick().await.unwrap();
    assert!(sched.unregister("m").await.unwrap());
    let m = sched.metrics();
    assert_eq!(
        (m.leader_acquired, m.registered, m.updated, m.unregistered),
        (1, 1, 1, 1)
    );
    assert_eq!(
        (m.trigger_submitted, m.trigger_rejected, m.trigger_failed),
        (1, 1, 1)
    );
    assert_eq!((m.dispatch_submitted, m.dispatch_failed), (1, 0));
    let seen = seen.lock().unwrap();
    assert!(seen[0].starts_with("LeaderAcquired"), "{seen:?}");
    assert!(
        seen.iter().any(|e| e.starts_with("DispatchSubmitted")),
        "{seen:?}"
    );
}

async fn a_schedule_that_cannot_be_read_is_retried_then_dead_lettered_and_the_others_go_on(
    place: Place,
) {
    let start = utc(2026, 1, 1, 0, 0) + 500;
    {
        let (engine, _clock) = place.open_at(start).await;
        let job = report_job(&engine);
        let sched = engine.scheduler();
        for id in ["bad", "good"] {
            sched
                .register(ScheduleSpec::new(id, "* * * * *"), &job, id.into())
                .await
                .unwrap();
        }
        engine.shutdown(Duration::from_secs(1)).await.unwrap();
    }
    // A build with other time-zone rules left a zone this one does not know.
    match &place {
        Place::File { path, .. } => assert!(
            jobfile::testing::rewrite_schedule_expression(path, "bad", "* * * * *", "Mars/Olympus")
                .unwrap()
        ),
        Place::Postgres(schema) => {
            let client = schema.client().await;
            let row = client
                .query_one("SELECT record FROM schedules WHERE id = 'bad'", &[])
                .await
                .unwrap();
            let record =
                jobfile::testing::rewrite_schedule_record(row.get(0), "* * * * *", "Mars/Olympus")
                    .unwrap();
            client
                .execute(
                    "UPDATE schedules SET record = $1 WHERE id = 'bad'",
                    &[&record],
                )
                .await
                .unwrap();
        }
        Place::Memory => unreachable!("this test reopens: not in memory"),
    }
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    let clock = ManualClock::new(start);
    let options = EngineOptions::new()
        .clock(clock.clone())
        .on_scheduler_metric(move |m| s.lock().unwrap().push(m.clone()));
    let engine = place.open(options).await;
    let job = report_job(&engine);
    let sched = engine.scheduler();
    let m1 = utc(2026, 1, 1, 0, 1);
    // Failures at m1, then retries 1, 2, 4 and 8 s later; the fifth dead-letters the slot.
    let mut at = m1;
    for wait in [1_000, 2_000, 4_000, 8_000] {
        clock.set(at);
        sched.tick().await.unwrap();
        clock.set(at + wait - 1);
        sched.tick().await.unwrap();
        at += wait;
    }
    assert_eq!(
        sched.metrics().dispatch_failed,
        4,
        "no retry before its time"
    );
    assert!(sched.dead_letters().await.unwrap().is_empty());
    clock.set(at);
    sched.tick().await.unwrap();
    let m = sched.metrics();
    assert_eq!((m.dispatch_failed, m.dead_lettered), (5, 1));
    let dead = sched.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (
            dead[0].id.as_str(),
            dead[0].slot_ms,
            dead[0].failures,
            dead[0].at_ms
        ),
        ("bad", m1, jobfile::MAX_DISPATCH_FAILURES, m1 + 15_000)
    );
    assert!(
        dead[0].error.contains("Mars/Olympus"),
        "names the zone: {}",
        dead[0].error
    );
    let failures: Vec<u32> = seen
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            jobfile::SchedulerMetric::DispatchFailed { id, failures, .. } if id == "bad" => {
                Some(*failures)
            }
            _ => None,
        })
        .collect();
    assert_eq!(failures, [1, 2, 3, 4, 5]);
    // The schedule stopped; the other one ran its slot on time all along.
    assert_eq!(sched.get("bad").await.unwrap().unwrap().next_run_ms, None);
    let m2 = utc(2026, 1, 1, 0, 2);
    clock.set(m2);
    sched.tick().await.unwrap();
    assert_eq!(job_keys(&engine).await, slot_keys("good", &[m1, m2]));
    assert_eq!(
        sched.metrics().dispatch_failed,
        5,
        "a stopped schedule is not retried"
    );

    // Registering it again with a zone that reads restarts it; the dead letter stays until
    // cleared.
    clock.set(m2 + 500);
    sched
        .register(ScheduleSpec::new("bad", "* * * * *"), &job, "bad".into())
        .await
        .unwrap();
    let m3 = utc(2026, 1, 1, 0, 3);
    assert_eq!(
        sched.get("bad").await.unwrap().unwrap().next_run_ms,
        Some(m3)
    );
    clock.set(m3);
    sched.tick().await.unwrap();
    assert_eq!(
        job_keys(&engine).await,
        [
            slot_keys("good", &[m1, m2]),
            slot_keys("bad", &[m3]),
            slot_keys("good", &[m3])
        ]
        .concat(),
        "one slot's schedules go in id order"
    );
    assert_eq!(sched.dead_letters().await.unwrap().len(), 1);
    assert_eq!(sched.clear_dead_letters("bad").await.unwrap(), 1);
    assert!(sched.dead_letters().await.unwrap().is_empty());
    assert_eq!(sched.clear_dead_letters("bad").await.unwrap(), 0);
}

async fn a_schedule_whose_record_does_not_decode_is_dead_lettered_and_can_be_removed(place: Place) {
    let start = utc(2026, 1, 1, 0, 0) + 500;
    let m1 = utc(2026, 1, 1, 0, 1);
    {
        let (engine, _clock) = place.open_at(start).await;
        let job = report_job(&engine);
        engine
            .scheduler()
            .register(ScheduleSpec::new("good", "* * * * *"), &job, "g".into())
            .await
            .unwrap();
        engine.shutdown(Duration::from_secs(1)).await.unwrap();
    }
    // Damage: a schedule record of garbage, due at m1.
    if let Place::Postgres(schema) = &place {
        schema
            .execute(
                "INSERT INTO schedules (id, record, next_run) VALUES ('broken', '\\xffffff', $1)",
                &[&(m1 as i64)],
            )
            .await;
    } else {
        let db = redb::Database::open(place.path()).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(redb::TableDefinition::<&str, &[u8]>::new("schedules"))
            .unwrap()
            .insert("broken", [0xff_u8, 0xff, 0xff].as_slice())
            .unwrap();
        tx.open_table(redb::TableDefinition::<(u64, &str), ()>::new(
            "schedule_due",
        ))
        .unwrap()
        .insert((m1, "broken"), ())
        .unwrap();
        tx.commit().unwrap();
    }
    let (engine, clock) = place.open_at(start).await;
    report_job(&engine);
    let sched = engine.scheduler();
    let mut at = m1;
    for wait in [1_000, 2_000, 4_000, 8_000, 0] {
        clock.set(at);
        sched.tick().await.unwrap();
        at += wait;
    }
    let dead = sched.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].id.as_str(), dead[0].slot_ms), ("broken", m1));
    assert!(dead[0].error.contains("corrupt"), "{}", dead[0].error);
    assert_eq!(job_keys(&engine).await, slot_keys("good", &[m1]));
    assert!(matches!(
        sched.get("broken").await,
        Err(Error::Corrupt { .. })
    ));
    assert!(sched.unregister("broken").await.unwrap());
    assert_eq!(sched.list().await.unwrap().len(), 1);
}

async fn many_held_schedules_do_not_block_a_due_one_behind_them(place: Place) {
    let (engine, clock) = place.open_at(utc(2026, 1, 1, 0, 30)).await;
    let nobody = engine.job::<String, ()>(JobSpec::new("unhandled")).unwrap();
    let job = report_job(&engine);
    let sched = engine.scheduler();
    // More held schedules than one pass handles, all sorting before the one that can run.
    for i in 0..300 {
        sched
            .register(
                ScheduleSpec::new(format!("held-{i:03}"), "0 * * * *"),
                &nobody,
                "x".into(),
            )
            .await
            .unwrap();
    }
    sched
        .register(ScheduleSpec::new("runs", "0 * * * *"), &job, "x".into())
        .await
        .unwrap();
    let h1 = utc(2026, 1, 1, 1, 0);
    clock.set(h1);
    sched.tick().await.unwrap();
    assert_eq!(job_keys(&engine).await, slot_keys("runs", &[h1]));
    assert_eq!(
        sched.get("held-299").await.unwrap().unwrap().next_run_ms,
        Some(h1)
    );
}

async fn two_weeks_of_missed_per_second_slots_are_all_counted(place: Place) {
    let t = utc(2026, 1, 1, 0, 0);
    {
        let (engine, _clock) = place.open_at(t + 500).await;
        let job = report_job(&engine);
        engine
            .scheduler()
            .register(
                ScheduleSpec::new("s", "* * * * * *")
                    .misfire(Misfire::CatchUpAll)
                    .max_catch_up(100),
                &job,
                "x".into(),
            )
            .await
            .unwrap();
        engine.shutdown(Duration::from_secs(1)).await.unwrap();
    }
    let fortnight = 14 * 86_400_000;
    let (engine, _clock) = place.open_at(t + fortnight + 500).await;
    let _job = report_job(&engine);
    engine.scheduler().tick().await.unwrap();
    // Slots t+1 s to t+14 d were missed: 1,209,600 of them; the oldest 100 run.
    let first_100: Vec<u64> = (1..=100).map(|s| t + s * 1_000).collect();
    assert_eq!(job_keys(&engine).await, slot_keys("s", &first_100));
    let info = engine.scheduler().get("s").await.unwrap().unwrap();
    assert_eq!((info.dispatched, info.dropped), (100, 1_209_500));
    assert_eq!(info.next_run_ms, Some(t + fortnight + 1_000));
}

/// A per-minute schedule, running: a minute passes, then the wall clock jumps 10 minutes (a
/// laptop waking, an NTP step), then a minute passes again. Returns the keys and the dropped
/// count.
async fn across_a_jump(place: &Place, misfire: Misfire, max_catch_up: u32) -> (Vec<String>, u64) {
    let place = place.fresh();
    let (engine, clock) = place.open_at(utc(2026, 1, 1, 0, 0) + 1_000).await;
    let job = report_job(&engine);
    let sched = engine.scheduler();
    sched
        .register(
            ScheduleSpec::new("m", "* * * * *")
                .misfire(misfire)
                .max_catch_up(max_catch_up),
            &job,
            "x".into(),
        )
        .await
        .unwrap();
    clock.set(utc(2026, 1, 1, 0, 1));
    sched.tick().await.unwrap();
    clock.jump(Duration::from_secs(600));
    sched.tick().await.unwrap();
    clock.advance(Duration::from_secs(60));
    sched.tick().await.unwrap();
    let info = sched.get("m").await.unwrap().unwrap();
    assert_eq!(info.next_run_ms, Some(utc(2026, 1, 1, 0, 13)));
    (job_keys(&engine).await, info.dropped)
}

fn minutes(list: &[u32]) -> Vec<u64> {
    list.iter().map(|m| utc(2026, 1, 1, 0, *m)).collect()
}

async fn slots_inside_a_wall_clock_jump_follow_the_misfire_policy(place: Place) {
    // 00:02 to 00:10 came due inside the jump from 00:01 to 00:11; 00:11 and 00:12 are on time.
    assert_eq!(
        across_a_jump(&place, Misfire::Skip, 100).await,
        (slot_keys("m", &minutes(&[1, 11, 12])), 9)
    );
    assert_eq!(
        across_a_jump(&place, Misfire::CatchUpOne, 100).await,
        (slot_keys("m", &minutes(&[1, 10, 11, 12])), 8)
    );
    assert_eq!(
        across_a_jump(&place, Misfire::CatchUpAll, 3).await,
        (slot_keys("m", &minutes(&[1, 2, 3, 4, 11, 12])), 6)
    );
}

async fn slots_that_come_due_while_the_engine_runs_are_never_dropped(place: Place) {
    let (engine, clock) = place.open_at(utc(2026, 1, 1, 0, 0) + 1_000).await;
    let job = report_job(&engine);
    let sched = engine.scheduler();
    sched
        .register(ScheduleSpec::new("m", "* * * * *"), &job, "x".into())
        .await
        .unwrap();
    // Ten minutes pass with no pass in between (a busy writer): every slot still runs.
    clock.advance(Duration::from_secs(600));
    sched.tick().await.unwrap();
    assert_eq!(
        job_keys(&engine).await,
        slot_keys("m", &minutes(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]))
    );
    assert_eq!(sched.get("m").await.unwrap().unwrap().dropped, 0);
}

in_both_places!(
    each_slot_submits_one_job_on_time,
    misfire_policies_after_a_downtime_of_ten_slots,
    daylight_saving_in_berlin_skipped_time_runs_once_at_the_end_of_the_gap,
    daylight_saving_in_berlin_repeated_time_runs_once,
    daylight_saving_in_new_york_both_transitions,
    re_registering_keeps_or_recomputes_the_next_slot,
    trigger_now_twice_with_one_key_gives_one_job_and_leaves_the_cron_alone,
    without_a_handler_strict_holds_the_slot_and_non_strict_drops_it,
    bad_cron_expressions_and_zones_are_typed_errors_naming_the_problem,
    metrics_count_what_the_scheduler_did_and_a_panicking_callback_is_ignored,
    a_schedule_that_cannot_be_read_is_retried_then_dead_lettered_and_the_others_go_on,
    a_schedule_whose_record_does_not_decode_is_dead_lettered_and_can_be_removed,
    many_held_schedules_do_not_block_a_due_one_behind_them,
    two_weeks_of_missed_per_second_slots_are_all_counted,
    slots_inside_a_wall_clock_jump_follow_the_misfire_policy,
    slots_that_come_due_while_the_engine_runs_are_never_dropped,
);
