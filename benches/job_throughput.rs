//! Whole-engine job figures: no-op jobs from submit to complete, and the idle latency from a
//! submit to its handler starting.
//!
//!     cargo bench --bench job_throughput
//!     cargo bench --bench job_throughput -- --jobs 100000 --submitters 32 --handlers 64
//!
//! Prints jobs/s, commits, ops per commit and the log's syncs for fsync'd commits and, in the
//! same run, for the relaxed mode; then p50/p99 of submit → handler start over `--latency-jobs`
//! jobs submitted one at a time on an idle engine (fsync'd): back to back, then with random
//! gaps of 1–10 ms between jobs (`gaps`), as an app's jobs arrive.
//!
//! Before the fsync'd throughput and after the latency, it prints the disk's floor: what one
//! 4 KiB write + `fdatasync` takes here, and the ceiling that puts on these figures; after the
//! latency, also what it takes after an idle gap of 1–10 ms, the floor of the `gaps` shape.
//!
//! `noflush`: the fsync'd throughput again with every sync skipping the disk's flush (the
//! fault injector's `skip_flushes`): the whole fsync'd path (the log, its sync thread, the
//! answers after each sync) but for what the disk adds. Against `fsync` it shows what the
//! flush costs; against `relaxed`, what the fsync'd path costs on its own.
//!
//! `single`: one submitter submitting `--single-jobs` jobs one at a time (fsync'd), each
//! submit awaited before the next: the rate one caller sees, bound by the disk's sync.
//!
//! Every run uses the defaults (fsync'd commits, quick repair on) unless a line says otherwise.
//! `--only fsync|relaxed|noflush|single|latency` runs one part. `--sync-delay-us N` makes
//! every sync N µs slower (the testing feature's fault injector), as on a network volume.
//! `--sample-ms N` also samples the jobs queued and running every N ms of a throughput run and
//! prints them after it: a run whose handlers sit idle behind a backlog shows here.
//! `--quick-repair-ab` instead runs the fsync'd throughput with redb's quick repair off and on,
//! alternating, twice: the commit cost of quick repair; then the idle latency the same way.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use jobfile::testing::FaultInjector;
use jobfile::{Durability, EngineOptions, JobCtx, JobMetric, JobSpec};
use tokio::sync::{Notify, mpsc};

#[derive(Clone)]
struct Args {
    jobs: u64,
    submitters: u64,
    handlers: usize,
    latency_jobs: usize,
    single_jobs: u64,
    sync_delay_us: u64,
    /// Sample the jobs queued and running this often (ms) during a throughput run; 0: never.
    sample_ms: u64,
}

impl Args {
    /// The engine options every part starts from: the defaults, with syncs slowed if asked.
    fn options(&self) -> EngineOptions {
        self.options_flushing(true)
    }

    /// [`Args::options`], where `flush: false` has every sync skip the disk's flush: the
    /// fsync'd path in full but for what the disk adds.
    fn options_flushing(&self, flush: bool) -> EngineOptions {
        let options = EngineOptions::new();
        if self.sync_delay_us == 0 && flush {
            return options;
        }
        let faults = FaultInjector::new();
        faults.slow_syncs(Duration::from_micros(self.sync_delay_us));
        if !flush {
            faults.skip_flushes();
        }
        options.fault_injector(faults)
    }
}

