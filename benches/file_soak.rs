//! File size under a steady load: one simulated hour on a manual clock, each simulated minute
//! running `--per-minute` no-op jobs at full speed (32 submitters, fsync'd) with a retention
//! of one minute, so the file holds about two minutes of jobs at any time. Prints the file
//! size as the hour goes on, then compacts the file at a reopen.
//!
//!     cargo bench --bench file_soak
//!     cargo bench --bench file_soak -- --per-minute 10000 --minutes 60

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use jobfile::{EngineOptions, JobCtx, JobMetric, JobSpec, JobState, ManualClock};
use tokio::sync::Notify;

fn arg(name: &str, default: u64) -> u64 {
    let argv: Vec<String> = std::env::args().collect();
    argv.iter()
        .position(|a| a == name)
        .and_then(|i| argv.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn mb(path: &std::path::Path) -> f64 {
    std::fs::metadata(path).map_or(f64::NAN, |m| m.len() as f64 / 1e6)
}

fn main() {
    let per_minute = arg("--per-minute", 10_000) / 32 * 32;
    let minutes = arg("--minutes", 60);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("soak.jobfile");
        let clock = ManualClock::new(1_767_225_600_000);
        let completed = Arc::new(AtomicU64::new(0));
        let goal = Arc::new(AtomicU64::new(u64::MAX));
        let reached = Arc::new(Notify::new());
        let (c, g, r) = (completed.clone(), goal.clone(), reached.clone());
        let engine = EngineOptions::new()
            .clock(clock.clone())
            .max_running_jobs(64)
            .on_job_metric(move |m| {
                if matches!(m, JobMetric::Completed { .. })
                    && c.fetch_add(1, Ordering::Relaxed) + 1 == g.load(Ordering::Relaxed)
                {
                    r.notify_one();
                }
            })
            .open(&path)
            .await
            .expect("open");
        let job = engine
            .register(
                JobSpec::new("soak")
                    .concurrency(64)
                    .retention(Duration::from_secs(60)),
                |_: JobCtx, n: u64| async move { Ok(n) },
            )
            .expect("register");
        let started = Instant::now();
        let mut sizes = Vec::new();
        let mut log_sizes = Vec::new();
        let log = dir.path().join("soak.jobfile.wal");
        for minute in 1..=minutes {
            let target = completed.load(Ordering::Relaxed) + per_minute;
            goal.store(target, Ordering::Relaxed);
            let done = reached.notified();
            tokio::pin!(done);
            done.as_mut().enable();
            let mut tasks = Vec::new();
            for s in 0..32 {
                let job = job.clone();
                tasks.push(tokio::spawn(async move {
                    for i in 0..per_minute / 32 {
                        job.submit(s * per_minute + i).await.expect("submit");
                    }
                }));
            }
            for t in tasks {
                t.await.expect("submitter");
            }
            if completed.load(Ordering::Relaxed) < target {
                done.await;
            }
            clock.advance(Duration::from_secs(60));
            // Retention removes what finished more than a minute ago (several passes when
            // there is much to remove).
            engine.tick().await.expect("tick");
            let retained = loop {
                let n = engine
                    .jobs()
                    .list().state(JobState::Completed).oldest_first().limit(usize::MAX)
                    .await
                    .expect("list").jobs
                    .len() as u64;
                if n <= per_minute {
                    break n;
                }
                engine.tick().await.expect("tick");
            };
            sizes.push(mb(&path));
            log_sizes.push(mb(&log));
            if [1, 2, 5, 10, 15, 30, 45, 60].contains(&minute) || minute == minutes {
                println!(
                    "minute {minute:>3}: file {:7.1} MB, log {:5.1} MB, {retained} jobs retained, {:.0} jobs/s so far",
                    mb(&path),
                    mb(&log),
                    (minute * per_minute) as f64 / started.elapsed().as_secs_f64()
                );
            }
        }
        let tail = &sizes[sizes.len() / 2..];
        let max = tail.iter().copied().fold(f64::MIN, f64::max);
        let min = tail.iter().copied().fold(f64::MAX, f64::min);
        println!(
            "second half of the hour: file between {min:.1} and {max:.1} MB ({} jobs in all)",
            minutes * per_minute
        );
        let largest_log = log_sizes.iter().copied().fold(f64::MIN, f64::max);
        println!("the write-ahead log beside it: {largest_log:.1} MB at most");
        engine
            .shutdown(Duration::from_secs(10))
            .await
            .expect("shutdown");
        let before = mb(&path);
        let t = Instant::now();
        let engine = EngineOptions::new()
            .clock(clock.clone())
            .compact_on_open(true)
            .open(&path)
            .await
            .expect("compacting open");
        println!(
            "compact_on_open: {before:.1} MB -> {:.1} MB in {:.0} ms",
            mb(&path),
            t.elapsed().as_secs_f64() * 1e3
        );
        engine
            .shutdown(Duration::from_secs(10))
            .await
            .expect("shutdown");
    });
}
