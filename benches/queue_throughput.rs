//! Whole-engine queue throughput with fsync'd commits: producers send, consumers receive and
//! acknowledge, all through one file.
//!
//!     cargo bench --bench queue_throughput
//!     cargo bench --bench queue_throughput -- --messages 100000 --producers 32 --consumers 32
//!
//! Prints messages/s, commits made, and ops per commit, for the default (fsync per commit)
//! durability and, for comparison in the same run, the relaxed mode.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use jobfile::{Durability, EngineOptions};

struct Args {
    messages: u64,
    producers: u64,
    consumers: u64,
    batch: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        messages: 100_000,
        producers: 32,
        consumers: 32,
        batch: 1,
    };
    let argv: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < argv.len() {
        let value = argv.get(i + 1).and_then(|v| v.parse::<u64>().ok());
        match (argv[i].as_str(), value) {
            ("--messages", Some(v)) => args.messages = v,
            ("--producers", Some(v)) => args.producers = v,
            ("--consumers", Some(v)) => args.consumers = v,
            ("--receive-batch", Some(v)) => args.batch = v as usize,
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    args
}

async fn run(args: &Args, durability: Durability, label: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let engine = EngineOptions::new()
        .durability(durability)
        .open(dir.path().join("bench.jobfile"))
        .await
        .expect("open");
    let q = engine.queue("bench").expect("queue");
    let payload = vec![0xABu8; 64];
    let per_producer = args.messages / args.producers;
    let total = per_producer * args.producers;
    let received = Arc::new(AtomicU64::new(0));
    let start_stats = engine.store_stats();
    let started = Instant::now();

    let mut tasks = Vec::new();
    for _ in 0..args.producers {
        let (q, payload) = (q.clone(), payload.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_producer {
                q.send(payload.clone()).await.expect("send");
            }
        }));
    }
    for _ in 0..args.consumers {
        let (q, received) = (q.clone(), received.clone());
        let batch = args.batch;
        tasks.push(tokio::spawn(async move {
            while received.load(Ordering::Relaxed) < total {
                let got = tokio::select! {
                    got = q.receive_batch(batch, Duration::from_secs(30)) => got.expect("receive"),
                    // Lets an idle consumer notice that the others finished the run.
                    _ = tokio::time::sleep(Duration::from_millis(50)) => continue,
                };
                for d in got {
                    d.ack().await.expect("ack");
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let elapsed = started.elapsed();
    let end_stats = engine.store_stats();
    let commits = end_stats.commits - start_stats.commits;
    let ops = end_stats.ops - start_stats.ops;
    println!(
        "{label:<10} {total} messages, {} producers, {} consumers (receive batch {}): {:.2} s, {:.0} messages/s, {commits} commits, {:.1} ops/commit",
        args.producers,
        args.consumers,
        args.batch,
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        ops as f64 / commits.max(1) as f64,
    );
    assert_eq!(received.load(Ordering::Relaxed), total);
    assert_eq!(q.stats().await.expect("stats").ready, 0);
    engine
        .shutdown(Duration::from_secs(5))
        .await
        .expect("shutdown");
}

fn main() {
    let args = parse_args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        run(&args, Durability::Immediate, "fsync").await;
        run(
            &args,
            Durability::Relaxed {
                flush_every: Duration::from_millis(100),
            },
            "relaxed",
        )
        .await;
    });
}
