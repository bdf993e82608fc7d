//! The admin API's pages against a big file: how long the dashboard's requests take with
//! 1,000,000 jobs stored.
//!
//!     cargo bench --bench admin_pages
//!     cargo bench --bench admin_pages -- --jobs 1000000 --requests 30
//!
//! Fills a file with `--jobs` jobs: queued jobs of three definitions (one of them, `rare`,
//! with ten jobs only), 10,000 failed and 1,000 cancelled
//! ones (a job in the middle has meta `order=middle`). Then sends each request `--requests` times through the router (no socket) and
//! reports the median and the slowest, in ms. Release mode.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use jobfile::admin::{self, AdminOptions};
use jobfile::{Engine, JobCtx, JobError, JobSpec};
use tower::ServiceExt;

const BATCH: u64 = 10_000;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let total = arg("--jobs", 1_000_000);
    let requests = arg("--requests", 30) as usize;
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path().join("pages.jobfile"))
        .await
        .unwrap();

    let started = Instant::now();
    let bad = engine
        .register(
            JobSpec::new("mail").max_attempts(1),
            |_: JobCtx, _: u32| async { Err::<(), _>(JobError::permanent("mailbox full")) },
        )
        .unwrap();
    let failed_ids: Vec<u64> = bad
        .submit_many((0..10_000).map(|n| bad.submit(n)))
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    for id in &failed_ids {
        bad.join(*id, None).await.unwrap();
    }
    let rare = engine.job::<u64, ()>(JobSpec::new("rare")).unwrap();
    for n in 0..10 {
        rare.submit(n).await.unwrap();
    }
    let names = ["render", "import"];
    let mut made = 10_010u64;
    let mut next_batch = 0u64;
    while made < total {
        let n = BATCH.min(total - made);
        let h = engine
            .job::<u64, ()>(JobSpec::new(names[(next_batch % 2) as usize]))
            .unwrap();
        let from = made;
        let batch = h.submit_many((from..from + n).map(|i| {
            let s = h.submit(i);
            if i == total / 2 {
                s.meta("order", "middle")
            } else {
                s
            }
        }));
        batch.await.unwrap();
        made += n;
        next_batch += 1;
    }
    for id in (20_000..21_000).map(|i| i * 3) {
        engine.jobs().cancel(id, "not needed").await.unwrap();
    }
    let size = engine.file_size();
    println!(
        "filled {made} jobs in {:.1} s; file {:.0} MiB",
        started.elapsed().as_secs_f64(),
        size as f64 / 1_048_576.0
    );
    let counts = engine.jobs().counts().await.unwrap();
    for c in &counts {
        println!(
            "  {}: {} queued, {} failed, {} cancelled",
            c.name, c.queued, c.failed, c.cancelled
        );
    }

    let app = admin::router(engine.clone(), AdminOptions::with_token("t"));
    let middle = format!("/api/jobs/{}", total / 2);
    let after_middle = format!("/api/jobs?limit=50&after={}", total / 2);
    let pages = [
        "/",
        "/api/overview",
        "/api/jobs?limit=50",
        after_middle.as_str(),
        "/api/jobs?state=failed&limit=50",
        "/api/jobs?state=queued&limit=50",
        "/api/jobs?state=cancelled&limit=50",
        "/api/jobs?name=rare&limit=50",
        "/api/jobs?meta=order:middle&limit=50",
        middle.as_str(),
        "/metrics",
    ];
    println!(
        "{:<44} {:>9} {:>9} {:>7}",
        "request", "p50 ms", "max ms", "jobs"
    );
    for page in pages {
        let mut times = Vec::with_capacity(requests);
        let mut listed = String::from("-");
        for _ in 0..requests {
            let request = Request::builder()
                .uri(page)
                .header(header::AUTHORIZATION, "Bearer t")
                .body(Body::empty())
                .unwrap();
            let t = Instant::now();
            let response = app.clone().oneshot(request).await.unwrap();
            let status = response.status();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            times.push(t.elapsed());
            assert_eq!(status, StatusCode::OK, "{page}");
            if page.starts_with("/api/jobs?") {
                let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                listed = v["jobs"].as_array().map_or(0, |a| a.len()).to_string();
            }
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1_000.0;
        println!(
            "{:<44} {:>9.2} {:>9.2} {:>7}",
            page,
            ms(times[times.len() / 2]),
            ms(*times.last().unwrap()),
            listed
        );
    }
    engine.shutdown(Duration::from_secs(5)).await.unwrap();
}
