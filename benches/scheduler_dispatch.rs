//! Scheduler dispatch cost: many schedules due at the same instant (a manual clock makes them
//! due together), each slot becoming one fsync'd job submit in the pass that advances it.
//!
//!     cargo bench --bench scheduler_dispatch
//!     cargo bench --bench scheduler_dispatch -- --schedules 10000

use std::time::{Duration, Instant};

use jobfile::{EngineOptions, JobCtx, JobSpec, ManualClock, ScheduleSpec};

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let schedules: u64 = argv
        .iter()
        .position(|a| a == "--schedules")
        .and_then(|i| argv.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let dir = tempfile::tempdir().expect("temp dir");
        // 2026-01-01T00:30:00Z; every schedule's next slot is 01:00.
        let clock = ManualClock::new(1_767_227_400_000);
        let engine = EngineOptions::new()
            .clock(clock.clone())
            .open(dir.path().join("sched.jobfile"))
            .await
            .expect("open");
        let job = engine
            .register(JobSpec::new("report"), |_: JobCtx, _: u64| async { Ok(()) })
            .expect("register");
        let scheduler = engine.scheduler();
        let started = Instant::now();
        let mut tasks = Vec::new();
        for i in 0..schedules {
            let (scheduler, job) = (scheduler.clone(), job.clone());
            tasks.push(tokio::spawn(async move {
                scheduler
                    .register(ScheduleSpec::new(format!("s{i}"), "0 * * * *"), &job, i)
                    .await
                    .expect("schedule");
            }));
        }
        for t in tasks {
            t.await.expect("register task");
        }
        println!(
            "register {schedules} schedules (concurrently): {:.2} s",
            started.elapsed().as_secs_f64()
        );
        let before = engine.store_stats();
        let started = Instant::now();
        clock.advance(Duration::from_secs(30 * 60));
        // The background timer dispatches too; count the jobs, not our passes.
        let mut passes = 0;
        while engine.jobs().metrics().await.expect("metrics").submitted < schedules {
            scheduler.tick().await.expect("tick");
            passes += 1;
        }
        let elapsed = started.elapsed();
        let after = engine.store_stats();
        println!(
            "dispatch {schedules} schedules due at once: {:.3} s ({:.1} µs per slot), {} commits, {passes} ticks",
            elapsed.as_secs_f64(),
            elapsed.as_secs_f64() * 1e6 / schedules as f64,
            after.commits - before.commits,
        );
        engine.shutdown(Duration::from_secs(5)).await.expect("shutdown");
    });
}
