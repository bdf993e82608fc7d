//! Crash torture: a child process runs a mixed workload (jobs with memoized steps, queue sends
//! and acks, topic publishes, a per-second schedule on a manual clock running 100 times fast)
//! and is SIGKILLed at a random moment, over and over. Every restart first checks what the
//! previous ones were told: every acknowledged send, submit, completion and publish is there,
//! and no acked message came back. At the end the parent drains the work and checks that
//! every job completed, no step body with a committed result ran again, and every schedule
//! slot from the first to the last was dispatched exactly once.
//!
//! Quick mode (CI): 100 kills. `JOBFILE_TORTURE_KILLS=n` runs n. `JOBFILE_TORTURE_SYNC_DELAY_US=n`
//! makes every sync of the children n µs slower, as on a network volume: the log's sync thread
//! then syncs while the writer goes on.

use crate::common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::jobs::AllIn;
use common::{Rng, T0, child_role, spawn_child, temp_file, wait_for_line};
use jobfile::testing::FaultInjector;
use jobfile::{
    Engine, EngineOptions, JobCtx, JobError, JobHandle, JobSpec, JobState, ManualClock, Misfire,
    Outcome, ScheduleSpec,
};

/// Manual milliseconds between the clocks of two rounds: more than a round ever runs.
const ROUND_MS: u64 = 100_000;
const STEPS: [&str; 2] = ["reserve", "charge"];

fn log_file(path: &Path) -> PathBuf {
    path.with_extension("acks")
}

fn side_file(path: &Path) -> PathBuf {
    path.with_extension("steps")
}

/// Appends one line in one write call: O_APPEND keeps lines whole and apart.
fn append(file: &Path, line: String) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(file)
        .expect("open log");
    f.write_all(format!("{line}\n").as_bytes()).expect("append");
}

fn lines(file: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(|l| l.split(' ').map(str::to_string).collect())
        .collect()
}

/// Orders: two steps, each appending `job step token` to the side file when its body runs and
/// committing the token. The output is the committed tokens.
fn register_orders(engine: &Engine, side: PathBuf) -> JobHandle<u64, Vec<String>> {
    static NONCE: AtomicU64 = AtomicU64::new(0);
    engine
        .register(
            JobSpec::new("order")
                .concurrency(4)
                .crash_budget(100_000)
                .lease(Duration::from_secs(24 * 3_600)),
            move |ctx: JobCtx, _n: u64| {
                let side = side.clone();
                async move {
                    let mut tokens = Vec::new();
                    for step in STEPS {
                        let (side, id) = (side.clone(), ctx.id());
                        let token = ctx
                            .step(step, || async move {
                                let token = format!(
                                    "{}-{}",
                                    std::process::id(),
                                    NONCE.fetch_add(1, Ordering::SeqCst)
                                );
                                append(&side, format!("{id} {step} {token}"));
                                tokio::time::sleep(Duration::from_millis(2)).await;
                                Ok::<_, JobError>(token)
                            })
                            .await?;
                        tokens.push(token);
                    }
                    Ok(tokens)
                }
            },
        )
        .expect("register orders")
}

fn register_beat(engine: &Engine) -> JobHandle<(), ()> {
    engine
        .register(
            JobSpec::new("beat")
                .concurrency(4)
                .crash_budget(100_000)
                .lease(Duration::from_secs(24 * 3_600)),
            |_: JobCtx, _: ()| async { Ok(()) },
        )
        .expect("register beat")
}

