//! Several nodes on one PostgreSQL schema, as real processes (or engines in this one):
//! exactly-once claiming across nodes, a SIGKILLed node's attempts recovered by a survivor
//! without re-running committed steps, a SIGSTOPped node's late writes refused, a cancel
//! crossing nodes, a per-second schedule that keeps exactly one job per slot while the node
//! dispatching it is killed, a killed consumer-group member's deliveries and a killed queue
//! receiver's messages handed to a survivor, concurrent publishes from two nodes numbered
//! without gaps, an ephemeral set's capacity and change stream shared by two nodes, and
//! poll-only nodes. Each test uses a schema of its own; skipped unless `JOBFILE_TEST_PG` is
//! set.

use crate::common;

use std::time::Duration;

use common::pg::PgSchema;
use common::{KillOnDrop, spawn_child, wait_for_line};
use jobfile::{Engine, EngineOptions, JobCtx, JobError, JobSpec, JobState};

/// How nodes judge each other in these tests: quick, so recovery is quick. Small pools: every
/// node of every test shares the server's connection budget.
fn liveness(options: EngineOptions) -> EngineOptions {
    options
        .node_liveness(
            Duration::from_millis(200),
            Duration::from_secs(1),
            Duration::from_secs(4),
        )
        .postgres_pool_size(4)
}

/// The reclaim time of the topic tests' members: far beyond any wait of these tests, so what
/// a member gets again, it gets because its holder died.
const RECLAIM: Duration = Duration::from_secs(3600);

/// The tests of this file run one at a time: each starts several node processes, and together
/// they would crowd the machine's two cores and the server's connections, and so the timings
/// they check.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A plain client on the test's schema, for the side tables handlers write.
async fn side_client(schema: &str) -> tokio_postgres::Client {
    let url = std::env::var("JOBFILE_TEST_PG").expect("JOBFILE_TEST_PG");
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {schema}; SET search_path = {schema};
             CREATE TABLE IF NOT EXISTS side (job_id bigint NOT NULL, node bigint NOT NULL);
             CREATE TABLE IF NOT EXISTS go (flag int);
             CREATE TABLE IF NOT EXISTS taken (seq bigint NOT NULL, node bigint NOT NULL,
                                               deliveries int NOT NULL);"
        ))
        .await
        .expect("side tables");
    client
}

/// A handler's whole work in these tests: one row in `side` saying which node ran the job.
async fn record_run(
    side: std::sync::Arc<tokio_postgres::Client>,
    ctx: JobCtx,
    node: i64,
) -> Result<(), JobError> {
    side.execute(
        "INSERT INTO side (job_id, node) VALUES ($1, $2)",
        &[&(ctx.id() as i64), &node],
    )
    .await
    .map_err(|e| JobError::retryable(e.to_string()))?;
    Ok(())
}

