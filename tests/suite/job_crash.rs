//! Jobs across real SIGKILLs: every job completes in the end, no step body with a committed
//! result runs again, and a job that keeps killing its process fails with `CRASH_LOOP`.

use crate::common;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{
    Rng, T0, child_role, open_manual_at, spawn_child, table_rows, temp_file, wait_for_line,
};
use jobfile::{Engine, JobCtx, JobError, JobEventKind, JobHandle, JobSpec, JobState, Outcome};

const JOBS: u64 = 60;
const STEPS: [&str; 3] = ["reserve", "charge", "mail"];

fn side_file(path: &Path) -> PathBuf {
    path.with_extension("steps")
}

/// Registers the order handler: three steps, each appending `job step token` to the side file
/// when its body runs and returning the token (the value the step commits).
fn register_orders(
    engine: &Engine,
    side: PathBuf,
    runner: &'static str,
) -> JobHandle<u64, Vec<String>> {
    static NONCE: AtomicU64 = AtomicU64::new(0);
    engine
        .register(
            JobSpec::new("order").concurrency(4).crash_budget(1_000),
            move |ctx: JobCtx, _order: u64| {
                let side = side.clone();
                async move {
                    let mut tokens = Vec::new();
                    for (i, step) in STEPS.iter().enumerate() {
                        let side = side.clone();
                        let id = ctx.id();
                        let token = ctx
                            .step(step, || async move {
                                let token = format!(
                                    "{runner}{}-{}",
                                    std::process::id(),
                                    NONCE.fetch_add(1, Ordering::SeqCst)
                                );
                                let mut f = std::fs::OpenOptions::new()
                                    .append(true)
                                    .create(true)
                                    .open(&side)
                                    .map_err(|e| JobError::retryable(e.to_string()))?;
                                // One write call per line: O_APPEND keeps lines whole and apart.
                                f.write_all(format!("{id} {step} {token}\n").as_bytes())
                                    .map_err(|e| JobError::retryable(e.to_string()))?;
                                // Work that takes a moment, so kills land inside steps too.
                                tokio::time::sleep(Duration::from_millis(4)).await;
                                Ok::<_, JobError>(token)
                            })
                            .await?;
                        ctx.progress(((i + 1) * 33) as u8, step).await?;
                        tokens.push(token);
                    }
                    Ok(tokens)
                }
            },
        )
        .expect("register")
}

/// The body of every child process (ignored in a normal run; the tests below start it).
#[test]
#[ignore = "child process entry point, started by the tests in this file"]
fn job_child_entry() {
    let Some((role, path)) = child_role() else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        if role == "purges" {
            return purge_forever(&path).await;
        }
        let engine = Engine::open(&path).await.expect("child open");
        match role.as_str() {
            "orders" => {
                let orders = register_orders(&engine, side_file(&path), "child");
                for i in 0..JOBS {
                    orders
                        .submit(i)
                        .key(format!("order-{i}"))
                        .await
                        .expect("submit");
                }
                println!("ready {}", engine.epoch());
                std::future::pending::<()>().await;
            }
            "hang" => {
                let h = engine
                    .register(
                        JobSpec::new("hang").crash_budget(2),
                        |ctx: JobCtx, _: ()| async move {
                            println!("hang-running {} {}", ctx.id(), ctx.attempt());
                            std::future::pending::<()>().await;
                            Ok(())
                        },
                    )
                    .expect("register");
                h.submit(()).key("the-one").await.expect("submit");
                std::future::pending::<()>().await;
            }
            other => panic!("unknown role {other}"),
        }
    });
}

/// Where a `purges` child keeps its manual clock's time, written before each advance so that a
/// restarted child never goes back in time.
fn clock_file(path: &Path) -> PathBuf {
    path.with_extension("clock")
}