fn parse_args() -> Args {
    let mut args = Args {
        jobs: 100_000,
        submitters: 32,
        handlers: 64,
        latency_jobs: 1_000,
        single_jobs: 5_000,
        sync_delay_us: 0,
        sample_ms: 0,
    };
    let argv: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < argv.len() {
        let value = argv.get(i + 1).and_then(|v| v.parse::<u64>().ok());
        match (argv[i].as_str(), value) {
            ("--jobs", Some(v)) => args.jobs = v,
            ("--submitters", Some(v)) => args.submitters = v,
            ("--handlers", Some(v)) => args.handlers = v as usize,
            ("--latency-jobs", Some(v)) => args.latency_jobs = v as usize,
            ("--single-jobs", Some(v)) => args.single_jobs = v,
            ("--sync-delay-us", Some(v)) => args.sync_delay_us = v,
            ("--sample-ms", Some(v)) => args.sample_ms = v,
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    args
}

async fn throughput(args: &Args, options: EngineOptions, label: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let per_submitter = args.jobs / args.submitters;
    let total = per_submitter * args.submitters;
    let completed = Arc::new(AtomicU64::new(0));
    let all_done = Arc::new(Notify::new());
    let (c, d) = (completed.clone(), all_done.clone());
    let engine = options
        .max_running_jobs(args.handlers)
        .on_job_metric(move |m| {
            if matches!(m, JobMetric::Completed { .. })
                && c.fetch_add(1, Ordering::Relaxed) + 1 == total
            {
                d.notify_one();
            }
        })
        .open(dir.path().join("bench.jobfile"))
        .await
        .expect("open");
    let noop = engine
        .register(
            JobSpec::new("noop").concurrency(args.handlers),
            |_: JobCtx, n: u64| async move { Ok(n) },
        )
        .expect("register");
    let start_stats = engine.store_stats();
    let started = Instant::now();
    let sampler = (args.sample_ms > 0).then(|| {
        let (jobs, every) = (engine.jobs(), Duration::from_millis(args.sample_ms));
        let done = completed.clone();
        tokio::spawn(async move {
            let mut samples = Vec::new();
            while done.load(Ordering::Relaxed) < total {
                tokio::time::sleep(every).await;
                let m = jobs.metrics().await.expect("metrics");
                samples.push((m.queued_now, m.running_now));
            }
            samples
        })
    });
    let mut tasks = Vec::new();
    for s in 0..args.submitters {
        let noop = noop.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_submitter {
                noop.submit(s * per_submitter + i).await.expect("submit");
            }
        }));
    }
    for t in tasks {
        t.await.expect("submitter");
    }
    all_done.notified().await;
    let elapsed = started.elapsed();
    let end_stats = engine.store_stats();
    let commits = end_stats.commits - start_stats.commits;
    let ops = end_stats.ops - start_stats.ops;
    let syncs = end_stats.log_syncs - start_stats.log_syncs;
    println!(
        "{label:<8} {total} jobs, {} submitters, {} handlers: {:.2} s, {:.0} jobs/s, {commits} commits, {:.1} ops/commit, {syncs} log syncs",
        args.submitters,
        args.handlers,
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        ops as f64 / commits.max(1) as f64,
    );
    if let Some(sampler) = sampler {
        let samples = sampler.await.expect("sampler");
        let shown: Vec<String> = samples.iter().map(|(q, r)| format!("{q}/{r}")).collect();
        println!(
            "{label:<8} queued/running every {} ms: {}",
            args.sample_ms,
            shown.join(" ")
        );
    }
    let m = engine.jobs().metrics().await.expect("metrics");
    assert_eq!((m.completed, m.queued_now, m.running_now), (total, 0, 0));
    engine
        .shutdown(Duration::from_secs(5))
        .await
        .expect("shutdown");
}

/// Submit → handler start, one job at a time on an idle engine. With `gaps`, the next submit
/// comes 1–10 ms (uniformly, from a fixed seed) after the last job finished, as jobs reach an
/// app's engine; without, at once (back to back, which flatters: caches and threads are warm).
async fn latency(args: &Args, options: EngineOptions, label: &str, gaps: bool) {
    let dir = tempfile::tempdir().expect("temp dir");
    let engine = options
        .open(dir.path().join("latency.jobfile"))
        .await
        .expect("open");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let ping = engine
        .register(JobSpec::new("ping"), move |_: JobCtx, _: ()| {
            tx.send(Instant::now()).ok();
            async { Ok(()) }
        })
        .expect("register");
    let mut starts = Vec::with_capacity(args.latency_jobs);
    let mut submits = Vec::with_capacity(args.latency_jobs);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..args.latency_jobs {
        if gaps {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            tokio::time::sleep(Duration::from_micros(1_000 + seed % 9_001)).await;
        }
        let submitted = Instant::now();
        let id = ping.submit(()).await.expect("submit").id;
        submits.push(submitted.elapsed());
        let began = rx.recv().await.expect("handler start");
        starts.push(began.duration_since(submitted));
        ping.join(id, None).await.expect("join");
        // Idle means idle: let the finished attempt hand its slot back before the next submit.
        while engine.jobs().metrics().await.expect("metrics").running_now > 0 {
            tokio::task::yield_now().await;
        }
        tokio::task::yield_now().await;
    }
    report(label, "submit -> handler start", starts);
    report(label, "submit call (durable)  ", submits);
    engine
        .shutdown(Duration::from_secs(5))
        .await
        .expect("shutdown");
}