/// The body of every child node (ignored in a normal run; the tests below start it).
#[test]
#[ignore = "child process entry point, started by the tests in this file"]
fn child_node() {
    let Some((role, schema)) = common::child_role() else {
        return;
    };
    let schema = schema.display().to_string();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        let url = std::env::var("JOBFILE_TEST_PG").expect("JOBFILE_TEST_PG");
        let mut options = liveness(EngineOptions::new().postgres_schema(&schema));
        if role == "cron" {
            // Says which slots this node dispatched.
            options = options.on_scheduler_metric(|m| {
                if let jobfile::SchedulerMetric::DispatchSubmitted { slot_ms, .. } = m {
                    println!("dispatched {slot_ms}");
                }
            });
        }
        let engine = options.connect(&url).await.expect("child connect");
        let node = engine.epoch() as i64;
        let side = std::sync::Arc::new(side_client(&schema).await);
        match role.as_str() {
            // Records each job it runs in `side`, once per attempt.
            "count" => {
                engine
                    .register(
                        JobSpec::new("work").concurrency(16),
                        move |ctx: JobCtx, _: u64| record_run(side.clone(), ctx, node),
                    )
                    .expect("register");
            }
            // Records each job in a memoized step, then waits for the `go` flag.
            "hold" => {
                let side = side.clone();
                engine
                    .register(
                        JobSpec::new("held").concurrency(64).max_attempts(1),
                        move |ctx: JobCtx, _: u64| {
                            let side = side.clone();
                            async move {
                                let id = ctx.id() as i64;
                                let s = side.clone();
                                ctx.step("mark", || async move {
                                    s.execute(
                                        "INSERT INTO side (job_id, node) VALUES ($1, $2)",
                                        &[&id, &node],
                                    )
                                    .await
                                    .map_err(|e| JobError::retryable(e.to_string()))?;
                                    Ok::<_, JobError>(())
                                })
                                .await?;
                                loop {
                                    let go = side
                                        .query_opt("SELECT 1 FROM go", &[])
                                        .await
                                        .map_err(|e| JobError::retryable(e.to_string()))?;
                                    if go.is_some() {
                                        break;
                                    }
                                    // The write a stale node makes: refused once it lost the job.
                                    if let Err(e) = ctx.heartbeat().await {
                                        println!("lost {} {}", ctx.id(), e.code_str());
                                        return Err(e);
                                    }
                                    tokio::time::sleep(Duration::from_millis(50)).await;
                                }
                                Ok(())
                            }
                        },
                    )
                    .expect("register");
            }
            // Waits to be cancelled, then says so.
            "await-cancel" => {
                engine
                    .register(
                        JobSpec::new("cancellable"),
                        move |ctx: JobCtx, _: u64| async move {
                            println!("started {}", ctx.id());
                            let why = ctx.cancelled().await;
                            println!("stopped {} {why:?}", ctx.id());
                            Ok(())
                        },
                    )
                    .expect("register");
            }
            // Runs a per-second schedule (registered by every node alike) whose jobs record
            // themselves in `side`.
            "cron" => {
                let side = side.clone();
                let tick = engine
                    .register(
                        JobSpec::new("tick").concurrency(4),
                        move |ctx: JobCtx, _: String| record_run(side.clone(), ctx, node),
                    )
                    .expect("register");
                engine
                    .scheduler()
                    .register(
                        jobfile::ScheduleSpec::new("every-second", "* * * * * *"),
                        &tick,
                        "tick".into(),
                    )
                    .await
                    .expect("schedule");
            }
            // A member of the group `billing` of the topic `orders`, which records each
            // delivery in `taken`; it commits what it took, or (`members-hold`) never does.
            "members-hold" | "members-commit" => {
                let commit = role == "members-commit";
                let topic = engine
                    .topic_with("orders", jobfile::TopicOptions::default().reclaim(RECLAIM))
                    .expect("topic");
                let group = topic.group("billing");
                tokio::spawn(async move {
                    loop {
                        let Ok(got) = group.receive(100).await else {
                            return;
                        };
                        for d in &got {
                            side.execute(
                                "INSERT INTO taken (seq, node, deliveries) VALUES ($1, $2, $3)",
                                &[&(d.event.seq as i64), &node, &(d.deliveries as i32)],
                            )
                            .await
                            .expect("record a delivery");
                        }
                        if commit {
                            let seqs: Vec<u64> = got.iter().map(|d| d.event.seq).collect();
                            group.commit_many(&seqs).await.expect("commit");
                        }
                    }
                });
            }
            // A receiver of the queue `jobs`, which records each delivery in `taken`; it
            // acks what it got, or (`receivers-hold`) never does.
            "receivers-hold" | "receivers-ack" => {
                let ack = role == "receivers-ack";
                let queue = engine.queue("jobs").expect("queue");
                tokio::spawn(async move {
                    loop {
                        let Ok(got) = queue.receive_batch(100, RECLAIM).await else {
                            return;
                        };
                        for d in got {
                            side.execute(
                                "INSERT INTO taken (seq, node, deliveries) VALUES ($1, $2, $3)",
                                &[&(d.id() as i64), &node, &(d.deliveries() as i32)],
                            )
                            .await
                            .expect("record a delivery");
                            if ack {
                                d.ack().await.expect("ack");
                            }
                        }
                    }
                });
            }
            other => panic!("unknown role {other}"),
        }
        println!("joined as node {node}");
        std::future::pending::<()>().await;
    });
}

