//! `jobfile`: see inside a jobfile and operate it, on the file itself or through a running
//! process's admin API. Every command is a call of that API; `--json` prints its answer.

mod args;
mod client;
mod failure;
mod render;
mod sse;
mod watch;

use std::process::ExitCode;

use clap::Parser;
use serde_json::{Value, json};

use args::{Args, Command, DlqAction, JobsArgs};
use client::Client;
use failure::Failure;
use render::{Table, count, num, text, utc_opt};

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("jobfile: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("jobfile: {failure}");
            failure.exit_code()
        }
    }
}

async fn run(args: Args) -> Result<(), Failure> {
    let client = match (&args.file, &args.connect) {
        (Some(path), None) => Client::open(path).await?,
        (None, Some(url)) => Client::connect(url, args.token.clone())?,
        (Some(_), Some(_)) => {
            return Err(Failure::usage(
                "give --file (a file no process holds) or --connect (a running process), not both",
            ));
        }
        (None, None) => {
            return Err(Failure::usage(
                "say where the jobs are: --file PATH for a file no process holds, or --connect URL for a running process's admin API",
            ));
        }
    };
    let out = Out { json: args.json };
    let result = command(&client, args.command, out).await;
    client.close().await;
    result
}

/// How answers are printed.
#[derive(Clone, Copy)]
struct Out {
    json: bool,
}

impl Out {
    /// Prints `value` as JSON, or as the text `human` makes of it.
    fn print(self, value: &Value, human: impl FnOnce(&Value) -> String) {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(value).expect("JSON from JSON")
            );
        } else {
            let text = human(value);
            if !text.is_empty() {
                println!("{text}");
            }
        }
    }
}

