//! Jobs at scale: a deep backlog must not slow the engine down, cost memory, or slow recovery.
//!
//!     cargo bench --bench job_scale
//!     cargo bench --bench job_scale -- --backlog 1000000 --probe 20000 --running 10000
//!
//! For a deep (`--backlog`) and a small (1,000) file, both open in one process:
//! - batch submit: the backlog enqueued with `submit_many` in batches of 5,000 (fsync'd);
//! - resident memory of the process with the deep backlog queued (measured before the small
//!   file is opened);
//! - probe throughput: `--probe` no-op jobs of another definition, submit → complete, 32
//!   submitters, while the backlog sits queued; `--rounds` rounds (5), alternating between the
//!   files so that the disk's slow stretches hit both, reported per round and as medians;
//! - drain, once: the small file's 1,000 backlog jobs and the first `--probe` of the deep one,
//!   claimed and completed (no-op handler);
//! - recovery (deep file only): a child process starts `--running` backlog jobs, is SIGKILLed,
//!   and the parent times the open (recovery included) and the first claim after it. With
//!   `--full-log`, the child first fills the write-ahead log with 4 MiB of submits made after
//!   its last checkpoint (the default checkpoint size: the longest replay the defaults allow),
//!   so the open replays them too; `--full-log-mib N` fills N MiB instead.
//!
//! With the engine's defaults (quick repair on); `--no-quick-repair` turns it off.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use jobfile::{Engine, EngineOptions, JobCtx, JobHandle, JobMetric, JobSpec};
use tokio::sync::Notify;

const BATCH: u64 = 5_000;

struct Args {
    backlog: u64,
    probe: u64,
    running: u64,
    rounds: usize,
    quick_repair: bool,
}

/// The engine's default (on), unless `--no-quick-repair`.
fn quick_repair() -> bool {
    !std::env::args().any(|a| a == "--no-quick-repair")
}