/// Starts a child node in `role` on `schema`; returns it and its node id.
fn node(
    role: &str,
    schema: &str,
) -> (
    KillOnDrop,
    std::io::BufReader<std::process::ChildStdout>,
    i64,
) {
    let (child, mut out) = spawn_child("pg_nodes::child_node", role, std::path::Path::new(schema));
    let id = wait_for_line(&mut out, "joined as node ")
        .parse()
        .expect("node id");
    (child, out, id)
}

async fn count(side: &tokio_postgres::Client, sql: &str) -> i64 {
    side.query_one(sql, &[]).await.expect("count").get(0)
}

/// Waits up to `secs` for `sql` (a count) to reach `want`.
async fn until_count(side: &tokio_postgres::Client, sql: &str, want: i64, secs: u64) -> i64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let n = count(side, sql).await;
        if n >= want || tokio::time::Instant::now() > deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// This test's turn, its own node in this process, and a side client.
async fn this_node(
    schema: &PgSchema,
) -> (
    tokio::sync::MutexGuard<'static, ()>,
    Engine,
    tokio_postgres::Client,
) {
    let one = ONE_AT_A_TIME.lock().await;
    let engine = liveness(schema.options())
        .connect(&schema.url)
        .await
        .expect("connect");
    let side = side_client(&schema.schema).await;
    (one, engine, side)
}