async fn command(client: &Client, command: Command, out: Out) -> Result<(), Failure> {
    match command {
        Command::Stats => out.print(&client.get("/api/overview").await?, stats),
        Command::Jobs(filters) => out.print(&client.get(&jobs_path(&filters)?).await?, jobs),
        Command::Job { id } => {
            let id = job_id(&id)?;
            out.print(&client.get(&format!("/api/jobs/{id}")).await?, job);
        }
        Command::Batch { id } => {
            let id = batch_id(&id)?;
            out.print(&client.get(&format!("/api/batches/{id}")).await?, batch);
        }
        Command::Events { id, follow } => {
            let id = job_id(&id)?;
            if follow {
                let mut events = client
                    .stream(&format!("/api/jobs/{id}/events/live"))
                    .await?;
                while let Some(event) = events.recv().await {
                    let value: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
                    match event.event.as_str() {
                        "job_event" if out.json => println!("{value}"),
                        "job_event" => println!("{}", render::event_line(&value)),
                        "error" => return Err(Failure::failed(event.data)),
                        _ => {}
                    }
                }
            } else {
                let detail = client.get(&format!("/api/jobs/{id}")).await?;
                out.print(&detail["events"], |events| {
                    lines(events.as_array(), render::event_line)
                });
            }
        }
        Command::Watch => watch::watch(client, out.json).await?,
        Command::Queues => out.print(&client.get("/api/queues").await?, queues),
        Command::Dlq {
            queue,
            limit,
            action,
        } => {
            let base = format!("/api/queues/{}/dead", enc(&queue));
            match action {
                None => out.print(
                    &client.get(&format!("{base}?limit={limit}")).await?,
                    dead_letters,
                ),
                Some(DlqAction::Requeue { all: true, .. }) => {
                    let done = client.post(&format!("{base}/requeue"), None).await?;
                    out.print(&done, |d| {
                        format!("requeued {} dead letters of {queue}", num(&d["count"]))
                    });
                }
                Some(DlqAction::Requeue { id, .. }) => {
                    let id = message_id(id.as_deref().unwrap_or_default())?;
                    let done = client.post(&format!("{base}/{id}/requeue"), None).await?;
                    found(
                        &done,
                        &format!(
                            "{queue} has no dead letter {id}: list them with `jobfile dlq {queue}`"
                        ),
                    )?;
                    out.print(&done, |_| {
                        format!("message {id} is back in line in {queue}")
                    });
                }
                Some(DlqAction::Delete { id }) => {
                    let id = message_id(&id)?;
                    let done = client.delete(&format!("{base}/{id}")).await?;
                    found(
                        &done,
                        &format!(
                            "{queue} has no dead letter {id}: list them with `jobfile dlq {queue}`"
                        ),
                    )?;
                    out.print(&done, |_| format!("dead letter {id} of {queue} deleted"));
                }
                Some(DlqAction::Purge) => {
                    let done = client.post(&format!("{base}/purge"), None).await?;
                    out.print(&done, |d| {
                        format!("deleted {} dead letters of {queue}", num(&d["count"]))
                    });
                }
            }
        }
        Command::Topics => out.print(&client.get("/api/topics").await?, topics),
        Command::Sets => out.print(&client.get("/api/sets").await?, sets),
        Command::Schedules => out.print(&client.get("/api/schedules").await?, schedules),
        Command::Mutexes => out.print(&client.get("/api/mutexes").await?, mutexes),
        Command::Retry {
            all_failed: Some(name),
            ..
        } => {
            let done = client
                .post(&format!("/api/jobs/retry-failed?name={}", enc(&name)), None)
                .await?;
            out.print(&done, |d| {
                format!("retried {} failed jobs of {name}", num(&d["count"]))
            });
        }
        Command::Retry { id, .. } => {
            let id = job_id(id.as_deref().unwrap_or_default())?;
            let done = client.post(&format!("/api/jobs/{id}/retry"), None).await?;
            out.print(&done, |_| {
                format!("job {id} is queued again with a fresh attempt budget")
            });
        }
        Command::Cancel {
            all_queued: Some(name),
            reason,
            ..
        } => {
            let done = client
                .post(
                    &format!("/api/jobs/cancel-queued?name={}", enc(&name)),
                    Some(json!({ "reason": reason })),
                )
                .await?;
            out.print(&done, |d| {
                format!("cancelled {} queued jobs of {name}", num(&d["count"]))
            });
        }
        Command::Cancel {
            batch: Some(batch),
            reason,
            ..
        } => {
            let id = batch_id(&batch)?;
            let done = client
                .post(
                    &format!("/api/batches/{id}/cancel"),
                    Some(json!({ "reason": reason })),
                )
                .await?;
            out.print(&done, |d| {
                format!("cancelled {} members of batch {id}", num(&d["count"]))
            });
        }
        Command::Cancel { id, reason, .. } => {
            let id = job_id(id.as_deref().unwrap_or_default())?;
            let done = client
                .post(
                    &format!("/api/jobs/{id}/cancel"),
                    Some(json!({ "reason": reason })),
                )
                .await?;
            out.print(&done, |d| format!("job {id}: {}", cancel_outcome(d)));
        }
        Command::Delete {
            failed_before: Some(before),
            name,
            ..
        } => {
            let before_ms = instant_ms(&before)?;
            let mut path = format!("/api/jobs/delete-failed?before_ms={before_ms}");
            if let Some(name) = &name {
                path.push_str(&format!("&name={}", enc(name)));
            }
            let done = client.post(&path, None).await?;
            out.print(&done, |d| {
                let of = name
                    .as_ref()
                    .map(|n| format!(" of {n}"))
                    .unwrap_or_default();
                format!(
                    "deleted {} failed jobs{of} that ended before {before}",
                    num(&d["count"])
                )
            });
        }
        Command::Pause { name, queue } => pause_or_resume(client, out, &name, queue, true).await?,
        Command::Resume { name, queue } => {
            pause_or_resume(client, out, &name, queue, false).await?
        }
        Command::Delete { id, .. } => {
            let id = job_id(id.as_deref().unwrap_or_default())?;
            let done = client.delete(&format!("/api/jobs/{id}")).await?;
            out.print(&done, |_| format!("job {id} deleted"));
        }
        Command::Trigger { schedule, key } => {
            let key = key.unwrap_or_else(|| {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis());
                format!("cli-{now}")
            });
            let done = client
                .post(
                    &format!("/api/schedules/{}/trigger", enc(&schedule)),
                    Some(json!({ "key": key })),
                )
                .await?;
            out.print(&done, |d| {
                if d["deduplicated"] == Value::Bool(true) {
                    format!(
                        "{schedule} was already triggered with key {key}: job {}",
                        d["id"]
                    )
                } else {
                    format!("{schedule} triggered: job {}", d["id"])
                }
            });
        }
    }
    Ok(())
}

/// Pauses (or resumes) the job definition or, with `queue`, the queue `name`.
async fn pause_or_resume(
    client: &Client,
    out: Out,
    name: &str,
    queue: bool,
    pause: bool,
) -> Result<(), Failure> {
    let verb = if pause { "pause" } else { "resume" };
    let (kind, what) = if queue {
        ("queues", "queue")
    } else {
        ("definitions", "job definition")
    };
    let done = client
        .post(&format!("/api/{kind}/{}/{verb}", enc(name)), None)
        .await?;
    out.print(&done, |d| {
        match (d["changed"] == Value::Bool(true), pause) {
            (true, true) => format!("{what} {name} paused"),
            (true, false) => format!("{what} {name} resumed"),
            (false, true) => format!("{what} {name} was paused already"),
            (false, false) => format!("{what} {name} was not paused"),
        }
    });
    Ok(())
}