/// The disk's floor: 200 4 KiB writes each followed by `fdatasync`, in a file beside the
/// bench's own, back to back or (`gaps`) each after an idle pause of 1–10 ms, as the idle
/// latency's jobs arrive (a disk, or a virtual one, that has idled answers its next sync
/// slower). Returns the median and the 99th percentile.
fn fsync_floor(gaps: bool) -> (Duration, Duration) {
    use std::io::{Seek, SeekFrom, Write};
    let dir = tempfile::tempdir().expect("temp dir");
    let mut file = std::fs::File::create(dir.path().join("floor")).expect("create");
    let page = [7u8; 4096];
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut samples: Vec<Duration> = (0..200)
        .map(|_| {
            if gaps {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                std::thread::sleep(Duration::from_micros(1_000 + seed % 9_001));
            }
            let started = Instant::now();
            file.seek(SeekFrom::Start(0)).expect("seek");
            file.write_all(&page).expect("write");
            file.sync_data().expect("fdatasync");
            started.elapsed()
        })
        .collect();
    samples.sort();
    (
        samples[samples.len() / 2],
        samples[samples.len() * 99 / 100],
    )
}

/// The back-to-back floor and what it allows: a durable commit writes the log and syncs once,
/// and a submitter waits for one commit per job.
fn print_floor(args: &Args) {
    let (floor, _) = fsync_floor(false);
    let commit = floor.as_secs_f64();
    println!(
        "disk     4 KiB write + fdatasync: p50 {:.3} ms; one per durable commit: {} submitters \
         can do at most {:.0} jobs/s, 1 submitter {:.0}",
        floor.as_secs_f64() * 1e3,
        args.submitters,
        args.submitters as f64 / commit,
        1.0 / commit,
    );
}

/// The floor after an idle gap: what the `gaps` latency cannot go under.
fn print_gapped_floor() {
    let (p50, p99) = fsync_floor(true);
    println!(
        "disk     4 KiB write + fdatasync after 1-10 ms idle: p50 {:.3} ms, p99 {:.3} ms \
         (the least a durable submit can take in the gaps shape)",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
    );
}

fn report(label: &str, what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    println!(
        "{label:<8} {what} over {} jobs (fsync'd, idle): p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        samples.len(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        samples[samples.len() - 1].as_secs_f64() * 1e3,
    );
}

fn main() {
    let args = parse_args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        if std::env::args().any(|a| a == "--quick-repair-ab") {
            // Commit cost of quick repair: off and on, alternating, twice.
            for round in 0..4 {
                let on = round % 2 == 1;
                let label = if on { "fsync+qr" } else { "fsync" };
                let options = args.options().quick_repair(on);
                throughput(&args, options, label).await;
            }
            for round in 0..4 {
                let on = round % 2 == 1;
                let label = if on { "lat+qr" } else { "latency" };
                latency(&args, args.options().quick_repair(on), label, false).await;
            }
            print_floor(&args);
            return;
        }
        // `--only fsync|relaxed|noflush|single|latency` runs one part, for profiling.
        let only = std::env::args().skip_while(|a| a != "--only").nth(1);
        let runs = |part: &str| only.as_deref().is_none_or(|o| o == part);
        if runs("fsync") {
            print_floor(&args);
            throughput(&args, args.options(), "fsync").await;
        }
        if runs("relaxed") {
            let relaxed = Durability::Relaxed {
                flush_every: Duration::from_millis(100),
            };
            let options = args.options().durability(relaxed);
            throughput(&args, options, "relaxed").await;
        }
        if runs("noflush") {
            // The fsync'd path with the disk's flush skipped: against `fsync`, what the flush
            // costs; against `relaxed`, what the fsync'd path costs on its own.
            throughput(&args, args.options_flushing(false), "noflush").await;
        }
        if runs("single") {
            let one = Args {
                jobs: args.single_jobs,
                submitters: 1,
                ..args.clone()
            };
            throughput(&one, args.options(), "single").await;
        }
        if runs("latency") {
            latency(&args, args.options(), "latency", false).await;
            latency(&args, args.options(), "gaps", true).await;
            print_floor(&args);
            print_gapped_floor();
        }
    });
}