/// Every delivery the members or receivers recorded: (event or message, node, delivery
/// number), by node then event.
async fn taken(side: &tokio_postgres::Client) -> Vec<(i64, i64, i32)> {
    side.query(
        "SELECT seq, node, deliveries FROM taken ORDER BY node, seq",
        &[],
    )
    .await
    .expect("taken")
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_claim_every_job_exactly_once() {
    let Some(schema) = PgSchema::new() else {
        return;
    };
    let _one = ONE_AT_A_TIME.lock().await;
    let jobs: u64 = std::env::var("JOBFILE_PG_JOBS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3_000);
    let engine = liveness(schema.options())
        .connect(&schema.url)
        .await
        .expect("connect");
    let side = side_client(&schema.schema).await;
    let work = engine.job::<u64, ()>(JobSpec::new("work")).unwrap();
    for chunk in (0..jobs).collect::<Vec<_>>().chunks(500) {
        work.submit_many(chunk.iter().map(|&n| work.submit(n)))
            .await
            .unwrap();
    }
    let started = std::time::Instant::now();
    let nodes: Vec<_> = (0..3).map(|_| node("count", &schema.schema)).collect();
    // Two minutes for the default 3,000; more for a larger run (JOBFILE_PG_JOBS).
    let patience = 120 + jobs / 100;
    let done = until_count(&side, "SELECT count(*) FROM side", jobs as i64, patience).await;
    let elapsed = started.elapsed();
    assert_eq!(done, jobs as i64, "every job ran");
    // Give a stray second run the time to show up, then check there is none.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(count(&side, "SELECT count(*) FROM side").await, jobs as i64);
    assert_eq!(
        count(&side, "SELECT count(DISTINCT job_id) FROM side").await,
        jobs as i64
    );
    let per_node = side
        .query(
            "SELECT node, count(*) FROM side GROUP BY node ORDER BY node",
            &[],
        )
        .await
        .unwrap();
    let ids: Vec<i64> = nodes.iter().map(|n| n.2).collect();
    println!(
        "{jobs} jobs on 3 nodes in {:.2} s ({:.0} jobs/s): {:?}",
        elapsed.as_secs_f64(),
        jobs as f64 / elapsed.as_secs_f64(),
        per_node
            .iter()
            .map(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1)))
            .collect::<Vec<_>>()
    );
    for row in &per_node {
        assert!(
            ids.contains(&row.get::<_, i64>(0)),
            "only the three nodes ran jobs"
        );
    }
    let m = engine.jobs().metrics().await.unwrap();
    assert_eq!(
        (m.completed, m.started, m.queued_now, m.running_now),
        (jobs, jobs, 0, 0)
    );
    drop(nodes);
    engine.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_attempts_are_recovered_by_a_survivor_without_rerunning_steps() {
    let Some(schema) = PgSchema::new() else {
        return;
    };
    let (_one, engine, side) = this_node(&schema).await;
    let held = engine
        .job::<u64, ()>(JobSpec::new("held").max_attempts(1))
        .unwrap();
    let mut ids = Vec::new();
    for n in 0..20 {
        // Acknowledged here: each must survive whatever happens to the nodes.
        ids.push(held.submit(n).await.unwrap().id);
    }
    let (mut a, _a_out, a_id) = node("hold", &schema.schema);
    // Every job's step committed on A, and A still runs them all.
    assert_eq!(
        until_count(&side, "SELECT count(*) FROM side", 20, 30).await,
        20
    );
    let (_b, _b_out, b_id) = node("hold", &schema.schema);
    a.kill().unwrap();
    a.wait().unwrap();
    let killed_at = std::time::Instant::now();
    // B (or this node, which runs no handler) finds A dead within its grace period and puts
    // its jobs back in line; B runs them, its steps answered from the file of record.
    let recovered = {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let page = engine
                .jobs()
                .list()
                .state(JobState::Running)
                .limit(100)
                .await
                .unwrap();
            let on_b = page
                .jobs
                .iter()
                .filter(|j| j.attempts == 1 && j.crashes == 1)
                .count();
            if on_b == 20 || tokio::time::Instant::now() > deadline {
                break on_b;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    assert_eq!(recovered, 20, "every job of the killed node runs again");
    println!(
        "recovered 20 attempts {} ms after the kill",
        killed_at.elapsed().as_millis()
    );
    side.execute("INSERT INTO go VALUES (1)", &[])
        .await
        .unwrap();
    for &id in &ids {
        let outcome = held.join(id, Some(Duration::from_secs(20))).await.unwrap();
        assert_eq!(outcome, jobfile::Outcome::Completed(()), "job {id}");
        let events = engine.jobs().events(id).read(0, 100).await.unwrap();
        // (The handler heartbeats while it waits: as many as the timing allows.)
        let kinds: Vec<&str> = common::jobs::names(&events)
            .into_iter()
            .filter(|k| *k != "heartbeat")
            .collect();
        assert_eq!(
            kinds,
            [
                "submitted",
                "started",
                "step_completed",
                "recovered",
                "started",
                "completed"
            ],
            "job {id}"
        );
        let epochs: Vec<u64> = events
            .iter()
            .filter_map(|e| match e.kind {
                jobfile::JobEventKind::Started { epoch, .. } => Some(epoch),
                _ => None,
            })
            .collect();
        assert_eq!(epochs, [a_id as u64, b_id as u64], "job {id}");
    }
    // The committed step ran once per job, on A: B got its stored result.
    assert_eq!(count(&side, "SELECT count(*) FROM side").await, 20);
    assert_eq!(
        count(
            &side,
            &format!("SELECT count(*) FROM side WHERE node = {a_id}")
        )
        .await,
        20
    );
    engine.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_node_past_its_lease_loses_its_job_and_its_late_writes_are_refused() {
    let Some(schema) = PgSchema::new() else {
        return;
    };
    let (_one, engine, side) = this_node(&schema).await;
    let held = engine
        .job::<u64, ()>(JobSpec::new("held").max_attempts(1))
        .unwrap();
    let id = held.submit(1).await.unwrap().id;
    let (a, mut a_out, a_id) = node("hold", &schema.schema);
    assert_eq!(
        until_count(&side, "SELECT count(*) FROM side", 1, 30).await,
        1
    );
    let pid = a.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success()
    );
    // Past A's lease (4 s), this node finds it dead although its connection lives, and puts
    // the job back in line (crash 1 of 3).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let info = loop {
        let info = engine.jobs().get(id).await.unwrap().unwrap();
        if info.crashes == 1 || tokio::time::Instant::now() > deadline {
            break info;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!((info.state, info.crashes), (JobState::Queued, 1));
    assert!(
        std::process::Command::new("kill")
            .args(["-CONT", &pid])
            .status()
            .unwrap()
            .success()
    );
    // A wakes: its next heartbeat for the job is refused (the attempt is no longer its own).
    let lost = tokio::task::spawn_blocking(move || wait_for_line(&mut a_out, "lost "));
    let lost = tokio::time::timeout(Duration::from_secs(15), lost)
        .await
        .expect("A noticed")
        .unwrap();
    assert_eq!(lost, format!("{id} LOST"));
    // Nothing A did after waking changed the job.
    let after = engine.jobs().get(id).await.unwrap().unwrap();
    assert_eq!(
        (after.state, after.crashes, after.attempts),
        (JobState::Queued, 1, 0)
    );
    let events = engine.jobs().events(id).read(0, 100).await.unwrap();
    assert_eq!(common::jobs::names(&events).last(), Some(&"recovered"));
    assert!(events.iter().any(|e| matches!(&e.kind, jobfile::JobEventKind::Recovered { reason } if reason.contains(&format!("node {a_id}")))));
    drop(a);
    engine.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_on_one_node_stops_the_handler_on_another() {
    let Some(schema) = PgSchema::new() else {
        return;
    };
    let _one = ONE_AT_A_TIME.lock().await;
    let engine: Engine = liveness(schema.options())
        .connect(&schema.url)
        .await
        .expect("connect");
    let cancellable = engine.job::<u64, ()>(JobSpec::new("cancellable")).unwrap();
    let (_b, mut b_out, _b_id) = node("await-cancel", &schema.schema);
    let id = cancellable.submit(1).await.unwrap().id;
    let mut out = tokio::task::spawn_blocking(move || {
        let started = wait_for_line(&mut b_out, "started ");
        (started, b_out)
    })
    .await
    .unwrap();
    assert_eq!(out.0, id.to_string());
    assert_eq!(
        engine.jobs().cancel(id, "not needed").await.unwrap(),
        jobfile::CancelOutcome::Cancelled
    );
    let stopped = tokio::task::spawn_blocking(move || wait_for_line(&mut out.1, "stopped "));
    let stopped = tokio::time::timeout(Duration::from_secs(10), stopped)
        .await
        .expect("B was told")
        .unwrap();
    assert_eq!(stopped, format!("{id} Cancelled(\"not needed\")"));
    assert_eq!(
        cancellable.join(id, None).await.unwrap(),
        jobfile::Outcome::Cancelled("not needed".into())
    );
    engine.shutdown(Duration::from_secs(5)).await.unwrap();
}

/// The slots a node's output says it dispatched, read on a thread of its own.
fn dispatched_slots(
    node: i64,
    out: std::io::BufReader<std::process::ChildStdout>,
    seen: std::sync::Arc<std::sync::Mutex<Vec<(u64, i64)>>>,
) {
    use std::io::BufRead;
    std::thread::spawn(move || {
        for line in out.lines() {
            let Ok(line) = line else { return };
            if let Some(slot) = line.trim().strip_prefix("dispatched ") {
                seen.lock()
                    .unwrap()
                    .push((slot.parse().expect("slot"), node));
            }
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_second_schedule_keeps_one_job_per_slot_while_its_dispatching_node_is_killed() {
    let Some(schema) = PgSchema::new() else {
        return;
    };
    let _one = ONE_AT_A_TIME.lock().await;
    let side = side_client(&schema.schema).await;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(u64, i64)>::new()));
    let mut nodes = Vec::new();
    for _ in 0..3 {
        let (child, out, id) = node("cron", &schema.schema);
        dispatched_slots(id, out, seen.clone());
        nodes.push((child, id));
    }
    let latest =
        |seen: &std::sync::Mutex<Vec<(u64, i64)>>| seen.lock().unwrap().iter().max().copied();
    // Let the three nodes dispatch for a while, then kill whichever dispatched the newest slot
    // (its next pass may be under way), at a moment that varies from run to run.
    let mut rng = common::Rng::new();
    tokio::time::sleep(Duration::from_millis(3_000 + rng.below(1_000))).await;
    let (slot_at_kill, victim) = latest(&seen).expect("slots dispatched before the kill");
    let at = nodes.iter().position(|(_, id)| *id == victim).unwrap();
    let (mut child, _) = nodes.remove(at);
    child.kill().unwrap();
    child.wait().unwrap();
    println!("killed node {victim}, which dispatched slot {slot_at_kill}");
    // The survivors go on: wait until they have dispatched five more slots.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let last = loop {
        let (last, _) = latest(&seen).unwrap();
        if last >= slot_at_kill + 5_000 || std::time::Instant::now() > deadline {
            break last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        last >= slot_at_kill + 5_000,
        "the survivors went on dispatching"
    );
    // Every slot from the first to the last has exactly one job: none lost across the kill,
    // none twice.
    let rows = side
        .query("SELECT key FROM jobs WHERE name = 'tick' ORDER BY key", &[])
        .await
        .unwrap();
    let mut slots: Vec<u64> = rows
        .iter()
        .map(|r| {
            let key: String = r.get(0);
            key.strip_prefix("every-second:")
                .expect("slot key")
                .parse()
                .unwrap()
        })
        .collect();
    slots.sort_unstable();
    let (first, newest) = (slots[0], *slots.last().unwrap());
    let expected: Vec<u64> = (0..=(newest - first) / 1_000)
        .map(|i| first + i * 1_000)
        .collect();
    assert_eq!(slots, expected, "one job per slot from {first} to {newest}");
    // The nodes' own accounts agree: each slot dispatched by exactly one node, and the slots
    // after the kill by the survivors.
    let mut dispatched = seen.lock().unwrap().clone();
    dispatched.sort_unstable();
    let mut by_slot: Vec<u64> = dispatched.iter().map(|(s, _)| *s).collect();
    by_slot.dedup();
    assert_eq!(by_slot.len(), dispatched.len(), "no slot dispatched twice");
    assert!(by_slot.iter().all(|s| slots.binary_search(s).is_ok()));
    assert!(
        dispatched
            .iter()
            .filter(|(s, _)| *s > slot_at_kill + 1_000)
            .all(|(_, n)| *n != victim),
        "the killed node dispatched nothing after its death"
    );
    // Every slot's job ran (a job the killed node was running ran again on a survivor).
    let ran = until_count(
        &side,
        &format!(
            "SELECT count(DISTINCT j.id) FROM jobs j JOIN side s ON s.job_id = j.id
             WHERE j.name = 'tick' AND j.key <= 'every-second:{newest}'"
        ),
        slots.len() as i64,
        30,
    )
    .await;
    assert_eq!(ran, slots.len() as i64, "every slot's job ran");
    drop(nodes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_deliveries_of_a_killed_member_go_to_a_survivor_at_once_and_publishes_reach_other_nodes()
 {
    let Some(schema) = PgSchema::new() else {
        return;
    };
    let (_one, engine, side) = this_node(&schema).await;
    let orders = engine.topic("orders").unwrap();
    for n in 1..=20u64 {
        assert_eq!(
            orders.publish(n.to_be_bytes().to_vec()).await.unwrap().seq,
            n
        );
    }
    let (mut a, _a_out, a_id) = node("members-hold", &schema.schema);
    assert_eq!(
        until_count(&side, "SELECT count(*) FROM taken", 20, 30).await,
        20
    );
    // B joins the group: everything is out with A, for an hour.
    let (_b, _b_out, b_id) = node("members-commit", &schema.schema);
    a.kill().unwrap();
    a.wait().unwrap();
    let group = orders.group("billing");
    let committed = "SELECT committed_through FROM topic_groups WHERE name = 'billing'";
    until_count(&side, committed, 20, 30).await;
    assert_eq!(
        group.committed_through().await.unwrap(),
        20,
        "A's deliveries went to B when A was found dead, not after the reclaim time"
    );
    // Published here, taken on B: woken by the notice, without a poll.
    for n in 21..=30u64 {
        orders.publish(n.to_be_bytes().to_vec()).await.unwrap();
    }
    until_count(&side, committed, 30, 30).await;
    assert_eq!(group.committed_through().await.unwrap(), 30);
    let rows = taken(&side).await;
    let mut want: Vec<(i64, i64, i32)> = (1..=20).map(|seq| (seq, a_id, 1)).collect();
    want.extend((1..=20).map(|seq| (seq, b_id, 2)));
    want.extend((21..=30).map(|seq| (seq, b_id, 1)));
    want.sort_by_key(|&(seq, node, _)| (node, seq));
    assert_eq!(rows, want, "each event taken once by A, then once by B");
    engine.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_from_two_nodes_at_once_are_numbered_without_gaps_in_commit_order() {
    let Some(schema) = PgSchema::new() else {
        return;
    };
    let _one = ONE_AT_A_TIME.lock().await;
    let first = liveness(schema.options())
        .connect(&schema.url)
        .await
        .expect("connect");
    let second = liveness(schema.options())
        .connect(&schema.url)
        .await
        .expect("connect");
    // Follows from the start, on the first node: it must see every event, in order, with
    // no gap, though half are published on the other node.
    let mut feed = first
        .topic("t")
        .unwrap()
        .subscribe(jobfile::StartAt::Beginning)
        .await;
    let mut publishers = Vec::new();
    for (n, engine) in [&first, &second].into_iter().enumerate() {
        for task in 0..4 {
            let topic = engine.topic("t").unwrap();
            publishers.push(tokio::spawn(async move {
                let mut seqs = Vec::new();
                for i in 0..50 {
                    let payload = format!("{n}-{task}-{i}").into_bytes();
                    seqs.push(topic.publish(payload).await.unwrap().seq);
                }
                seqs
            }));
        }
    }
    let mut seqs = Vec::new();
    for p in publishers {
        let mine = p.await.unwrap();
        assert!(
            mine.windows(2).all(|w| w[0] < w[1]),
            "one publisher's events in its order"
        );
        seqs.extend(mine);
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=400).collect::<Vec<u64>>());
    let mut seen = Vec::new();
    while seen.len() < 400 {
        let event = tokio::time::timeout(Duration::from_secs(10), feed.next())
            .await
            .expect("the feed goes on")
            .unwrap()
            .unwrap();
        seen.push(event.seq);
    }
    assert_eq!(seen, (1..=400).collect::<Vec<u64>>());
    let events = second.topic("t").unwrap().read(1, 1000).await.unwrap();
    let mut payloads: Vec<Vec<u8>> = events.into_iter().map(|e| e.payload).collect();
    payloads.sort();
    payloads.dedup();
    assert_eq!(payloads.len(), 400, "every publish stored once");
    first.shutdown(Duration::from_secs(5)).await.unwrap();
    second.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_receivers_messages_go_to_a_survivor_when_it_is_found_dead() {
    let Some(schema) = PgSchema::new() else {
        return;
    };
    let (_one, engine, side) = this_node(&schema).await;
    let queue = engine.queue("jobs").unwrap();
    let mut ids = Vec::new();
    for n in 0..20u64 {
        ids.push(queue.send(n.to_be_bytes().to_vec()).await.unwrap().id);
    }
    let (mut a, _a_out, a_id) = node("receivers-hold", &schema.schema);
    assert_eq!(
        until_count(&side, "SELECT count(*) FROM taken", 20, 30).await,
        20
    );
    // B waits: every message is leased to A, for an hour.
    let (_b, _b_out, b_id) = node("receivers-ack", &schema.schema);
    a.kill().unwrap();
    a.wait().unwrap();
    assert_eq!(
        until_count(&side, "SELECT count(*) FROM taken", 40, 30).await,
        40,
        "A's messages went to B when A was found dead, not when their lease ran out"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while queue.stats().await.unwrap().leased > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        queue.stats().await.unwrap(),
        jobfile::QueueStats::default(),
        "all acked"
    );
    let rows = taken(&side).await;
    let mut want: Vec<(i64, i64, i32)> = ids.iter().map(|&id| (id as i64, a_id, 1)).collect();
    want.extend(ids.iter().map(|&id| (id as i64, b_id, 2)));
    want.sort_by_key(|&(id, node, _)| (node, id));
    assert_eq!(
        rows, want,
        "each message delivered once to A, then once to B"
    );
    engine.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_only_nodes_find_each_others_work_without_listen_or_session_locks() {
    let Some(schema) = PgSchema::new() else {
        return;
    };
    let _one = ONE_AT_A_TIME.lock().await;
    let connect = || {
        liveness(schema.options())
            .postgres_poll_only(true)
            .connect(&schema.url)
    };
    let (a, b) = (
        connect().await.expect("connect"),
        connect().await.expect("connect"),
    );
    let side = side_client(&schema.schema).await;
    // Nothing that needs a session: no listener connection, no liveness lock.
    let listeners = count(
        &side,
        &format!(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = '{} listener'",
            schema.schema
        ),
    )
    .await;
    assert_eq!(listeners, 0);
    let locks = count(
        &side,
        &format!(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
               AND classid::bigint = (hashtext('jobfile node {}')::bigint & 4294967295)",
            schema.schema
        ),
    )
    .await;
    assert_eq!(locks, 0);
    // A job submitted on A runs on B, and A's join sees it finish.
    let on_a = a.job::<u64, u64>(JobSpec::new("double")).unwrap();
    b.register(JobSpec::new("double"), |_: JobCtx, n: u64| async move {
        Ok(n * 2)
    })
    .unwrap();
    let id = on_a.submit(21).await.unwrap().id;
    let outcome = tokio::time::timeout(Duration::from_secs(10), on_a.join(id, None)).await;
    assert_eq!(
        outcome.expect("the job ran on B and A saw it").unwrap(),
        jobfile::Outcome::Completed(42)
    );
    // A message sent on A reaches a receiver waiting on B.
    let waiting = {
        let q = b.queue("q").unwrap();
        tokio::spawn(async move { q.receive().await })
    };
    let sent = a.queue("q").unwrap().send(b"m".to_vec()).await.unwrap().id;
    let got = tokio::time::timeout(Duration::from_secs(10), waiting).await;
    let d = got.expect("B's receiver got A's message").unwrap().unwrap();
    assert_eq!(d.id(), sent);
    d.ack().await.unwrap();
    // An event published on A reaches a subscriber on B.
    let mut feed = b.topic("t").unwrap().subscribe(jobfile::StartAt::Now).await;
    a.topic("t").unwrap().publish(b"e".to_vec()).await.unwrap();
    let event = tokio::time::timeout(Duration::from_secs(10), feed.next()).await;
    assert_eq!(
        event
            .expect("B's subscriber saw A's event")
            .unwrap()
            .unwrap()
            .payload,
        b"e"
    );
    a.shutdown(Duration::from_secs(5)).await.unwrap();
    b.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_an_ephemeral_sets_capacity_and_its_change_stream() {
    let Some(schema) = PgSchema::new() else {
        return;
    };
    let _one = ONE_AT_A_TIME.lock().await;
    let connect = || liveness(schema.options()).connect(&schema.url);
    let (a, b) = (
        connect().await.expect("connect"),
        connect().await.expect("connect"),
    );
    let options = || jobfile::EphemeralOptions::default().capacity(10);
    // B follows the set from the start.
    let mut changes = b.ephemeral_with("devices", options()).unwrap().follow(1);
    // 16 new keys at once, half on each node, into room for 10.
    let mut tasks = Vec::new();
    for k in 0..16 {
        let engine = if k % 2 == 0 { a.clone() } else { b.clone() };
        let set = engine.ephemeral_with("devices", options()).unwrap();
        tasks.push(tokio::spawn(async move {
            set.upsert(format!("d{k}"), vec![k as u8]).await
        }));
    }
    let mut stored = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(position) => stored.push(position),
            Err(jobfile::Error::CapacityExceeded { capacity: 10, .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    stored.sort_unstable();
    assert_eq!(
        stored,
        (1..=10).collect::<Vec<u64>>(),
        "10 stored, numbered 1 to 10"
    );
    let snapshot = a
        .ephemeral_with("devices", options())
        .unwrap()
        .snapshot()
        .await
        .unwrap();
    assert_eq!((snapshot.entries.len(), snapshot.position), (10, 10));
    // B's follower saw every change, in order, whichever node made it.
    let mut seen = Vec::new();
    while seen.len() < 10 {
        let change = tokio::time::timeout(Duration::from_secs(10), changes.next())
            .await
            .expect("the follower goes on")
            .unwrap()
            .unwrap();
        seen.push(change.position);
    }
    assert_eq!(seen, (1..=10).collect::<Vec<u64>>());
    a.shutdown(Duration::from_secs(5)).await.unwrap();
    b.shutdown(Duration::from_secs(5)).await.unwrap();
}