fn parse_args() -> Args {
    let mut args = Args {
        backlog: 1_000_000,
        probe: 20_000,
        running: 10_000,
        rounds: 5,
        quick_repair: quick_repair(),
    };
    let argv: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < argv.len() {
        let value = argv.get(i + 1).and_then(|v| v.parse::<u64>().ok());
        match (argv[i].as_str(), value) {
            ("--backlog", Some(v)) => args.backlog = v,
            ("--probe", Some(v)) => args.probe = v,
            ("--running", Some(v)) => args.running = v,
            ("--rounds", Some(v)) => args.rounds = (v as usize).max(1),
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    args
}

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Counts completions and wakes a waiter at a target.
#[derive(Clone, Default)]
struct Completions {
    count: Arc<AtomicU64>,
    target: Arc<AtomicU64>,
    reached: Arc<Notify>,
}

impl Completions {
    fn options(&self) -> EngineOptions {
        let c = self.clone();
        EngineOptions::new()
            .quick_repair(quick_repair())
            .max_running_jobs(64)
            .on_job_metric(move |m| {
                if matches!(m, JobMetric::Completed { .. }) {
                    let n = c.count.fetch_add(1, Ordering::Relaxed) + 1;
                    if n == c.target.load(Ordering::Relaxed) {
                        c.reached.notify_one();
                    }
                }
            })
    }

    /// Sets the goal of `n` more completions than so far; returns it for [`Self::reached`].
    fn expect(&self, n: u64) -> u64 {
        let goal = self.count.load(Ordering::Relaxed) + n;
        self.target.store(goal, Ordering::Relaxed);
        goal
    }

    /// Waits until `goal` completions.
    async fn reached(&self, goal: u64) {
        let reached = self.reached.notified();
        tokio::pin!(reached);
        reached.as_mut().enable();
        if self.count.load(Ordering::Relaxed) < goal {
            reached.await;
        }
    }
}

async fn fill(engine: &Engine, n: u64) -> f64 {
    let backlog = engine.job::<u64, ()>(JobSpec::new("backlog")).expect("job");
    let started = Instant::now();
    let mut next = 0;
    while next < n {
        let end = (next + BATCH).min(n);
        backlog
            .submit_many((next..end).map(|i| backlog.submit(i)))
            .await
            .expect("submit_many");
        next = end;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

fn register_probe(engine: &Engine) -> JobHandle<u64, u64> {
    engine
        .register(
            JobSpec::new("probe").concurrency(64),
            |_: JobCtx, i: u64| async move { Ok(i) },
        )
        .expect("register")
}

/// One probe round: `n` no-op jobs of the probe definition, 32 submitters, submit → complete.
async fn probe(handle: &JobHandle<u64, u64>, done: &Completions, n: u64) -> f64 {
    let per = n / 32;
    let started = Instant::now();
    let goal = done.expect(per * 32);
    let mut tasks = Vec::new();
    for s in 0..32 {
        let probe = handle.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per {
                probe.submit(s * per + i).await.expect("submit");
            }
        }));
    }
    for t in tasks {
        t.await.expect("submitter");
    }
    done.reached(goal).await;
    (per * 32) as f64 / started.elapsed().as_secs_f64()
}

async fn drain(engine: &Engine, done: &Completions, n: u64) -> f64 {
    let started = Instant::now();
    let goal = done.expect(n);
    engine
        .register(
            JobSpec::new("backlog").concurrency(64),
            |_: JobCtx, _: u64| async { Ok(()) },
        )
        .expect("register");
    done.reached(goal).await;
    n as f64 / started.elapsed().as_secs_f64()
}

/// A file with its backlog queued, and what filling it measured.
struct Filled {
    engine: Engine,
    done: Completions,
    probe: JobHandle<u64, u64>,
    backlog: u64,
    enqueue: f64,
    rss: f64,
    size_mb: f64,
}

async fn open_filled(dir: &Path, backlog: u64) -> Filled {
    let done = Completions::default();
    let path = dir.join(format!("scale-{backlog}.jobfile"));
    let engine = done.options().open(&path).await.expect("open");
    let enqueue = fill(&engine, backlog).await;
    let rss = rss_mb();
    let size_mb = std::fs::metadata(&path).map_or(f64::NAN, |m| m.len() as f64 / 1e6);
    let probe = register_probe(&engine);
    Filled {
        engine,
        done,
        probe,
        backlog,
        enqueue,
        rss,
        size_mb,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The engine's default checkpoint size, in MiB.
const DEFAULT_CHECKPOINT_MIB: u64 = 4;

/// How many MiB the child fills the log with before it is killed, if it does (`--full-log`:
/// the default checkpoint size; `--full-log-mib N`: N).
fn full_log() -> Option<u64> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--full-log-mib") {
        return args
            .get(at + 1)
            .and_then(|n| n.parse().ok())
            .filter(|m| *m > 0);
    }
    args.iter()
        .any(|a| a == "--full-log")
        .then_some(DEFAULT_CHECKPOINT_MIB)
}

/// The child: starts `running` backlog jobs that never finish (with a full log, then submits
/// jobs until its log holds that many MiB since its open), says so, and waits to be killed.
fn hold(path: &str, running: u64) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let started = Arc::new(AtomicU64::new(0));
        let all = Arc::new(Notify::new());
        let (s, a) = (started.clone(), all.clone());
        let engine = EngineOptions::new()
            .quick_repair(quick_repair())
            // No checkpoint after the open: whatever the child logs, the parent replays.
            .checkpoint(u64::MAX, Duration::from_secs(3_600))
            .max_running_jobs(running as usize)
            .on_job_metric(move |m| {
                if matches!(m, JobMetric::Started { .. })
                    && s.fetch_add(1, Ordering::Relaxed) + 1 == running
                {
                    a.notify_one();
                }
            })
            .open(path)
            .await
            .expect("child open");
        let waiting = all.notified();
        engine
            .register(
                JobSpec::new("backlog").concurrency(running as usize),
                |_: JobCtx, _: u64| async {
                    std::future::pending::<()>().await;
                    Ok(())
                },
            )
            .expect("register");
        waiting.await;
        if let Some(mib) = full_log() {
            let filler = engine
                .register(JobSpec::new("filler"), |_: JobCtx, _: u64| async { Ok(()) })
                .expect("register filler");
            let log = format!("{path}.wal");
            // The log grows in 1 MiB steps as records pass its end: once it is a step longer
            // than `mib`, its records hold more than `mib` MiB (the checkpoint is due after
            // the batch that passes its size, so this is at least the longest replay).
            let full = || std::fs::metadata(&log).map_or(0, |m| m.len()) > mib << 20;
            let mut n = 0u64;
            while !full() {
                let batch: Vec<_> = (0..32u64)
                    .map(|i| {
                        let filler = filler.clone();
                        tokio::spawn(async move {
                            filler.submit(n + i).delay(Duration::from_secs(3_600)).await
                        })
                    })
                    .collect();
                for b in batch {
                    b.await.expect("join").expect("filler submit");
                }
                n += 32;
            }
            eprintln!(
                "child: {n} filler jobs submitted, log {} bytes",
                std::fs::metadata(&log).map_or(0, |m| m.len())
            );
        }
        println!("running {}", started.load(Ordering::Relaxed));
        std::future::pending::<()>().await;
    });
}

