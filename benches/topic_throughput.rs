//! Topic figures, fsync'd: publish throughput with concurrent publishers, then one consumer
//! group draining the topic with several members (receive a batch, commit it in one write).
//!
//!     cargo bench --bench topic_throughput
//!     cargo bench --bench topic_throughput -- --events 100000 --publishers 32 --members 4

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use jobfile::Engine;

fn arg(name: &str, default: u64) -> u64 {
    let argv: Vec<String> = std::env::args().collect();
    argv.iter()
        .position(|a| a == name)
        .and_then(|i| argv.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let events = arg("--events", 100_000);
    let publishers = arg("--publishers", 32);
    let members = arg("--members", 4);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let dir = tempfile::tempdir().expect("temp dir");
        let engine = Engine::open(dir.path().join("topic.jobfile"))
            .await
            .expect("open");
        let topic = engine.topic("bench").expect("topic");
        let per = events / publishers;
        let total = per * publishers;
        let before = engine.store_stats();
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..publishers {
            let topic = topic.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..per {
                    topic.publish(vec![0xAB; 64]).await.expect("publish");
                }
            }));
        }
        for t in tasks {
            t.await.expect("publisher");
        }
        let elapsed = started.elapsed();
        let after = engine.store_stats();
        println!(
            "publish  {total} events, {publishers} publishers: {:.2} s, {:.0} events/s, {} commits, {:.1} ops/commit",
            elapsed.as_secs_f64(),
            total as f64 / elapsed.as_secs_f64(),
            after.commits - before.commits,
            (after.ops - before.ops) as f64 / (after.commits - before.commits).max(1) as f64,
        );

        let group = topic.group("consumers");
        let consumed = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..members {
            let (group, consumed) = (group.clone(), consumed.clone());
            tasks.push(tokio::spawn(async move {
                while consumed.load(Ordering::Relaxed) < total {
                    let got = group.try_receive(64).await.expect("receive");
                    if got.is_empty() {
                        tokio::task::yield_now().await;
                        continue;
                    }
                    let seqs: Vec<u64> = got.iter().map(|d| d.event.seq).collect();
                    let n = group.commit_many(&seqs).await.expect("commit");
                    consumed.fetch_add(n as u64, Ordering::Relaxed);
                }
            }));
        }
        for t in tasks {
            t.await.expect("member");
        }
        let elapsed = started.elapsed();
        println!(
            "consume  {total} events, 1 group of {members} members (batches of 64, one commit_many each): {:.2} s, {:.0} events/s",
            elapsed.as_secs_f64(),
            total as f64 / elapsed.as_secs_f64(),
        );
        assert_eq!(group.committed_through().await.expect("cursor"), total);
        engine.shutdown(Duration::from_secs(5)).await.expect("shutdown");
    });
}