/// Checks the file against everything the log says was acknowledged. Returns the violations.
async fn check(engine: &Engine, path: &Path, orders: &JobHandle<u64, Vec<String>>) -> Vec<String> {
    let mut bad = Vec::new();
    let log = lines(&log_file(path));
    let q = engine.queue("work").unwrap();
    let received: std::collections::HashSet<&str> = log
        .iter()
        .filter(|l| l[0] == "recv" && l.len() == 2)
        .map(|l| l[1].as_str())
        .collect();
    let events = engine
        .topic("events")
        .unwrap()
        .read(1, usize::MAX)
        .await
        .unwrap();
    let events: HashMap<u64, Vec<u8>> = events.into_iter().map(|e| (e.seq, e.payload)).collect();
    for l in &log {
        match (l[0].as_str(), l.len()) {
            ("sent", 3) => {
                let id: u64 = l[2].parse().unwrap();
                match q.get(id).await.unwrap() {
                    Some(m) if m.payload != format!("m{}", l[1]).into_bytes() => {
                        bad.push(format!("message {id} has the wrong payload"))
                    }
                    Some(_) => {}
                    None if received.contains(l[2].as_str()) => {}
                    None => bad.push(format!("acknowledged send {id} was lost")),
                }
            }
            ("acked", 2) if q.get(l[1].parse().unwrap()).await.unwrap().is_some() => {
                bad.push(format!("acked message {} came back", l[1]));
            }
            ("sub", 3) => {
                if let Err(e) = engine.jobs().get(l[2].parse().unwrap()).await {
                    bad.push(format!("acknowledged submit {}: {e}", l[2]));
                }
            }
            ("done", 3) => {
                let id: u64 = l[1].parse().unwrap();
                match orders.join(id, Some(Duration::ZERO)).await {
                    Ok(Outcome::Completed(out)) if out.join(",") == l[2] => {}
                    other => bad.push(format!("completed job {id} is now {other:?}")),
                }
            }
            ("pub", 3) => {
                let seq: u64 = l[2].parse().unwrap();
                if events.get(&seq) != Some(&format!("e{}", l[1]).into_bytes()) {
                    bad.push(format!("acknowledged publish {seq} was lost"));
                }
            }
            _ => {} // a line cut short by the kill, or one with nothing to check
        }
    }
    bad
}

