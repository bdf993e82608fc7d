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
//! - latency: 500 jobs submitted one at a time with random gaps of 1–10 ms, submit → handler
//!   start, first with the handler on the submitting node, then on a second node (the submit
//!   reaches it by `NOTIFY`); p50 / p99 / max.
//! - topic: `--publishers` tasks publish `--jobs` events to one topic, one at a time (every
//!   publish takes the topic's row lock), then a group of 4 members drains it in batches of
//!   100, committing each batch in one write.
//! - queue: `--publishers` tasks send `--jobs` messages one at a time, then 4 receivers take
//!   batches of 100 and ack each message.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use jobfile::{EngineOptions, JobCtx, JobMetric, JobSpec};

struct Args {
    jobs: u64,
    handlers: usize,
    submitters: u64,
    publishers: u64,
    only: Option<String>,
}

fn parse_args() -> Args {
    let mut args = Args {
        jobs: 20_000,
        handlers: 32,
        submitters: 32,
        publishers: 32,
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
            ("--publishers", Some(v)) => args.publishers = v,
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
    // Completions per half second, to see where the run slows.
    let sampler = {
        let completed = completed.clone();
        tokio::spawn(async move {
            let mut last = 0;
            let mut series = Vec::new();
            while last < total {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let now = completed.load(Ordering::Relaxed);
                series.push((now - last) * 2);
                last = now;
            }
            series
        })
    };
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
    let series = sampler.await.unwrap();
    println!(
        "e2e: completions per second, by half second: {}",
        series
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    );
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

/// A small xorshift generator for the gaps between submits.
struct Gaps(u64);

impl Gaps {
    fn next_ms(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        1 + self.0 % 10
    }
}

fn percentiles(mut micros: Vec<u64>) -> String {
    micros.sort_unstable();
    let at = |q: f64| micros[((micros.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    format!(
        "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        at(0.5),
        at(0.99),
        at(1.0)
    )
}

/// Submit → handler start, one job at a time with random gaps: the handler on the submitting
/// node, then on another.
async fn latency(url: &str) {
    const N: u64 = 500;
    for cross in [false, true] {
        let schema = Schema::new(url, if cross { "lat_cross" } else { "lat_same" });
        let options = || EngineOptions::new().postgres_schema(&schema.name);
        let submitter = options().connect(url).await.expect("connect");
        let runner = if cross {
            Some(options().connect(url).await.expect("connect"))
        } else {
            None
        };
        let submitted_at: Arc<std::sync::Mutex<Vec<Instant>>> = Arc::default();
        let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel();
        let at = submitted_at.clone();
        runner
            .as_ref()
            .unwrap_or(&submitter)
            .register(JobSpec::new("ping"), move |_: JobCtx, n: u64| {
                let delay = at.lock().unwrap()[n as usize].elapsed();
                let _ = started_tx.send(delay.as_micros() as u64);
                async { Ok(()) }
            })
            .unwrap();
        let ping = submitter.job::<u64, ()>(JobSpec::new("ping")).unwrap();
        // Each node must know the other listens before it sends notices.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut gaps = Gaps(0x9e37_79b9_7f4a_7c15);
        let mut micros = Vec::new();
        for n in 0..N {
            tokio::time::sleep(Duration::from_millis(gaps.next_ms())).await;
            submitted_at.lock().unwrap().push(Instant::now());
            ping.submit(n).await.expect("submit");
            micros.push(started_rx.recv().await.expect("started"));
        }
        println!(
            "latency: submit -> start, handler on {} node, {N} jobs with gaps of 1-10 ms: {}",
            if cross { "another" } else { "the same" },
            percentiles(micros)
        );
        if let Some(runner) = runner {
            runner
                .shutdown(Duration::from_secs(5))
                .await
                .expect("shutdown");
        }
        submitter
            .shutdown(Duration::from_secs(5))
            .await
            .expect("shutdown");
        schema.drop_it().await;
    }
}

/// Runs `n` tasks made by `task` at once; how long until all ended.
async fn in_tasks<F, Fut>(n: u64, task: F) -> Duration
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let started = Instant::now();
    let tasks: Vec<_> = (0..n).map(|_| tokio::spawn(task())).collect();
    for t in tasks {
        t.await.unwrap();
    }
    started.elapsed()
}

/// An engine on a schema of its own for `part`.
async fn alone(url: &str, part: &str) -> (Schema, jobfile::Engine) {
    let schema = Schema::new(url, part);
    let engine = EngineOptions::new()
        .postgres_schema(&schema.name)
        .connect(url)
        .await
        .expect("connect");
    (schema, engine)
}

async fn done(schema: Schema, engine: jobfile::Engine) {
    engine
        .shutdown(Duration::from_secs(5))
        .await
        .expect("shutdown");
    schema.drop_it().await;
}

/// Publishers on one topic, then a group of 4 members draining it.
async fn topic(args: &Args, url: &str) {
    let (schema, engine) = alone(url, "topic").await;
    let per = args.jobs / args.publishers;
    let total = per * args.publishers;
    let publish = in_tasks(args.publishers, || {
        let t = engine.topic("events").unwrap();
        async move {
            for _ in 0..per {
                t.publish(vec![0; 64]).await.expect("publish");
            }
        }
    })
    .await;
    let taken = Arc::new(AtomicU64::new(0));
    let drain = in_tasks(4, || {
        let group = engine.topic("events").unwrap().group("drain");
        let taken = taken.clone();
        async move {
            while taken.load(Ordering::Relaxed) < total {
                let got = group.try_receive(100).await.expect("receive");
                if got.is_empty() {
                    tokio::task::yield_now().await;
                    continue;
                }
                let seqs: Vec<u64> = got.iter().map(|d| d.event.seq).collect();
                group.commit_many(&seqs).await.expect("commit");
                taken.fetch_add(seqs.len() as u64, Ordering::Relaxed);
            }
        }
    })
    .await;
    println!(
        "topic: {total} events by {} publishers one at a time: {:.0} events/s; a group of 4 \
         members took and committed them in batches of 100: {:.0} events/s",
        args.publishers,
        total as f64 / publish.as_secs_f64(),
        total as f64 / drain.as_secs_f64()
    );
    done(schema, engine).await;
}

/// Senders one message at a time, then 4 receivers acking each.
async fn queue(args: &Args, url: &str) {
    let (schema, engine) = alone(url, "queue").await;
    let per = args.jobs / args.publishers;
    let total = per * args.publishers;
    let send = in_tasks(args.publishers, || {
        let q = engine.queue("work").unwrap();
        async move {
            for _ in 0..per {
                q.send(vec![0; 64]).await.expect("send");
            }
        }
    })
    .await;
    let acked = Arc::new(AtomicU64::new(0));
    let drain = in_tasks(4, || {
        let q = engine.queue("work").unwrap();
        let acked = acked.clone();
        async move {
            while acked.load(Ordering::Relaxed) < total {
                let got = q
                    .try_receive(100, Duration::from_secs(60))
                    .await
                    .expect("receive");
                if got.is_empty() {
                    tokio::task::yield_now().await;
                    continue;
                }
                for d in &got {
                    d.ack().await.expect("ack");
                }
                acked.fetch_add(got.len() as u64, Ordering::Relaxed);
            }
        }
    })
    .await;
    println!(
        "queue: {total} messages by {} senders one at a time: {:.0} sends/s; 4 receivers took \
         batches of 100 and acked each: {:.0} messages/s",
        args.publishers,
        total as f64 / send.as_secs_f64(),
        total as f64 / drain.as_secs_f64()
    );
    done(schema, engine).await;
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
    if args.only.as_deref().is_none_or(|o| o == "latency") {
        latency(&url).await;
    }
    if args.only.as_deref().is_none_or(|o| o == "topic") {
        topic(&args, &url).await;
    }
    if args.only.as_deref().is_none_or(|o| o == "queue") {
        queue(&args, &url).await;
    }
}