async fn recovery(path: &Path, running: u64) -> (Duration, Duration, u64) {
    let mut child = Command::new(std::env::current_exe().expect("exe"))
        .args([
            "--child-hold",
            &path.display().to_string(),
            &running.to_string(),
            if quick_repair() {
                ""
            } else {
                "--no-quick-repair"
            },
            "--full-log-mib",
            &full_log().unwrap_or(0).to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn child");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("child line");
    assert!(line.starts_with("running"), "child said {line:?}");
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    let first = Arc::new(Notify::new());
    let f = first.clone();
    let started = Instant::now();
    let engine = EngineOptions::new()
        .quick_repair(quick_repair())
        .on_job_metric(move |m| {
            if matches!(m, JobMetric::Started { .. }) {
                f.notify_one();
            }
        })
        .open(path)
        .await
        .expect("reopen");
    let opened = started.elapsed();
    let claimed = first.notified();
    engine
        .register(JobSpec::new("backlog"), |_: JobCtx, _: u64| async {
            Ok(())
        })
        .expect("register");
    claimed.await;
    let first_claim = started.elapsed();
    let recovered = engine.jobs().metrics().await.expect("metrics").recovered;
    engine
        .shutdown(Duration::from_secs(10))
        .await
        .expect("shutdown");
    (opened, first_claim, recovered)
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("--child-hold") {
        hold(&argv[2], argv[3].parse().expect("running"));
        return;
    }
    let args = parse_args();
    println!("quick repair: {}", args.quick_repair);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        // The deep file first, alone in the process, so its RSS is its own.
        let deep = open_filled(dir.path(), args.backlog).await;
        let small = open_filled(dir.path(), 1_000).await;
        for f in [&deep, &small] {
            println!(
                "backlog {:>8}: submit_many {:>9.0} jobs/s, RSS {:6.1} MB, file {:7.1} MB",
                f.backlog, f.enqueue, f.rss, f.size_mb
            );
        }
        // Probe rounds alternate between the files (and which goes first), so a slow stretch
        // of the disk hits both; the ratio is taken per round and of the medians.
        let (mut small_rates, mut deep_rates, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..args.rounds {
            let order = if round % 2 == 0 { [&small, &deep] } else { [&deep, &small] };
            let mut rates = [0.0; 2];
            for f in order {
                let rate = probe(&f.probe, &f.done, args.probe).await;
                rates[usize::from(std::ptr::eq(f, &deep))] = rate;
            }
            println!(
                "probe round {}: {:>7.0} jobs/s with {} queued, {:>7.0} with {}: {:.0}%",
                round + 1,
                rates[0],
                small.backlog,
                rates[1],
                deep.backlog,
                100.0 * rates[1] / rates[0]
            );
            small_rates.push(rates[0]);
            deep_rates.push(rates[1]);
            ratios.push(rates[1] / rates[0]);
        }
        let (lo, hi) = ratios
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
        let (small_median, deep_median) = (median(small_rates), median(deep_rates));
        println!(
            "probe median of {} rounds: {small_median:.0} jobs/s with {} queued, {deep_median:.0} with {}: \
             deep/small {:.0}% (rounds {:.0}-{:.0}%)",
            args.rounds,
            small.backlog,
            deep.backlog,
            100.0 * deep_median / small_median,
            100.0 * lo,
            100.0 * hi
        );
        let small_drain = drain(&small.engine, &small.done, small.backlog).await;
        let deep_drain = drain(&deep.engine, &deep.done, args.probe.min(deep.backlog)).await;
        println!(
            "drain (once): all {} jobs of the small file {small_drain:.0} jobs/s, the first {} of the deep one {deep_drain:.0} jobs/s: {:.0}%",
            small.backlog,
            args.probe.min(deep.backlog),
            100.0 * deep_drain / small_drain
        );
        for f in [small, deep] {
            f.engine
                .shutdown(Duration::from_secs(10))
                .await
                .expect("shutdown");
        }
        let path = dir.path().join(format!("scale-{}.jobfile", args.backlog));
        let (opened, first_claim, recovered) = recovery(&path, args.running).await;
        println!(
            "recovery after SIGKILL with {} jobs, {recovered} running: open {:.1} ms, first claim {:.1} ms",
            args.backlog - args.probe.min(args.backlog),
            opened.as_secs_f64() * 1e3,
            first_claim.as_secs_f64() * 1e3
        );
    });
}
