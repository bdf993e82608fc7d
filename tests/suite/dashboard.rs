//! The dashboard in a real browser: headless Chromium, driven by `tests/browser/dashboard.mjs`
//! (playwright-core), against a live engine served by `Engine::serve_admin`. It watches a
//! running job's progress bar advance, opens the job page, and retries a failed job from its
//! page. Screenshots land in `target/dashboard-screenshots/`.
//!
//! Needs Node.js, `npm ci` in `tests/browser/` and Chromium (`/usr/bin/chromium`, or the
//! `CHROMIUM` variable); `.ci/run` installs them and sets `JOBFILE_BROWSER_TESTS=1`, which
//! makes a missing piece a failure instead of a skip.

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::temp_file;
use jobfile::admin::AdminOptions;
use jobfile::{Engine, JobCtx, JobSpec, Outcome};

const TOKEN: &str = "dashboard-token";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_live_progress_and_retries_a_failed_job() {
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let ready = browser_dir.join("node_modules/playwright-core").exists()
        && Path::new(&chromium).exists()
        && Command::new("node").arg("--version").output().is_ok();
    if !ready {
        assert!(
            std::env::var_os("JOBFILE_BROWSER_TESTS").is_none(),
            "JOBFILE_BROWSER_TESTS is set but Node.js, tests/browser/node_modules or {chromium} is missing"
        );
        println!("skipped: the browser test needs Node.js, `npm ci` in tests/browser and Chromium");
        return;
    }

    let (_dir, path) = temp_file();
    let engine = Engine::open(&path).await.unwrap();
    // A render job reports progress every 150 ms and holds until the test ends.
    let (done, hold) = tokio::sync::watch::channel(false);
    let render = engine
        .register(JobSpec::new("render"), move |ctx: JobCtx, frames: u32| {
            let mut hold = hold.clone();
            async move {
                for step in 1..frames {
                    ctx.progress_items(u64::from(step), u64::from(frames), "rendering")
                        .await?;
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(150)) => {}
                        _ = hold.wait_for(|d| *d) => return Ok(()),
                    }
                }
                let _ = hold.wait_for(|d| *d).await;
                Ok(())
            }
        })
        .unwrap();
    // Failed and completed mail jobs, a dead letter, a topic, a set, a mutex, a schedule.
    let common::operator::Populated { mail, bounced, .. } =
        common::operator::populate(&engine).await;
    let rendering = render
        .submit(600)
        .meta("correlation_id", "req-7")
        .await
        .unwrap()
        .id;
    // A job that runs after the render: waiting for as long as the test lasts.
    let publish = engine.job::<u32, ()>(JobSpec::new("publish")).unwrap();
    publish.submit(1).after(&[rendering]).await.unwrap();

    let server = engine
        .serve_admin(
            "127.0.0.1:0".parse().unwrap(),
            AdminOptions::with_token(TOKEN),
        )
        .await
        .unwrap();
    let url = format!("http://{}", server.local_addr());
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/dashboard-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let script = browser_dir.join("dashboard.mjs");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .arg(&url)
            .arg(TOKEN)
            .arg(&shots)
            .env("CHROMIUM", chromium)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}{stderr}");
    assert!(
        out.status.success() && stdout.contains("OK"),
        "{stdout}{stderr}"
    );
    assert!(
        stdout.contains("definitions: mail,publish,render"),
        "{stdout}"
    );
    assert!(stdout.contains("waiting: publish 1"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "waiting job: waiting, runs after {rendering} · waiting for 1"
        )),
        "{stdout}"
    );
    assert!(stdout.contains("queues: emails,2,0,0,1,Pause"), "{stdout}");
    assert!(
        stdout.contains("queue paused and resumed: true"),
        "{stdout}"
    );
    assert!(
        stdout.contains("paused definition: mail paused"),
        "{stdout}"
    );
    assert!(stdout.contains("progress: "), "{stdout}");
    assert!(stdout.contains(" N of 600 rendering"), "{stdout}");
    assert!(stdout.contains("eta: done by about ..."), "{stdout}");
    assert!(
        stdout.contains("queue page: dead 1 -> 0, ready 3"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "retried job events: submitted,started,failed,retry_scheduled,started,completed"
        ),
        "{stdout}"
    );
    // The retry really ran the job again, to completion.
    assert!(matches!(
        mail.join(bounced, None).await.unwrap(),
        Outcome::Completed(ref s) if s == "sent to ann@example.com"
    ));
    // What the clicks did, as the engine sees it.
    let counts = engine.jobs().counts().await.unwrap();
    let paused: Vec<&str> = counts
        .iter()
        .filter(|c| c.paused)
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(paused, ["mail"]);
    let emails = engine.queue("emails").unwrap().stats().await.unwrap();
    assert!(!emails.paused);
    done.send(true).unwrap();
    server.stop().await.unwrap();
    engine.shutdown(Duration::from_secs(5)).await.unwrap();
}