/// Writes the clock file whole or not at all: a kill between `write`'s truncate and its write
/// would leave it empty, and the next child would start again from `T0`.
fn write_clock(path: &Path, now: u64) {
    let next = path.with_extension("clock-next");
    std::fs::write(&next, now.to_string()).expect("clock file");
    std::fs::rename(&next, clock_file(path)).expect("clock file");
}

fn read_clock(path: &Path) -> Option<u64> {
    std::fs::read_to_string(clock_file(path))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Jobs that end at once and are kept for 1 s.
fn register_short(engine: &Engine) -> JobHandle<u64, u64> {
    engine
        .register(
            JobSpec::new("short").retention(Duration::from_secs(1)),
            |_: JobCtx, n: u64| async move { Ok(n) },
        )
        .expect("register")
}

/// The `purges` child: jobs with a 1 s retention, submitted 8 at a time and joined, the manual
/// clock moved on 250 ms and the timer run after each round, so retention purges all the time.
async fn purge_forever(path: &Path) {
    let mut now = read_clock(path).unwrap_or(T0);
    let (engine, clock) = open_manual_at(path, now).await;
    let short = register_short(&engine);
    println!("ready");
    let mut first = true;
    loop {
        let submitted = short
            .submit_many((0..8).map(|n| short.submit(n)))
            .await
            .expect("submit");
        for job in submitted {
            short.join(job.id, None).await.expect("join");
        }
        now += 250;
        write_clock(path, now);
        clock.advance(Duration::from_millis(250));
        engine.tick().await.expect("tick");
        if std::mem::take(&mut first) {
            println!("round");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_retention_purges_every_finished_job_is_purged_in_the_end() {
    let (_dir, path) = temp_file();
    let mut rng = Rng::new();
    for kill in 0..16 {
        let (mut child, mut out) = spawn_child("job_crash::job_child_entry", "purges", &path);
        wait_for_line(&mut out, "ready");
        if kill == 0 {
            // However slow the machine, the clock and the jobs have moved once before the kills.
            wait_for_line(&mut out, "round");
        }
        tokio::time::sleep(Duration::from_millis(20 + rng.below(80))).await;
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
    }
    // The jobs the last child left queued (or running, recovered at the open) run to their
    // end; then, past every retention, the timer leaves no job and no retention entry behind.
    let (engine, clock) =
        open_manual_at(&path, read_clock(&path).expect("a child moved the clock")).await;
    let short = register_short(&engine);
    for state in [JobState::Queued, JobState::Running] {
        let left = engine.jobs().list().state(state).await.unwrap().jobs;
        for job in left {
            assert!(matches!(
                short.join(job.id, None).await.unwrap(),
                Outcome::Completed(_)
            ));
        }
    }
    clock.advance(Duration::from_secs(60));
    engine.tick().await.unwrap();
    let m = engine.jobs().metrics().await.unwrap();
    assert!(m.completed >= 8, "the children completed jobs: {m:?}");
    assert_eq!((m.queued_now, m.running_now), (0, 0));
    engine.shutdown(Duration::from_secs(5)).await.unwrap();
    let rows = table_rows(&path, "job");
    for table in [
        "jobs",
        "job_purges",
        "job_retention",
        "job_events",
        "job_steps",
    ] {
        assert!(
            rows.contains(&(table.to_string(), 0)),
            "{table} is not empty: {rows:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_over_and_over_every_job_completes_and_no_committed_step_runs_again() {
    let (_dir, path) = temp_file();
    let mut rng = Rng::new();
    let kills = 24;
    for round in 0..kills {
        let (mut child, mut out) = spawn_child("job_crash::job_child_entry", "orders", &path);
        let epoch: u64 = wait_for_line(&mut out, "ready ").parse().unwrap();
        assert_eq!(epoch, round + 1, "each open starts a new epoch");
        // A random moment in the middle of the work.
        tokio::time::sleep(Duration::from_millis(5 + rng.below(40))).await;
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
    }

    let engine = Engine::open(&path).await.unwrap();
    assert_eq!(engine.epoch(), kills + 1);
    let orders = register_orders(&engine, side_file(&path), "parent");
    let mut outputs = HashMap::new();
    for i in 0..JOBS {
        let sub = orders.submit(i).key(format!("order-{i}")).await.unwrap();
        assert!(sub.deduplicated, "order {i} was stored by the first child");
        match orders.join(sub.id, None).await.unwrap() {
            Outcome::Completed(tokens) => outputs.insert(sub.id, tokens),
            other => panic!("order {i} ended as {other:?}"),
        };
    }
    assert_eq!(outputs.len() as u64, JOBS);

    // Every line is one run of a step body, in the order they ran.
    let log = std::fs::read_to_string(side_file(&path)).unwrap();
    let mut runs: HashMap<(u64, String), Vec<String>> = HashMap::new();
    for line in log.lines() {
        let mut parts = line.split(' ');
        let (id, step, token) = (parts.next(), parts.next(), parts.next());
        let (Some(id), Some(step), Some(token)) = (id, step, token) else {
            panic!("torn line in the step log: {line:?}");
        };
        runs.entry((id.parse().unwrap(), step.to_string()))
            .or_default()
            .push(token.to_string());
    }
    let mut reruns_before_commit = 0;
    for (id, tokens) in &outputs {
        for (step, committed) in STEPS.iter().zip(tokens) {
            let ran = &runs[&(*id, step.to_string())];
            assert_eq!(
                ran.last(),
                Some(committed),
                "job {id} step {step}: a body ran after its result {committed} committed: {ran:?}"
            );
            assert_eq!(ran.iter().filter(|t| *t == committed).count(), 1);
            reruns_before_commit += ran.len() - 1;
        }
        let info = orders.get(*id).await.unwrap().unwrap();
        assert_eq!(info.state, JobState::Completed);
    }
    let mut recovered = 0;
    for id in outputs.keys() {
        recovered += engine
            .jobs()
            .events(*id)
            .read(0, 1_000)
            .await
            .unwrap()
            .iter()
            .filter(|e| matches!(e.kind, JobEventKind::Recovered { .. }))
            .count();
    }
    assert!(recovered > 0, "no kill landed while a job was running");
    eprintln!(
        "{kills} kills: {JOBS} jobs completed, {recovered} recoveries, {reruns_before_commit} step bodies re-ran after a kill before their commit, 0 after"
    );
    engine.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_keeps_dying_with_its_process_fails_with_crash_loop() {
    let (_dir, path) = temp_file();
    for kill in 1..=3u32 {
        let (mut child, mut out) = spawn_child("job_crash::job_child_entry", "hang", &path);
        let running = wait_for_line(&mut out, "hang-running ");
        // The crash does not charge an attempt: every run is attempt 1.
        assert_eq!(running, "1 1", "kill {kill}");
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
    }
    // The third recovery is over the budget of 2: recovery fails it at open, at once.
    let engine = Engine::open(&path).await.unwrap();
    let info = engine.jobs().get(1).await.unwrap().unwrap();
    assert_eq!((info.state, info.crashes), (JobState::Failed, 3));
    let error = info.last_error.unwrap();
    assert_eq!((error.code.as_str(), error.attempt), ("CRASH_LOOP", 1));
    let events = engine.jobs().events(1).read(0, 100).await.unwrap();
    let kinds: Vec<String> = events
        .iter()
        .map(|e| match &e.kind {
            JobEventKind::Started { attempt, epoch } => format!("started {attempt}@{epoch}"),
            other => other.name().to_string(),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "submitted",
            "started 1@1",
            "recovered",
            "started 1@2",
            "recovered",
            "started 1@3",
            "failed"
        ]
    );
    assert_eq!(engine.jobs().metrics().await.unwrap().recovered, 2);
    engine.shutdown(Duration::from_secs(5)).await.unwrap();
}