/// An instant as typed (RFC 3339), in ms since the epoch, or one line saying what one looks
/// like.
fn instant_ms(raw: &str) -> Result<u64, Failure> {
    chrono::DateTime::parse_from_rfc3339(raw.trim())
        .ok()
        .and_then(|t| u64::try_from(t.timestamp_millis()).ok())
        .ok_or_else(|| {
            Failure::usage(format!(
                "{raw:?} is not an instant: write it in RFC 3339, such as 2026-11-01T00:00:00Z"
            ))
        })
}

/// A job id as typed, or one line saying what an id looks like.
fn job_id(raw: &str) -> Result<u64, Failure> {
    raw.trim().parse().map_err(|_| {
        Failure::usage(format!(
            "{raw:?} is not a job id: ids are whole numbers such as 42; `jobfile jobs` lists them"
        ))
    })
}

/// A batch id as typed.
fn batch_id(raw: &str) -> Result<u64, Failure> {
    raw.trim().parse().map_err(|_| {
        Failure::usage(format!(
            "{raw:?} is not a batch id: ids are whole numbers such as 3, as `Batch::id` gives them"
        ))
    })
}

/// The job states as columns of a table, in the order of a job's life, and the keys of the
/// API's counts behind them.
const STATE_HEADERS: [&str; 7] = [
    "waiting>",
    "queued>",
    "running>",
    "completed>",
    "failed>",
    "cancelled>",
    "timed out>",
];
const STATE_KEYS: [&str; 7] = [
    "waiting",
    "queued",
    "running",
    "completed",
    "failed",
    "cancelled",
    "timed_out",
];

/// The counts of `counts` (a definition's, a batch's) under [`STATE_HEADERS`].
fn state_cells(counts: &Value) -> Vec<String> {
    STATE_KEYS.iter().map(|k| num(&counts[*k])).collect()
}