/// The body of every child process (ignored in a normal run; the test below starts it).
#[test]
#[ignore = "child process entry point, started by the test in this file"]
fn torture_child_entry() {
    let Some((role, path)) = child_role() else {
        return;
    };
    let round: u64 = role.parse().expect("round");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        let clock = ManualClock::new(T0 + round * ROUND_MS);
        let mut options = EngineOptions::new().clock(clock.clone());
        if let Some(us) = std::env::var("JOBFILE_TORTURE_SYNC_DELAY_US")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            let slow = FaultInjector::new();
            slow.slow_syncs(Duration::from_micros(us));
            options = options.fault_injector(slow);
        }
        let engine = options.open(&path).await.expect("child open");
        let orders = register_orders(&engine, side_file(&path));
        let violations = check(&engine, &path, &orders).await;
        for v in &violations {
            eprintln!("violation: {v}");
        }
        println!("checked {}", violations.len());
        let beat = register_beat(&engine);
        engine
            .scheduler()
            .register(
                ScheduleSpec::new("tick", "* * * * * *")
                    .misfire(Misfire::CatchUpAll)
                    .max_catch_up(1_000),
                &beat,
                (),
            )
            .await
            .expect("schedule");
        let log = log_file(&path);
        // The clock runs 100 times fast: one manual second per 10 ms.
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                clock.advance(Duration::from_secs(1));
            }
        });
        // A consumer that logs what it received before acking, and the ack after.
        let q = engine.queue("work").unwrap();
        {
            let (q, log) = (q.clone(), log.clone());
            tokio::spawn(async move {
                loop {
                    let d = q
                        .receive_for(Duration::from_secs(3_600))
                        .await
                        .expect("receive");
                    append(&log, format!("recv {}", d.id()));
                    d.ack().await.expect("ack");
                    append(&log, format!("acked {}", d.id()));
                }
            });
        }
        let topic = engine.topic("events").unwrap();
        let done = Arc::new(log.clone());
        println!("ready {}", engine.epoch());
        for k in 0.. {
            let n = round * 1_000_000 + k;
            let sent = q.send(format!("m{n}").into_bytes()).await.expect("send");
            append(&log, format!("sent {n} {}", sent.id));
            let job = orders.submit(n).key(format!("j{n}")).await.expect("submit");
            append(&log, format!("sub {n} {}", job.id));
            let (orders, done) = (orders.clone(), done.clone());
            tokio::spawn(async move {
                if let Ok(Outcome::Completed(out)) = orders.join(job.id, None).await {
                    append(&done, format!("done {} {}", job.id, out.join(",")));
                }
            });
            let event = topic
                .publish(format!("e{n}").into_bytes())
                .await
                .expect("publish");
            append(&log, format!("pub {n} {}", event.seq));
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_hundreds_of_times_nothing_acknowledged_is_lost_and_nothing_runs_twice() {
    let kills: u64 = std::env::var("JOBFILE_TORTURE_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let (_dir, path) = temp_file();
    let mut rng = Rng::new();
    let mut violations = 0;
    for round in 0..kills {
        let (mut child, mut out) =
            spawn_child("torture::torture_child_entry", &round.to_string(), &path);
        let found: usize = wait_for_line(&mut out, "checked ").parse().unwrap();
        violations += found;
        assert_eq!(
            found, 0,
            "round {round}: violations after a restart (see stderr)"
        );
        let epoch: u64 = wait_for_line(&mut out, "ready ").parse().unwrap();
        assert_eq!(epoch, round + 1);
        tokio::time::sleep(Duration::from_millis(10 + rng.below(150))).await;
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
    }

    // Drain: the parent takes over on a clock past every round and finishes all work.
    let clock = ManualClock::new(T0 + kills * ROUND_MS);
    let engine = EngineOptions::new()
        .clock(clock.clone())
        .open(&path)
        .await
        .unwrap();
    let orders = register_orders(&engine, side_file(&path));
    let final_check = check(&engine, &path, &orders).await;
    assert!(final_check.is_empty(), "{final_check:?}");
    register_beat(&engine);
    engine.scheduler().tick().await.unwrap();
    let log = lines(&log_file(&path));
    let submitted: Vec<u64> = log
        .iter()
        .filter(|l| l[0] == "sub" && l.len() == 3)
        .map(|l| l[2].parse().unwrap())
        .collect();
    // Every job completes; its output is the last token each step body wrote.
    let mut last_token: HashMap<(u64, String), String> = HashMap::new();
    let mut outputs = Vec::new();
    for id in orders_in_file(&engine).await {
        let out = match tokio::time::timeout(Duration::from_secs(60), orders.join(id, None))
            .await
            .expect("drain")
            .unwrap()
        {
            Outcome::Completed(out) => out,
            other => panic!("job {id} ended {other:?}"),
        };
        outputs.push((id, out));
    }
    // How many times each step body ran, and the token it wrote last.
    let mut runs: HashMap<(u64, String), usize> = HashMap::new();
    for l in lines(&side_file(&path)) {
        if l.len() == 3 {
            let key = (l[0].parse().unwrap(), l[1].clone());
            *runs.entry(key.clone()).or_default() += 1;
            last_token.insert(key, l[2].clone());
        }
    }
    let mut reruns_before_commit = 0;
    for (id, out) in &outputs {
        for (step, token) in STEPS.iter().zip(out) {
            assert_eq!(
                last_token.get(&(*id, step.to_string())),
                Some(token),
                "job {id} step {step}: a body ran again after its result was committed"
            );
            reruns_before_commit += runs[&(*id, step.to_string())] - 1;
        }
    }
    let finished: BTreeSet<u64> = outputs.iter().map(|(id, _)| *id).collect();
    assert!(submitted.iter().all(|id| finished.contains(id)));
    // Every schedule slot from the first to the last, exactly once.
    // Listed state by state in lifecycle order while the beats run: a job that moves on between
    // two lists shows up twice, never not at all, so jobs are counted by id.
    let mut per_slot: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    for state in [JobState::Queued, JobState::Running, JobState::Completed] {
        for job in engine.jobs().all_in(state).await {
            if let Some(slot) = job.key.as_deref().and_then(|k| k.strip_prefix("tick:")) {
                per_slot
                    .entry(slot.parse().unwrap())
                    .or_default()
                    .insert(job.id);
            }
        }
    }
    let slots: Vec<u64> = per_slot.keys().copied().collect();
    assert!(
        per_slot.values().all(|ids| ids.len() == 1),
        "a slot ran twice"
    );
    for pair in slots.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            1_000,
            "a slot was lost after {}",
            pair[0]
        );
    }
    let stats = engine.queue("work").unwrap().stats().await.unwrap();
    eprintln!(
        "{kills} kills survived, {violations} violations; {} jobs completed ({} step bodies re-ran \
         before their commit, 0 after), {} schedule slots each dispatched once, {} messages \
         still queued",
        outputs.len(),
        reruns_before_commit,
        slots.len(),
        stats.ready + stats.leased
    );
    engine.shutdown(Duration::from_secs(5)).await.unwrap();
}

/// Every order job in the file, by id.
async fn orders_in_file(engine: &Engine) -> Vec<u64> {
    let mut ids = Vec::new();
    for state in [
        JobState::Queued,
        JobState::Running,
        JobState::Completed,
        JobState::Failed,
        JobState::TimedOut,
        JobState::Cancelled,
    ] {
        for job in engine.jobs().all_in(state).await {
            if job.name == "order" {
                ids.push(job.id);
            }
        }
    }
    ids.sort_unstable();
    ids
}
