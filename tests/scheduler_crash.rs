//! Dispatch is exactly-once across SIGKILLs: a child process runs a per-second schedule and is
//! killed at random moments, over and over; afterwards every slot from the first to the last
//! has exactly one job, none lost and none twice.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Rng, child_role, spawn_child, temp_file, wait_for_line};
use jobfile::{Engine, JobCtx, JobSpec, JobState, Misfire, ScheduleSpec};

async fn start(engine: &Engine) {
    let job = engine
        .register(
            JobSpec::new("beat").concurrency(4),
            |_: JobCtx, _: ()| async { Ok(()) },
        )
        .expect("register");
    engine
        .scheduler()
        .register(
            ScheduleSpec::new("every-second", "* * * * * *")
                .misfire(Misfire::CatchUpAll)
                .max_catch_up(1_000),
            &job,
            (),
        )
        .await
        .expect("schedule");
}

/// The body of every child process (ignored in a normal run; the test below starts it).
#[test]
#[ignore = "child process entry point, started by the test in this file"]
fn scheduler_child_entry() {
    let Some((_role, path)) = child_role() else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        let engine = Engine::open(&path).await.expect("child open");
        start(&engine).await;
        println!("sched-ready {}", engine.epoch());
        std::future::pending::<()>().await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_slot_is_lost_or_run_twice_across_kills() {
    let (_dir, path) = temp_file();
    let mut rng = Rng::new();
    let kills = 6;
    for round in 0..kills {
        let (mut child, mut out) = spawn_child("scheduler_child_entry", "sched", &path);
        let epoch: u64 = wait_for_line(&mut out, "sched-ready ").parse().unwrap();
        assert_eq!(epoch, round + 1);
        tokio::time::sleep(Duration::from_millis(300 + rng.below(1_200))).await;
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
    }
    let engine = Engine::open(&path).await.unwrap();
    start(&engine).await;
    engine.scheduler().tick().await.unwrap();
    let mut per_slot: BTreeMap<u64, usize> = BTreeMap::new();
    let jobs = engine.jobs();
    for state in [
        JobState::Queued,
        JobState::Running,
        JobState::Completed,
        JobState::Failed,
    ] {
        for job in jobs.list(state, 0, 100_000).unwrap() {
            let key = job.key.unwrap();
            let slot: u64 = key.strip_prefix("every-second:").unwrap().parse().unwrap();
            *per_slot.entry(slot).or_default() += 1;
        }
    }
    let slots: Vec<u64> = per_slot.keys().copied().collect();
    assert!(slots.len() >= 3, "{slots:?}");
    assert!(
        per_slot.values().all(|n| *n == 1),
        "a slot ran twice: {per_slot:?}"
    );
    for pair in slots.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            1_000,
            "a slot was lost between {} and {}",
            pair[0],
            pair[1]
        );
    }
    eprintln!(
        "{kills} kills: {} consecutive slots, each dispatched exactly once",
        slots.len()
    );
    engine.shutdown(Duration::from_secs(5)).await.unwrap();
}