/// A batch: its progress, its members by state, and its callbacks.
fn batch(b: &Value) -> String {
    let state = match (b["sealed"].as_bool(), b["finished_at_ms"].as_u64()) {
        (_, Some(at)) => format!("finished {}", render::utc(at)),
        (Some(true), None) => "sealed, running".to_string(),
        _ => "open (not sealed)".to_string(),
    };
    let mut t = Table::new(&STATE_HEADERS);
    t.row(state_cells(b));
    let callbacks: Vec<String> = b["callbacks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| format!("job {c}"))
        .collect();
    format!(
        "batch {} · {state} · {} of {} done\n\n{}\n\ncallbacks  {}",
        b["id"],
        num(&b["done"]),
        num(&b["total"]),
        t.render(),
        if callbacks.is_empty() {
            "-".to_string()
        } else {
            callbacks.join(", ")
        }
    )
}

/// A queue message id as typed.
fn message_id(raw: &str) -> Result<u64, Failure> {
    raw.trim().parse().map_err(|_| {
        Failure::usage(format!(
            "{raw:?} is not a message id: ids are whole numbers such as 42; `jobfile dlq QUEUE` lists them"
        ))
    })
}

/// Fails when an operation on one item found none.
fn found(done: &Value, missing: &str) -> Result<(), Failure> {
    if done["found"] == Value::Bool(true) {
        Ok(())
    } else {
        Err(Failure::failed(missing))
    }
}

/// Percent-encodes a path segment or query value.
fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn jobs_path(f: &JobsArgs) -> Result<String, Failure> {
    let mut query = vec![format!("limit={}", f.limit)];
    if let Some(name) = &f.name {
        query.push(format!("name={}", enc(name)));
    }
    if let Some(state) = &f.state {
        query.push(format!("state={state}"));
    }
    if let Some(meta) = &f.meta {
        if !meta.contains(':') {
            return Err(Failure::usage(format!(
                "--meta takes key:value, such as order:1234; got {meta:?}"
            )));
        }
        query.push(format!("meta={}", enc(meta)));
    }
    if let Some(after) = f.after {
        query.push(format!("after={after}"));
    }
    if f.oldest {
        query.push("order=oldest".into());
    }
    Ok(format!("/api/jobs?{}", query.join("&")))
}

fn lines(items: Option<&Vec<Value>>, line: impl Fn(&Value) -> String) -> String {
    items
        .map(|items| items.iter().map(line).collect::<Vec<_>>().join("\n"))
        .unwrap_or_default()
}

fn or_none(table: Table, none: &str) -> String {
    if table.is_empty() {
        none.to_string()
    } else {
        table.render()
    }
}

fn stats(o: &Value) -> String {
    let mut out = format!(
        "file    {} ({}, epoch {})\n",
        text(&o["path"]),
        render::bytes(o["file_size_bytes"].as_u64().unwrap_or(0)),
        o["epoch"]
    );
    let m = &o["jobs"];
    out.push_str(&format!(
        "jobs    {} submitted, {} completed, {} failed, {} retried, {} cancelled, {} timed out, {} recovered (counted since the file was made)\n",
        num(&m["submitted"]),
        num(&m["completed"]),
        num(&m["failed"]),
        num(&m["retried"]),
        num(&m["cancelled"]),
        num(&m["timed_out"]),
        num(&m["recovered"])
    ));
    let mut t = Table::new(&[&["job"][..], &STATE_HEADERS[..]].concat());
    for c in o["job_counts"].as_array().into_iter().flatten() {
        t.row([vec![paused_name(c)], state_cells(c)].concat());
    }
    out.push('\n');
    out.push_str(&or_none(t, "no jobs"));
    for (section, body) in [
        ("", queues(&o["queues"])),
        ("", topics(&o["topics"])),
        ("", schedules(&o["schedules"])),
        ("", mutexes(&o["mutexes"])),
    ] {
        out.push_str("\n\n");
        out.push_str(section);
        out.push_str(&body);
    }
    out
}

fn jobs(page: &Value) -> String {
    let mut t = Table::new(&[
        "id>",
        "name",
        "state",
        "attempts>",
        "progress",
        "updated",
        "last error",
    ]);
    for j in page["jobs"].as_array().into_iter().flatten() {
        t.row(vec![
            j["id"].to_string(),
            text(&j["name"]),
            text(&j["state"]),
            format!("{}/{}", j["attempts"], j["max_attempts"]),
            render::progress(&j["progress"]),
            utc_opt(&j["updated_at_ms"]),
            if j["last_error"].is_null() {
                String::new()
            } else {
                format!(
                    "{}: {}",
                    text(&j["last_error"]["code"]),
                    text(&j["last_error"]["message"])
                )
            },
        ]);
    }
    let mut out = or_none(t, "no jobs match");
    if let Some(next) = page["next"].as_u64() {
        out.push_str(&format!("\nmore: --after {next}"));
    }
    out
}

fn job(d: &Value) -> String {
    let j = &d["job"];
    let events = d["events"].as_array().cloned().unwrap_or_default();
    let mut rows: Vec<(&str, String)> = vec![
        (
            "attempts",
            format!(
                "{} of {}, {} crashes",
                j["attempts"], j["max_attempts"], j["crashes"]
            ),
        ),
        ("priority", j["priority"].to_string()),
        ("key", text(&j["key"])),
        (
            "meta",
            j["meta"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| format!("{}={}", text(&p[0]), text(&p[1])))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        ("input", render::stored_text(&j["input_json"])),
        ("output", render::stored_text(&j["output_json"])),
        ("progress", render::progress(&j["progress"])),
    ];
    if let Some(eta) = d["eta_ms"].as_u64() {
        rows.push(("done by", format!("about {}", render::utc(eta))));
    }
    rows.extend([
        ("created", utc_opt(&j["created_at_ms"])),
        ("updated", utc_opt(&j["updated_at_ms"])),
        ("run at", utc_opt(&j["run_at_ms"])),
        ("lease until", utc_opt(&j["lease_deadline_ms"])),
        ("finished", utc_opt(&j["finished_at_ms"])),
        ("last error", render::failure(&j["last_error"])),
    ]);
    if !j["cancel_reason"].is_null() {
        rows.push(("cancelled", text(&j["cancel_reason"])));
    }
    if let Some(after) = j["after"].as_array() {
        let ids: Vec<String> = after
            .iter()
            .map(|d| match d["allow_failure"].as_bool() {
                Some(true) => format!("{} (any outcome)", d["id"]),
                _ => d["id"].to_string(),
            })
            .collect();
        let mut line = ids.join(", ");
        if let Some(n) = j["waiting_for"].as_u64() {
            line.push_str(&format!("; waiting for {n}"));
        }
        rows.push(("runs after", line));
    }
    let steps: Vec<String> = events
        .iter()
        .filter(|e| e["kind"] == "step_completed")
        .map(|e| text(&e["step"]))
        .collect();
    rows.push((
        "steps",
        if steps.is_empty() {
            "-".into()
        } else {
            steps.join(", ")
        },
    ));
    let mut out = format!(
        "job {} · {} · {}\n",
        j["id"],
        text(&j["name"]),
        text(&j["state"])
    );
    for (label, value) in rows {
        let value = if value.is_empty() { "-".into() } else { value };
        out.push_str(&format!("{label:<12}{value}\n"));
    }
    let errors: Vec<String> = events
        .iter()
        .filter(|e| !e["error"].is_null())
        .map(|e| format!("  {}", render::failure(&e["error"])))
        .collect();
    if !errors.is_empty() {
        out.push_str("\nerrors\n");
        out.push_str(&errors.join("\n"));
        out.push('\n');
    }
    out.push_str(&format!("\nevents ({})\n", count(events.len() as u64)));
    out.push_str(&lines(Some(&events), render::event_line));
    out
}

/// The name of a job definition or queue, marked when it is paused.
fn paused_name(summary: &Value) -> String {
    let name = text(&summary["name"]);
    if summary["paused"] == Value::Bool(true) {
        format!("{name} (paused)")
    } else {
        name
    }
}

fn queues(list: &Value) -> String {
    let mut t = Table::new(&["queue", "ready>", "delayed>", "leased>", "dead>"]);
    for q in list.as_array().into_iter().flatten() {
        let s = q; // the counts are flattened into the summary
        t.row(vec![
            paused_name(q),
            num(&s["ready"]),
            num(&s["delayed"]),
            num(&s["leased"]),
            num(&s["dead"]),
        ]);
    }
    or_none(t, "no queues")
}

fn dead_letters(list: &Value) -> String {
    let mut t = Table::new(&[
        "id>",
        "reason",
        "deliveries>",
        "dead at",
        "last error",
        "payload",
    ]);
    for m in list.as_array().into_iter().flatten() {
        let mut payload = render::stored_text(&m["payload"]);
        if payload.chars().count() > 60 {
            payload = payload.chars().take(57).collect::<String>() + "...";
        }
        t.row(vec![
            m["id"].to_string(),
            text(&m["reason"]),
            num(&m["deliveries"]),
            utc_opt(&m["dead_at_ms"]),
            text(&m["last_error"]),
            payload,
        ]);
    }
    or_none(t, "no dead letters")
}

fn topics(list: &Value) -> String {
    let mut t = Table::new(&[
        "topic",
        "last seq>",
        "pruned through>",
        "groups (committed / delivered through)",
    ]);
    for topic in list.as_array().into_iter().flatten() {
        let groups: Vec<String> = topic["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|g| {
                format!(
                    "{} {}/{}",
                    text(&g["name"]),
                    num(&g["committed_through"]),
                    num(&g["delivered_through"])
                )
            })
            .collect();
        t.row(vec![
            text(&topic["name"]),
            num(&topic["last_seq"]),
            num(&topic["pruned_through"]),
            groups.join(", "),
        ]);
    }
    or_none(t, "no topics")
}

fn sets(list: &Value) -> String {
    let mut t = Table::new(&["set", "entries>", "position>"]);
    for s in list.as_array().into_iter().flatten() {
        t.row(vec![
            text(&s["name"]),
            num(&s["entries"]),
            num(&s["position"]),
        ]);
    }
    or_none(t, "no ephemeral sets")
}

fn schedules(list: &Value) -> String {
    let mut t = Table::new(&[
        "schedule",
        "cron",
        "job",
        "misfire",
        "next run",
        "dispatched>",
        "dropped>",
    ]);
    for s in list.as_array().into_iter().flatten() {
        let zone = s["zone"].as_str().unwrap_or("UTC");
        t.row(vec![
            text(&s["id"]),
            text(&s["cron"]),
            text(&s["job"]),
            text(&s["misfire"]),
            s["next_run_ms"]
                .as_u64()
                .map_or_else(|| "-".into(), |ms| render::in_zone(ms, zone)),
            num(&s["dispatched"]),
            num(&s["dropped"]),
        ]);
    }
    or_none(t, "no schedules")
}

fn mutexes(list: &Value) -> String {
    let mut t = Table::new(&["mutex", "owner", "token>", "expires"]);
    for m in list.as_array().into_iter().flatten() {
        t.row(vec![
            text(&m["name"]),
            text(&m["owner"]),
            num(&m["token"]),
            utc_opt(&m["expires_at_ms"]),
        ]);
    }
    or_none(t, "no mutex is held")
}

fn cancel_outcome(d: &Value) -> String {
    match d["outcome"].as_str() {
        Some("cancelled") => "cancelled (a running attempt is told to stop)".into(),
        Some("already_finished") => format!("already finished ({})", text(&d["state"])),
        _ => d.to_string(),
    }
}
