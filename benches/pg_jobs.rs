//! Job throughput on PostgreSQL (feature `postgres`), one node in this process, against the
//! server `JOBFILE_TEST_PG` names (a fresh schema per run, dropped at the end).
//!
//!     JOBFILE_TEST_PG=postgres://postgres@127.0.0.1:5432/test \
//!         cargo bench --features postgres --bench pg_jobs -- --jobs 20000 --handlers 32
//!
//! Two parts, each on a schema of its own:
//! - drain: `submit_many` of `--jobs` no-op jobs in batches of 500 (the submit rate), then a
//!   handler with `--handlers` concurrent attempts runs them all; the run rate is printed per
//!   tenth of the jobs, so a rate that falls as the table fills shows.
//! - e2e: `--submitters` tasks each submit their share one at a time while the handler runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use jobfile::{EngineOptions, JobCtx, JobMetric, JobSpec};

struct Args {
    jobs: u64,
    handlers: usize,
    submitters: u64,
    only: Option<String>,
}

fn parse_args() -> Args {
    let mut args = Args {
        jobs: 20_000,
        handlers: 32,
        submitters: 32,
        only: None,
    };
    let argv: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < argv.len() {
        let value = argv.get(i + 1).cloned();
        let number = value.as_deref().and_then(|v| v.parse::<u64>().ok());
        match (argv[i].as_str(), number) {
            ("--jobs", Some(v)) => args.jobs = v,
            ("--handlers", Some(v)) => args.handlers = v as usize,
            ("--submitters", Some(v)) => args.submitters = v,
            ("--only", _) if value.is_some() => args.only = value,
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    args
}

/// A schema of its own, dropped at the end.
struct Schema {
    url: String,
    name: String,
}

impl Schema {
    fn new(url: &str, part: &str) -> Schema {
        Schema {
            url: url.to_string(),
            name: format!("jobfile_bench_{part}_{}", std::process::id()),
        }
    }

    async fn drop_it(&self) {
        let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name))
            .await
            .expect("drop schema");
    }
}

/// Counts completions; `Notify` when the count reaches a multiple of `step`.
fn counting(options: EngineOptions) -> (EngineOptions, Arc<AtomicU64>) {
    let completed = Arc::new(AtomicU64::new(0));
    let c = completed.clone();
    let options = options.on_job_metric(move |m| {
        if matches!(m, JobMetric::Completed { .. }) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    });
    (options, completed)
}

async fn wait_for(completed: &AtomicU64, n: u64) {
    while completed.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn drain(args: &Args, url: &str) {
    let schema = Schema::new(url, "drain");
    let (options, completed) = counting(
        EngineOptions::new()
            .postgres_schema(&schema.name)
            .max_running_jobs(args.handlers),
    );
    let engine = options.connect(url).await.expect("connect");
    let noop = engine.job::<u64, ()>(JobSpec::new("noop")).unwrap();
    let started = Instant::now();
    let ids: Vec<u64> = (0..args.jobs).collect();
    for chunk in ids.chunks(500) {
        noop.submit_many(chunk.iter().map(|&n| noop.submit(n)))
            .await
            .expect("submit_many");
    }
    let submit = started.elapsed();
    println!(
        "drain: submit_many of {} jobs in batches of 500: {:.2} s, {:.0} jobs/s",
        args.jobs,
        submit.as_secs_f64(),
        args.jobs as f64 / submit.as_secs_f64()
    );
    let _handler = engine
        .register(
            JobSpec::new("noop").concurrency(args.handlers),
            |_: JobCtx, _: u64| async { Ok(()) },
        )
        .unwrap();
    let started = Instant::now();
    let tenth = (args.jobs / 10).max(1);
    let mut last = started;
    let mut rates = Vec::new();
    for k in 1..=10 {
        wait_for(&completed, (tenth * k).min(args.jobs)).await;
        let now = Instant::now();
        rates.push(format!("{:.0}", tenth as f64 / (now - last).as_secs_f64()));
        last = now;
    }
    let run = started.elapsed();
    println!(
        "drain: ran {} jobs with {} handlers: {:.2} s, {:.0} jobs/s; per tenth: {}",
        args.jobs,
        args.handlers,
        run.as_secs_f64(),
        args.jobs as f64 / run.as_secs_f64(),
        rates.join(" ")
    );
    engine
        .shutdown(Duration::from_secs(5))
        .await
        .expect("shutdown");
    schema.drop_it().await;
}

async fn e2e(args: &Args, url: &str) {
    let schema = Schema::new(url, "e2e");
    let (options, completed) = counting(
        EngineOptions::new()
            .postgres_schema(&schema.name)
            .max_running_jobs(args.handlers),
    );
    let engine = options.connect(url).await.expect("connect");
    let noop = engine
        .register(
            JobSpec::new("noop").concurrency(args.handlers),
            |_: JobCtx, _: u64| async { Ok(()) },
        )
        .unwrap();
    let per = args.jobs / args.submitters;
    let total = per * args.submitters;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..args.submitters {
        let noop = noop.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..per {
                noop.submit(s * per + n).await.expect("submit");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let submitted = started.elapsed();
    let done_by_then = completed.load(Ordering::Relaxed);
    wait_for(&completed, total).await;
    let run = started.elapsed();
    println!(
        "e2e: {total} jobs, {} submitters one at a time, {} handlers: submitted in {:.2} s \
         ({:.0}/s, {done_by_then} completed by then), all completed in {:.2} s ({:.0} jobs/s)",
        args.submitters,
        args.handlers,
        submitted.as_secs_f64(),
        total as f64 / submitted.as_secs_f64(),
        run.as_secs_f64(),
        total as f64 / run.as_secs_f64()
    );
    engine
        .shutdown(Duration::from_secs(5))
        .await
        .expect("shutdown");
    schema.drop_it().await;
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let Ok(url) = std::env::var("JOBFILE_TEST_PG") else {
        println!("set JOBFILE_TEST_PG to a PostgreSQL URL to run this bench");
        return;
    };
    if args.only.as_deref().is_none_or(|o| o == "drain") {
        drain(&args, &url).await;
    }
    if args.only.as_deref().is_none_or(|o| o == "e2e") {
        e2e(&args, &url).await;
    }
}
