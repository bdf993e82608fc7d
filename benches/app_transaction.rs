//! What enqueueing inside the application's own transaction costs, fsync'd: rounds of N
//! submits from concurrent tasks, alternating a plain submit with `Engine::transaction` that
//! writes a 64-byte row of an application table and submits the job in the same commit.
//! Nothing runs the jobs (the handles submit only), so the figures are the write path's.
//!
//!     cargo bench --bench app_transaction
//!     cargo bench --bench app_transaction -- --jobs 20000 --tasks 32 --rounds 3

use std::time::Instant;

use jobfile::{Engine, Error, JobHandle, JobSpec};

fn arg(name: &str, default: u64) -> u64 {
    let argv: Vec<String> = std::env::args().collect();
    argv.iter()
        .position(|a| a == name)
        .and_then(|i| argv.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Submits `per` jobs from each of `tasks` tasks, as plain submits or in transactions with a
/// row each; jobs per second.
async fn round(
    engine: &Engine,
    email: &JobHandle<u64, ()>,
    tasks: u64,
    per: u64,
    in_transaction: bool,
    first_key: u64,
) -> f64 {
    let started = Instant::now();
    let mut running = Vec::new();
    for t in 0..tasks {
        let (engine, email) = (engine.clone(), email.clone());
        running.push(tokio::spawn(async move {
            for i in 0..per {
                let n = first_key + t * per + i;
                if in_transaction {
                    let email = email.clone();
                    engine
                        .transaction(move |tx| {
                            tx.insert("orders", &n.to_be_bytes(), &[0xAB; 64])?;
                            tx.submit(email.submit(n))?;
                            Ok::<_, Error>(())
                        })
                        .await
                        .expect("transaction");
                } else {
                    email.submit(n).await.expect("submit");
                }
            }
        }));
    }
    for t in running {
        t.await.expect("task");
    }
    (tasks * per) as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let jobs = arg("--jobs", 20_000);
    let tasks = arg("--tasks", 32);
    let rounds = arg("--rounds", 3);
    let per = jobs / tasks;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let dir = tempfile::tempdir().expect("temp dir");
        let engine = Engine::open(dir.path().join("tx.jobfile"))
            .await
            .expect("open");
        let email = engine.job::<u64, ()>(JobSpec::new("email")).expect("job");
        let mut key = 0;
        for r in 1..=rounds {
            let plain = round(&engine, &email, tasks, per, false, key).await;
            key += tasks * per;
            let tx = round(&engine, &email, tasks, per, true, key).await;
            key += tasks * per;
            println!(
                "round {r}: {} jobs from {tasks} tasks, fsync'd: submit {plain:.0} jobs/s, \
                 transaction (row + submit) {tx:.0} jobs/s, ratio {:.2}",
                tasks * per,
                tx / plain
            );
        }
        engine
            .shutdown(std::time::Duration::from_secs(5))
            .await
            .expect("shutdown");
    });
}
