//! `jobfile watch`: the running jobs with live progress bars until they end, from the admin
//! API's running-jobs feed.

use std::collections::BTreeMap;
use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::Value;

use crate::client::Client;
use crate::failure::Failure;
use crate::render;

/// How each running job is shown.
enum Shown {
    /// Progress bars redrawn in place (a terminal).
    Bars(ProgressBar),
    /// A line per change (a pipe or a file): the last line printed.
    Lines(String),
}

/// Follows the running jobs until none is left. `json`: each change as one line of JSON (the
/// feed's array of jobs).
pub async fn watch(client: &Client, json: bool) -> Result<(), Failure> {
    let mut feed = client.stream("/api/running/live").await?;
    let bars = std::io::stderr().is_terminal() && !json;
    let multi = MultiProgress::new();
    let style = ProgressStyle::with_template("{prefix:<28} [{bar:30}] {pos:>3}% {msg}")
        .expect("a valid template")
        .progress_chars("=> ");
    let mut shown: BTreeMap<u64, Shown> = BTreeMap::new();
    let mut seen_any = false;
    while let Some(event) = feed.recv().await {
        match event.event.as_str() {
            "running" => {}
            "error" => return Err(Failure::failed(event.data)),
            _ => continue,
        }
        let running: Vec<Value> = serde_json::from_str(&event.data)
            .map_err(|e| Failure::failed(format!("the running-jobs feed sent bad JSON: {e}")))?;
        if json {
            println!("{}", event.data);
        }
        if running.is_empty() && !seen_any {
            if !json {
                println!("no job is running");
            }
            return Ok(());
        }
        seen_any = true;
        for job in &running {
            let id = job["id"].as_u64().unwrap_or_default();
            let percent = job["progress"]["percent"].as_u64().unwrap_or(0);
            let label = format!("job {id} {}", render::text(&job["name"]));
            let progress = render::progress(&job["progress"]);
            let entry = shown.entry(id).or_insert_with(|| {
                if bars {
                    let bar = multi.add(ProgressBar::new(100));
                    bar.set_style(style.clone());
                    bar.set_prefix(label.clone());
                    Shown::Bars(bar)
                } else {
                    Shown::Lines(String::new())
                }
            });
            match entry {
                Shown::Bars(bar) => {
                    bar.set_position(percent);
                    let stage = job["progress"]["stage"].as_str().unwrap_or("");
                    bar.set_message(stage.to_string());
                }
                Shown::Lines(last) => {
                    let line = if job["progress"].is_null() {
                        format!("{label} running")
                    } else {
                        format!("{label} running {progress}")
                    };
                    if *last != line && !json {
                        println!("{line}");
                    }
                    *last = line;
                }
            }
        }
        let ended: Vec<u64> = shown
            .keys()
            .copied()
            .filter(|id| !running.iter().any(|j| j["id"].as_u64() == Some(*id)))
            .collect();
        for id in ended {
            let end = match client.get(&format!("/api/jobs/{id}")).await {
                Ok(d) => ending(&d["job"]),
                Err(_) => "gone".to_string(),
            };
            match shown.remove(&id) {
                Some(Shown::Bars(bar)) => bar.finish_with_message(end),
                Some(Shown::Lines(last)) if !json => {
                    let label = last
                        .split(" running")
                        .next()
                        .unwrap_or_default()
                        .to_string();
                    println!("{label} {end}");
                }
                _ => {}
            }
        }
        if running.is_empty() {
            return Ok(());
        }
    }
    Ok(())
}

/// How a job that left the running set stands now.
fn ending(job: &Value) -> String {
    let state = render::text(&job["state"]);
    match state.as_str() {
        "failed" | "timed_out" => format!("{state}: {}", render::failure(&job["last_error"])),
        "queued" if !job["last_error"].is_null() => {
            format!("will retry: {}", render::failure(&job["last_error"]))
        }
        _ => state,
    }
}
