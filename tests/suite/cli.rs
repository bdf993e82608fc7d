//! The `jobfile` CLI driven as a user drives it: the binary spawned on files the library made,
//! and against a live engine's admin API; its output, JSON and exit codes checked.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::operator::{Populated, populate};
use common::temp_file;
use jobfile::admin::AdminOptions;
use jobfile::{Engine, JobCtx, JobEventKind, JobSpec};
use serde_json::Value;

const TOKEN: &str = "cli-token";

/// `jobfile args...`, with none of the settings the environment could give it.
fn command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_jobfile"));
    command
        .args(args)
        .env_remove("JOBFILE_FILE")
        .env_remove("JOBFILE_CONNECT")
        .env_remove("JOBFILE_TOKEN");
    command
}

/// Runs `jobfile args...` to the end, off the async runtime.
async fn jobfile(args: &[&str]) -> Output {
    let mut command = command(args);
    tokio::task::spawn_blocking(move || command.output().expect("run jobfile"))
        .await
        .unwrap()
}

/// Runs `jobfile --file path args...`.
async fn on_file(path: &Path, args: &[&str]) -> Output {
    let mut all = vec!["--file", path.to_str().unwrap()];
    all.extend_from_slice(args);
    jobfile(&all).await
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Starts `jobfile args...` and hands over each line of its stdout as it is printed; the
/// task ends with its exit status once it has ended.
fn lines_of(
    args: &[&str],
) -> (
    tokio::sync::mpsc::UnboundedReceiver<String>,
    tokio::task::JoinHandle<std::process::ExitStatus>,
) {
    let mut command = command(args);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::task::spawn_blocking(move || {
        let mut child = command
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("run jobfile");
        let out = std::io::BufReader::new(child.stdout.take().expect("piped stdout"));
        for line in std::io::BufRead::lines(out) {
            let _ = tx.send(line.expect("read jobfile's output"));
        }
        child.wait().expect("wait for jobfile")
    });
    (rx, task)
}

/// The next line `lines_of` hands over (`None` once the process has ended), waiting at most
/// 30 seconds.
async fn next_line(lines: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> Option<String> {
    tokio::time::timeout(Duration::from_secs(30), lines.recv())
        .await
        .expect("jobfile printed no line for 30 s")
}

/// The exit code and stdout of a run that must succeed.
fn ok(out: Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// The exit code and the one line a failing run printed.
fn failed(out: &Output) -> (i32, String) {
    let err = stderr(out);
    assert_eq!(err.lines().count(), 1, "one line expected: {err}");
    assert_eq!(stdout(out), "", "nothing on stdout");
    (out.status.code().unwrap(), err.trim_end().to_string())
}

fn json(out: Output) -> Value {
    serde_json::from_str(&ok(out)).expect("--json prints JSON")
}

/// A populated file no process holds.
async fn closed_file() -> (tempfile::TempDir, std::path::PathBuf) {
    let (dir, path) = temp_file();
    let engine = Engine::open(&path).await.unwrap();
    populate(&engine).await;
    engine.shutdown(Duration::from_secs(5)).await.unwrap();
    (dir, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_and_listings_on_a_file() {
    let (_dir, path) = closed_file().await;
    let stats = ok(on_file(&path, &["stats"]).await);
    println!("{stats}");
    assert!(
        stats.contains(
            "JOB   WAITING  QUEUED  RUNNING  COMPLETED  FAILED  CANCELLED  TIMED OUT\n\
         mail        0       0        0          1       1          0          0\n"
        ),
        "{stats}"
    );
    assert!(
        stats
            .contains("QUEUE   READY  DELAYED  LEASED  DEAD\nemails      2        0       0     1"),
        "{stats}"
    );
    assert!(
        stats.contains("nightly-report  30 2 * * *  report"),
        "{stats}"
    );
    assert!(stats.contains("(Europe/Berlin)"), "{stats}");
    assert!(stats.contains("nightly-report  worker-a      1"), "{stats}");

    let failed_jobs = ok(on_file(&path, &["jobs", "--state", "failed"]).await);
    let lines: Vec<&str> = failed_jobs.lines().collect();
    assert_eq!(lines.len(), 2, "{failed_jobs}");
    assert!(
        lines[0].starts_with("ID  NAME  STATE   ATTEMPTS  PROGRESS  UPDATED"),
        "{failed_jobs}"
    );
    assert!(
        lines[1].starts_with(" 1  mail  failed       1/1  -         20"),
        "{failed_jobs}"
    );
    assert!(
        lines[1].ends_with("FULL: ann@example.com: mailbox full"),
        "{failed_jobs}"
    );

    let one = ok(on_file(&path, &["job", "1"]).await);
    println!("{one}");
    assert!(
        one.starts_with("job 1 · mail · failed\nattempts    1 of 1, 0 crashes\n"),
        "{one}"
    );
    assert!(one.contains("\ninput       \"ann@example.com\"\n"), "{one}");
    assert!(
        one.contains("\nlast error  FULL: ann@example.com: mailbox full (attempt 1)\n"),
        "{one}"
    );
    assert!(
        one.contains("\nerrors\n  FULL: ann@example.com: mailbox full (attempt 1)\n"),
        "{one}"
    );
    let kinds: Vec<&str> = one
        .lines()
        .skip_while(|l| !l.starts_with("events ("))
        .skip(1)
        .map(|l| l.split_whitespace().nth(4).unwrap())
        .collect();
    assert_eq!(kinds, ["submitted", "started", "failed"], "{one}");

    let dlq = ok(on_file(&path, &["dlq", "emails"]).await);
    let rows: Vec<&str> = dlq.lines().collect();
    assert_eq!(rows.len(), 2, "{dlq}");
    assert!(
        rows[1].starts_with(&format!(" 1  nacked  {:>10}  20", 1)),
        "{dlq}"
    );
    assert!(rows[1].ends_with("  bounced     a"), "{dlq}");

    assert_eq!(
        ok(on_file(&path, &["topics"]).await),
        "TOPIC   LAST SEQ  PRUNED THROUGH  GROUPS (COMMITTED / DELIVERED THROUGH)\n\
         orders         3               0  billing 1/2\n"
    );
    assert_eq!(
        ok(on_file(&path, &["sets"]).await),
        "SET      ENTRIES  POSITION\ndevices        1         1\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_on_a_file_change_exactly_what_they_say() {
    let (_dir, path) = closed_file().await;
    assert_eq!(
        ok(on_file(&path, &["retry", "1"]).await),
        "job 1 is queued again with a fresh attempt budget\n"
    );
    let queued = json(on_file(&path, &["jobs", "--state", "queued", "--json"]).await);
    let ids: Vec<u64> = queued["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [1]);
    assert_eq!(queued["jobs"][0]["attempts"], 0);
    // Retrying it again is refused: it is queued now.
    let (code, line) = failed(&on_file(&path, &["retry", "1"]).await);
    assert_eq!(code, 1);
    assert!(
        line.contains("job 1 is queued; only failed or timed-out jobs can be retried"),
        "{line}"
    );

    let cancelled = ok(on_file(&path, &["cancel", "1", "--reason", "not needed"]).await);
    assert_eq!(
        cancelled,
        "job 1: cancelled (a running attempt is told to stop)\n"
    );
    let job = json(on_file(&path, &["job", "1", "--json"]).await);
    assert_eq!(job["job"]["state"], "cancelled");
    assert_eq!(job["job"]["cancel_reason"], "not needed");
    assert_eq!(
        ok(on_file(&path, &["delete", "1"]).await),
        "job 1 deleted\n"
    );
    let (code, line) = failed(&on_file(&path, &["job", "1"]).await);
    assert_eq!(
        (code, line.as_str()),
        (1, "jobfile: no job 1 (UNKNOWN_JOB)")
    );

    assert_eq!(
        ok(on_file(&path, &["dlq", "emails", "requeue", "--all"]).await),
        "requeued 1 dead letters of emails\n"
    );
    let queues = json(on_file(&path, &["queues", "--json"]).await);
    assert_eq!(
        queues,
        serde_json::json!([{"name": "emails", "ready": 3, "delayed": 0, "leased": 0, "dead": 0, "paused": false}])
    );
    let (code, line) = failed(&on_file(&path, &["dlq", "emails", "delete", "7"]).await);
    assert_eq!(
        (code, line.as_str()),
        (
            1,
            "jobfile: emails has no dead letter 7: list them with `jobfile dlq emails`"
        )
    );
    assert_eq!(
        ok(on_file(&path, &["dlq", "emails", "purge"]).await),
        "deleted 0 dead letters of emails\n"
    );

    let first = ok(on_file(&path, &["trigger", "nightly-report", "--key", "k1"]).await);
    assert_eq!(first, "nightly-report triggered: job 3\n");
    let again = ok(on_file(&path, &["trigger", "nightly-report", "--key", "k1"]).await);
    assert_eq!(
        again,
        "nightly-report was already triggered with key k1: job 3\n"
    );
    let (code, line) = failed(&on_file(&path, &["trigger", "nope"]).await);
    assert_eq!(code, 1);
    assert!(
        line.starts_with("jobfile: ") && line.ends_with("(UNKNOWN_SCHEDULE)"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pausing_and_bulk_operations_on_a_file() {
    let (_dir, path) = closed_file().await;
    assert_eq!(
        ok(on_file(&path, &["pause", "mail"]).await),
        "job definition mail paused\n"
    );
    assert_eq!(
        ok(on_file(&path, &["pause", "mail"]).await),
        "job definition mail was paused already\n"
    );
    let stats = ok(on_file(&path, &["stats"]).await);
    assert!(stats.contains("\nmail (paused) "), "{stats}");
    let overview = json(on_file(&path, &["stats", "--json"]).await);
    assert_eq!(overview["job_counts"][0]["name"], "mail");
    assert_eq!(overview["job_counts"][0]["paused"], true);
    assert_eq!(
        ok(on_file(&path, &["resume", "mail"]).await),
        "job definition mail resumed\n"
    );
    assert_eq!(
        ok(on_file(&path, &["resume", "mail"]).await),
        "job definition mail was not paused\n"
    );
    assert_eq!(
        ok(on_file(&path, &["pause", "--queue", "emails"]).await),
        "queue emails paused\n"
    );
    let queues = ok(on_file(&path, &["queues"]).await);
    assert!(queues.contains("\nemails (paused) "), "{queues}");

    // Two queued report jobs, cancelled together.
    for key in ["a", "b"] {
        ok(on_file(&path, &["trigger", "nightly-report", "--key", key]).await);
    }
    assert_eq!(
        ok(on_file(&path, &["cancel", "--all-queued", "report"]).await),
        "cancelled 2 queued jobs of report\n"
    );
    // The failed mail job ended in this century.
    assert_eq!(
        ok(on_file(
            &path,
            &["delete", "--failed-before", "2000-01-01T00:00:00Z"]
        )
        .await),
        "deleted 0 failed jobs that ended before 2000-01-01T00:00:00Z\n"
    );
    assert_eq!(
        ok(on_file(
            &path,
            &[
                "delete",
                "--failed-before",
                "2100-01-01T00:00:00Z",
                "--name",
                "mail"
            ]
        )
        .await),
        "deleted 1 failed jobs of mail that ended before 2100-01-01T00:00:00Z\n"
    );
    let (code, line) = failed(&on_file(&path, &["delete", "--failed-before", "yesterday"]).await);
    assert_eq!(
        (code, line.as_str()),
        (
            2,
            "jobfile: \"yesterday\" is not an instant: write it in RFC 3339, such as 2026-11-01T00:00:00Z"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_paths_and_ids_get_one_line_that_says_what_to_do() {
    let (dir, path) = closed_file().await;
    let missing = dir.path().join("nope.jobfile");
    let (code, line) = failed(&on_file(&missing, &["stats"]).await);
    assert_eq!(code, 1);
    assert_eq!(
        line,
        format!(
            "jobfile: no file at {}: give the path of the jobfile your app opens (the CLI creates none)",
            missing.display()
        )
    );
    assert!(!missing.exists(), "the CLI must not create a file");

    let foreign = dir.path().join("notes.txt");
    std::fs::write(&foreign, "shopping list\n").unwrap();
    let (code, line) = failed(&on_file(&foreign, &["stats"]).await);
    assert_eq!(code, 1);
    assert!(line.contains("is not a jobfile file ("), "{line}");
    assert!(
        line.ends_with("; give the path of the file your app opens"),
        "{line}"
    );
    assert_eq!(
        std::fs::read_to_string(&foreign).unwrap(),
        "shopping list\n"
    );

    for args in [&["job", "abc"][..], &["retry", "-"], &["events", "1.5"]] {
        let (code, line) = failed(&on_file(&path, args).await);
        assert_eq!(code, 2, "{args:?}");
        assert!(
            line.contains(
                "is not a job id: ids are whole numbers such as 42; `jobfile jobs` lists them"
            ),
            "{line}"
        );
    }
    let (code, line) = failed(&jobfile(&["stats"]).await);
    assert_eq!(code, 2);
    assert!(
        line.contains("--file PATH") && line.contains("--connect URL"),
        "{line}"
    );

    // What a future jobfile would write: refused, with what to do.
    put_meta(&path, "format_version", 99);
    let (code, line) = failed(&on_file(&path, &["stats"]).await);
    assert_eq!(code, 1);
    assert!(line.ends_with("has format version 99, newer than this jobfile CLI reads (7): install a newer one (cargo install jobfile --features cli)"), "{line}");
}

/// Writes `key = value` into the file's metadata table, as another build of jobfile would.
fn put_meta(path: &Path, key: &str, value: u64) {
    let table: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("jobfile_meta");
    let db = redb::Database::open(path).unwrap();
    let tx = db.begin_write().unwrap();
    tx.open_table(table).unwrap().insert(key, value).unwrap();
    tx.commit().unwrap();
}

/// A live engine, populated, serving its admin API with [`TOKEN`].
async fn live() -> (
    tempfile::TempDir,
    Engine,
    Populated,
    jobfile::admin::AdminServer,
    String,
) {
    let (dir, path) = temp_file();
    let engine = Engine::open(&path).await.unwrap();
    let populated = populate(&engine).await;
    let server = engine
        .serve_admin(
            "127.0.0.1:0".parse().unwrap(),
            AdminOptions::with_token(TOKEN),
        )
        .await
        .unwrap();
    let url = format!("http://{}", server.local_addr());
    (dir, engine, populated, server, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_file_points_to_the_process_and_connect_reaches_it() {
    let (_dir, engine, _populated, server, url) = live().await;
    // This test process holds the file: the CLI, another process, says who and where to go.
    let (code, line) = failed(&on_file(engine.path(), &["stats"]).await);
    assert_eq!(code, 3);
    let pid = std::process::id();
    assert!(
        line.contains(&format!(" is held by process {pid} since 20")),
        "{line}"
    );
    assert!(line.ends_with(&format!(
        ", admin API at {url}; connect to it instead: jobfile --connect {url} --token <its admin token> <command>"
    )), "{line}");

    // With the token, --connect answers as --file would, in the same JSON.
    let over_http = json(jobfile(&["--connect", &url, "--token", TOKEN, "stats", "--json"]).await);
    assert_eq!(over_http["job_counts"][0]["name"], "mail");
    assert_eq!(over_http["job_counts"][0]["failed"], 1);
    assert_eq!(over_http["path"], engine.path().display().to_string());
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        keys(&over_http),
        [
            "epoch",
            "file_size_bytes",
            "job_counts",
            "jobs",
            "mutexes",
            "path",
            "queues",
            "schedules",
            "sets",
            "store",
            "topics"
        ]
    );
    let job = ok(jobfile(&["--connect", &url, "--token", TOKEN, "job", "2"]).await);
    assert!(job.starts_with("job 2 · mail · completed\n"), "{job}");
    assert!(
        job.contains("\noutput      \"sent to bob@example.com\"\n"),
        "{job}"
    );

    // Without it, or with a wrong one: refused, nothing done.
    for token in [None, Some("wrong")] {
        let mut args = vec!["--connect", url.as_str()];
        if let Some(t) = token {
            args.extend(["--token", t]);
        }
        args.extend(["retry", "1"]);
        let (code, line) = failed(&jobfile(&args).await);
        assert_eq!(code, 1);
        assert_eq!(
            line,
            format!(
                "jobfile: {url} refused the request without the right token: pass the token the app set (AdminOptions::with_token) with --token or JOBFILE_TOKEN"
            )
        );
    }
    assert_eq!(
        engine.jobs().get(1).await.unwrap().unwrap().state,
        jobfile::JobState::Failed
    );

    // Nothing listening: one line.
    let addr = server.local_addr();
    server.stop().await.unwrap();
    let (code, line) = failed(&jobfile(&["--connect", &url, "stats"]).await);
    assert_eq!(code, 1);
    assert!(
        line.starts_with(&format!("jobfile: nothing answers at http://{addr} (")),
        "{line}"
    );
    // The holder withdrew its address from the lock file when the server stopped.
    let (_, line) = failed(&on_file(engine.path(), &["stats"]).await);
    assert!(line.contains("which serves no admin API"), "{line}");
    engine.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_follow_and_watch_show_a_running_job_until_it_ends() {
    let (_dir, engine, _populated, server, url) = live().await;
    // A job that reports 25, 50, 75 % as the test lets it, then completes.
    let (step, steps) = tokio::sync::watch::channel(0u8);
    let resize = engine
        .register(JobSpec::new("resize"), move |ctx: JobCtx, _: ()| {
            let mut steps = steps.clone();
            async move {
                for n in 1..=3u8 {
                    steps.wait_for(|s| *s >= n).await.ok();
                    ctx.progress(n * 25, &format!("part {n}")).await?;
                }
                steps.wait_for(|s| *s >= 4).await.ok();
                Ok(())
            }
        })
        .unwrap();
    let id = resize.submit(()).await.unwrap().id;
    // Running before `watch` starts, or it would find nothing running and end at once.
    common::jobs::wait_for(&engine, id, |k| matches!(k, JobEventKind::Started { .. })).await;
    let id_text = id.to_string();
    let connect = ["--connect", url.as_str(), "--token", TOKEN];
    let follow = {
        let mut args: Vec<&str> = connect.to_vec();
        args.extend(["events", &id_text, "--follow"]);
        let mut follow = command(&args);
        tokio::task::spawn_blocking(move || follow.output().expect("run jobfile"))
    };
    let mut args: Vec<&str> = connect.to_vec();
    args.push("watch");
    let (mut watched, watch) = lines_of(&args);
    // Each step waits until `watch` has shown the one before (the running feed looks once a
    // second), then for the next second of the clock: progress in the same second as the last
    // progress event replaces it, and `events` would show one event fewer.
    for n in 1..=4u8 {
        let shown = match n {
            1 => format!("job {id} resize running"),
            n => format!("job {id} resize running {}% part {}", (n - 1) * 25, n - 1),
        };
        assert_eq!(next_line(&mut watched).await, Some(shown));
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        step.send(n).unwrap();
    }
    let completed = format!("job {id} resize completed");
    assert_eq!(next_line(&mut watched).await, Some(completed));
    let followed = ok(follow.await.unwrap());
    let kinds: Vec<&str> = followed
        .lines()
        .map(|l| l.split_whitespace().nth(4).unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "submitted",
            "started",
            "progress",
            "progress",
            "progress",
            "completed"
        ],
        "{followed}"
    );
    assert!(
        followed
            .lines()
            .nth(3)
            .unwrap()
            .ends_with("progress        50% part 2"),
        "{followed}"
    );
    assert_eq!(
        next_line(&mut watched).await,
        None,
        "watch ends with the job"
    );
    let status = watch.await.unwrap();
    assert!(status.success(), "watch ended with {status}");
    server.stop().await.unwrap();
    engine.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn a_batch_is_shown_and_cancelled() {
    let (_dir, path) = temp_file();
    let id = {
        let engine = Engine::open(&path).await.unwrap();
        let member = engine.job::<u32, ()>(JobSpec::new("member")).unwrap();
        let batch = engine.batch().open().await.unwrap();
        for n in 0..2 {
            member.submit(n).batch(&batch).await.unwrap();
        }
        engine.shutdown(Duration::from_secs(5)).await.unwrap();
        batch.id()
    };
    let shown = ok(on_file(&path, &["batch", &id.to_string()]).await);
    println!("{shown}");
    assert!(
        shown.starts_with(&format!("batch {id} · open (not sealed) · 0 of 2 done\n")),
        "{shown}"
    );
    assert!(
        shown.contains(
            "WAITING  QUEUED  RUNNING  COMPLETED  FAILED  CANCELLED  TIMED OUT\n      \
             0       2        0          0       0          0          0\n"
        ),
        "{shown}"
    );
    assert!(shown.ends_with("callbacks  -\n"), "{shown}");
    assert_eq!(
        ok(on_file(&path, &["cancel", "--batch", &id.to_string()]).await),
        format!("cancelled 2 members of batch {id}\n")
    );
    let out = on_file(&path, &["batch", "x1"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("\"x1\" is not a batch id"),
        "{}",
        stderr(&out)
    );
}
