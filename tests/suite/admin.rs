//! The admin HTTP API, request by request with exact bodies: authentication, the read-only
//! mode, listings, one job's history, operations, metrics, and the served listener.

use crate::common;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::jobs::mail_bounced_then_sent;
use common::{open_manual, secs, temp_file};
use http_body_util::BodyExt;
use jobfile::admin::{self, AdminOptions};
use jobfile::{Engine, Error, JobCtx, JobSpec, JobState, Outcome, ScheduleSpec};
use serde_json::{Value, json};
use tower::ServiceExt;

const TOKEN: &str = "s3cret-token";

/// Sends one request to the router; the status and the body (JSON if it parses, else text).
async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let body = match body {
        Some(json) => {
            request = request.header(header::CONTENT_TYPE, "application/json");
            Body::from(json.to_string())
        }
        None => Body::empty(),
    };
    let response = app
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value)
}

async fn get(app: &Router, uri: &str) -> (StatusCode, Value) {
    call(app, "GET", uri, Some(TOKEN), None).await
}

async fn post(app: &Router, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
    call(app, "POST", uri, Some(TOKEN), body).await
}

fn ids(page: &Value) -> Vec<u64> {
    page["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_u64().unwrap())
        .collect()
}

/// An engine with: job 1 `mail` failed (for ann), job 2 `mail` completed (for bob), job 3
/// `parked` queued with meta order=o-3. Mail no longer fails.
async fn engine_with_jobs(path: &std::path::Path) -> Engine {
    let (engine, _clock) = open_manual(path).await;
    mail_bounced_then_sent(&engine, "ann", "bob").await;
    let parked = engine.job::<u32, ()>(JobSpec::new("parked")).unwrap();
    parked.submit(3).meta("order", "o-3").await.unwrap();
    engine
}

#[tokio::test]
async fn every_request_needs_the_token() {
    let (_dir, path) = temp_file();
    let (engine, _clock) = open_manual(&path).await;
    let app = admin::router(engine.clone(), AdminOptions::with_token(TOKEN));
    let refused = json!({"error": {
        "code": "UNAUTHORIZED",
        "message": "send the admin token as `Authorization: Bearer <token>`"
    }});
    for token in [
        None,
        Some("wrong"),
        Some("s3cret-toke"),
        Some("s3cret-token2"),
    ] {
        for (method, uri) in [
            ("GET", "/api/overview"),
            ("POST", "/api/jobs/1/retry"),
            ("GET", "/metrics"),
        ] {
            let (status, body) = call(&app, method, uri, token, None).await;
            assert_eq!(
                (status, &body),
                (StatusCode::UNAUTHORIZED, &refused),
                "{method} {uri} {token:?}"
            );
        }
    }
    let (status, body) = get(&app, "/api/overview").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["epoch"], 1);
    assert_eq!(body["job_counts"], json!([]));
    assert_eq!(body["queues"], json!([]));
    // Without auth, explicitly: no token needed.
    let open = admin::router(engine.clone(), AdminOptions::without_auth());
    assert_eq!(
        call(&open, "GET", "/api/overview", None, None).await.0,
        StatusCode::OK
    );
    assert!(format!("{:?}", AdminOptions::with_token(TOKEN)).contains("<redacted>"));
}

#[tokio::test]
async fn jobs_are_listed_by_filter_newest_first_and_paged() {
    let (_dir, path) = temp_file();
    let engine = engine_with_jobs(&path).await;
    let app = admin::router(engine.clone(), AdminOptions::with_token(TOKEN));
    let (_, overview) = get(&app, "/api/overview").await;
    assert_eq!(
        overview["job_counts"],
        json!([
            {"name": "mail", "waiting": 0, "queued": 0, "running": 0, "completed": 1, "failed": 1, "cancelled": 0, "timed_out": 0, "paused": false},
            {"name": "parked", "waiting": 0, "queued": 1, "running": 0, "completed": 0, "failed": 0, "cancelled": 0, "timed_out": 0, "paused": false},
        ])
    );
    let (status, page) = get(&app, "/api/jobs").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((ids(&page), &page["next"]), (vec![3, 2, 1], &Value::Null));
    assert_eq!(ids(&get(&app, "/api/jobs?name=mail").await.1), [2, 1]);
    assert_eq!(ids(&get(&app, "/api/jobs?state=failed").await.1), [1]);
    assert_eq!(
        ids(&get(&app, "/api/jobs?name=mail&state=completed").await.1),
        [2]
    );
    assert_eq!(ids(&get(&app, "/api/jobs?meta=order:o-3").await.1), [3]);
    assert_eq!(ids(&get(&app, "/api/jobs?order=oldest").await.1), [1, 2, 3]);
    let (_, first) = get(&app, "/api/jobs?limit=2").await;
    assert_eq!((ids(&first), &first["next"]), (vec![3, 2], &json!(2)));
    let (_, rest) = get(&app, "/api/jobs?limit=2&after=2").await;
    assert_eq!((ids(&rest), &rest["next"]), (vec![1], &Value::Null));
    // The listed job carries the documented fields.
    let failed = &get(&app, "/api/jobs?state=failed").await.1["jobs"][0];
    assert_eq!(failed["name"], "mail");
    assert_eq!(failed["state"], "failed");
    assert_eq!(failed["last_error"]["code"], "FULL");
    assert_eq!(failed["last_error"]["message"], "ann: mailbox full");
    for (uri, message) in [
        ("/api/jobs?limit=0", "limit must be 1 to 1000, got 0"),
        ("/api/jobs?limit=1001", "limit must be 1 to 1000, got 1001"),
        (
            "/api/jobs?meta=order",
            "meta must be key:value, got \"order\"",
        ),
        (
            "/api/jobs?order=random",
            "order must be newest or oldest, got \"random\"",
        ),
    ] {
        assert_eq!(
            get(&app, uri).await,
            (
                StatusCode::BAD_REQUEST,
                json!({"error": {"code": "INVALID_ARGUMENT", "message": message}})
            ),
            "{uri}"
        );
    }
    assert_eq!(
        get(&app, "/api/jobs?state=sleeping").await.0,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn one_job_shows_its_record_and_whole_history() {
    let (_dir, path) = temp_file();
    let engine = engine_with_jobs(&path).await;
    let app = admin::router(engine.clone(), AdminOptions::with_token(TOKEN));
    let (status, body) = get(&app, "/api/jobs/2").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["job"]["id"], 2);
    assert_eq!(body["job"]["state"], "completed");
    let kinds: Vec<&str> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["submitted", "started", "completed"]);
    assert_eq!(
        get(&app, "/api/jobs/99").await,
        (
            StatusCode::NOT_FOUND,
            json!({"error": {"code": "UNKNOWN_JOB", "message": "no job 99"}})
        )
    );
}

#[tokio::test]
async fn operations_change_exactly_what_they_say() {
    let (_dir, path) = temp_file();
    let engine = engine_with_jobs(&path).await;
    let app = admin::router(engine.clone(), AdminOptions::with_token(TOKEN));
    let jobs = engine.jobs();

    // Retry the failed job: it runs again (mail no longer fails) and completes.
    assert_eq!(
        post(&app, "/api/jobs/1/retry", None).await,
        (StatusCode::OK, json!({"ok": true}))
    );
    let mail = engine.job::<String, String>(JobSpec::new("mail")).unwrap();
    assert_eq!(
        mail.join(1, None).await.unwrap(),
        Outcome::Completed("sent to ann".to_string())
    );
    // Retrying a completed job is refused, and changes nothing.
    let (status, body) = post(&app, "/api/jobs/1/retry", None).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::BAD_REQUEST, &json!("INVALID_ARGUMENT"))
    );
    assert_eq!(
        jobs.get(1).await.unwrap().unwrap().state,
        JobState::Completed
    );

    // Cancel the queued job with a reason.
    let (status, body) = post(
        &app,
        "/api/jobs/3/cancel",
        Some(json!({"reason": "order void"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let job = jobs.get(3).await.unwrap().unwrap();
    assert_eq!(
        (job.state, job.cancel_reason.as_deref()),
        (JobState::Cancelled, Some("order void"))
    );
    // Without a body, the reason says who did it.
    let parked = engine.job::<u32, ()>(JobSpec::new("parked")).unwrap();
    let fresh = parked.submit(4).await.unwrap().id;
    assert_eq!(
        post(&app, &format!("/api/jobs/{fresh}/cancel"), None)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        jobs.get(fresh)
            .await
            .unwrap()
            .unwrap()
            .cancel_reason
            .as_deref(),
        Some("cancelled by an operator")
    );

    // Delete a finished job: gone after.
    let (status, _) = call(&app, "DELETE", "/api/jobs/2", Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(jobs.get(2).await.unwrap(), None);
    assert_eq!(
        call(&app, "DELETE", "/api/jobs/2", Some(TOKEN), None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );

    // Dead letters: two messages dead-lettered, one requeued, one deleted, then a purge.
    let q = engine.queue("emails").unwrap();
    for p in [b"a", b"b", b"c"] {
        q.send(p.to_vec()).await.unwrap();
    }
    for _ in 0..3 {
        let d = q.receive().await.unwrap();
        d.dead_letter("bounced").await.unwrap();
    }
    let (status, dead) = get(&app, "/api/queues/emails/dead").await;
    assert_eq!(status, StatusCode::OK);
    let dead_ids: Vec<u64> = dead
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_u64().unwrap())
        .collect();
    assert_eq!(dead_ids.len(), 3);
    assert_eq!(dead[0]["reason"], "nacked");
    assert_eq!(
        post(
            &app,
            &format!("/api/queues/emails/dead/{}/requeue", dead_ids[0]),
            None
        )
        .await,
        (StatusCode::OK, json!({"found": true}))
    );
    assert_eq!(
        call(
            &app,
            "DELETE",
            &format!("/api/queues/emails/dead/{}", dead_ids[1]),
            Some(TOKEN),
            None
        )
        .await,
        (StatusCode::OK, json!({"found": true}))
    );
    assert_eq!(
        post(
            &app,
            &format!("/api/queues/emails/dead/{}/requeue", dead_ids[1]),
            None
        )
        .await,
        (StatusCode::OK, json!({"found": false}))
    );
    assert_eq!(
        get(&app, "/api/queues/emails").await,
        (
            StatusCode::OK,
            json!({"ready": 1, "delayed": 0, "leased": 0, "dead": 1, "paused": false})
        )
    );
    assert_eq!(
        get(&app, "/api/overview").await.1["queues"],
        json!([{"name": "emails", "ready": 1, "delayed": 0, "leased": 0, "dead": 1, "paused": false}])
    );
    let (_, metrics) = get(&app, "/metrics").await;
    let metrics = metrics.as_str().unwrap();
    for line in [
        "jobfile_queue_messages{queue=\"emails\",state=\"ready\"} 1",
        "jobfile_queue_messages{queue=\"emails\",state=\"dead\"} 1",
        "jobfile_queue_paused{queue=\"emails\"} 0",
        "jobfile_job_definition_paused{name=\"mail\"} 0",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line:?} missing from:\n{metrics}"
        );
    }
    assert_eq!(
        post(&app, "/api/queues/emails/dead/purge", None).await,
        (StatusCode::OK, json!({"count": 1}))
    );

    // A schedule triggered now: once per key.
    let report = engine.job::<u32, ()>(JobSpec::new("report")).unwrap();
    engine
        .scheduler()
        .register(ScheduleSpec::new("nightly", "0 2 * * *"), &report, 7)
        .await
        .unwrap();
    let (status, first) = post(
        &app,
        "/api/schedules/nightly/trigger",
        Some(json!({"key": "k1"})),
    )
    .await;
    assert_eq!(
        (status, &first["deduplicated"]),
        (StatusCode::OK, &json!(false))
    );
    let (_, again) = post(
        &app,
        "/api/schedules/nightly/trigger",
        Some(json!({"key": "k1"})),
    )
    .await;
    assert_eq!(
        (&again["id"], &again["deduplicated"]),
        (&first["id"], &json!(true))
    );
    assert_eq!(
        post(
            &app,
            "/api/schedules/gone/trigger",
            Some(json!({"key": "k1"}))
        )
        .await,
        (
            StatusCode::NOT_FOUND,
            json!({"error": {"code": "UNKNOWN_SCHEDULE", "message": "no schedule \"gone\" is registered"}})
        )
    );
    let (_, schedules) = get(&app, "/api/schedules").await;
    assert_eq!(schedules[0]["id"], "nightly");
    assert_eq!(schedules[0]["cron"], "0 2 * * *");
}

#[tokio::test]
async fn a_read_only_router_refuses_every_operation() {
    let (_dir, path) = temp_file();
    let engine = engine_with_jobs(&path).await;
    let app = admin::router(
        engine.clone(),
        AdminOptions::with_token(TOKEN).read_only(true),
    );
    let refused = (
        StatusCode::FORBIDDEN,
        json!({"error": {"code": "READ_ONLY", "message": "this admin API is read-only; operations are refused"}}),
    );
    assert_eq!(post(&app, "/api/jobs/1/retry", None).await, refused);
    assert_eq!(post(&app, "/api/jobs/3/cancel", None).await, refused);
    assert_eq!(
        call(&app, "DELETE", "/api/jobs/2", Some(TOKEN), None).await,
        refused
    );
    assert_eq!(post(&app, "/api/queues/q/dead/purge", None).await, refused);
    for path in [
        "/api/definitions/parked/pause",
        "/api/queues/q/pause",
        "/api/jobs/cancel-queued?name=parked",
        "/api/jobs/delete-failed?before_ms=99999999999999",
    ] {
        assert_eq!(post(&app, path, None).await, refused, "{path}");
    }
    let jobs = engine.jobs();
    assert_eq!(jobs.get(1).await.unwrap().unwrap().state, JobState::Failed);
    assert_eq!(jobs.get(3).await.unwrap().unwrap().state, JobState::Queued);
    assert_eq!(get(&app, "/api/jobs").await.0, StatusCode::OK);
}

#[tokio::test]
async fn an_oversized_body_is_refused() {
    let (_dir, path) = temp_file();
    let engine = engine_with_jobs(&path).await;
    let app = admin::router(engine.clone(), AdminOptions::with_token(TOKEN));
    let huge = json!({"reason": "x".repeat(20_000)});
    let (status, _) = post(&app, "/api/jobs/3/cancel", Some(huge)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        engine.jobs().get(3).await.unwrap().unwrap().state,
        JobState::Queued
    );
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_the_engine_figures() {
    let (_dir, path) = temp_file();
    let engine = engine_with_jobs(&path).await;
    let app = admin::router(engine.clone(), AdminOptions::with_token(TOKEN));
    let (status, body) = get(&app, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let text = body.as_str().unwrap();
    for line in [
        "# TYPE jobfile_jobs_submitted counter",
        "jobfile_jobs_submitted_total 3",
        "jobfile_jobs_started_total 2",
        "jobfile_jobs_completed_total 1",
        "jobfile_jobs_failed_total 1",
        "# TYPE jobfile_jobs_queued gauge",
        "jobfile_jobs_queued 1",
        "jobfile_jobs_running 0",
        "jobfile_epoch 1",
        "# TYPE jobfile_jobs gauge",
        "jobfile_jobs{name=\"mail\",state=\"failed\"} 1",
        "jobfile_jobs{name=\"mail\",state=\"completed\"} 1",
        "jobfile_jobs{name=\"parked\",state=\"queued\"} 1",
        "# TYPE jobfile_attempt_duration_seconds histogram",
        "jobfile_attempt_duration_seconds_count{name=\"mail\",outcome=\"completed\"} 1",
        "jobfile_attempt_duration_seconds_count{name=\"mail\",outcome=\"failed\"} 1",
        "jobfile_attempt_duration_seconds_sum{name=\"mail\",outcome=\"failed\"} 0.0",
        "jobfile_attempt_duration_seconds_bucket{le=\"0.005\",name=\"mail\",outcome=\"failed\"} 1",
        "jobfile_attempt_duration_seconds_bucket{le=\"+Inf\",name=\"mail\",outcome=\"failed\"} 1",
        "# EOF",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line:?} missing from:\n{text}"
        );
    }
}

#[tokio::test]
async fn serve_admin_listens_on_loopback_unless_told_otherwise() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_dir, path) = temp_file();
    let (engine, _clock) = open_manual(&path).await;
    let remote = engine
        .serve_admin(
            "0.0.0.0:0".parse().unwrap(),
            AdminOptions::with_token(TOKEN),
        )
        .await;
    assert!(matches!(
        remote,
        Err(Error::InvalidArgument {
            what: "admin address",
            ..
        })
    ));
    let server = engine
        .serve_admin(
            "127.0.0.1:0".parse().unwrap(),
            AdminOptions::with_token(TOKEN),
        )
        .await
        .unwrap();
    let addr = server.local_addr();
    assert!(addr.ip().is_loopback() && addr.port() != 0);
    let request = |token: &str| {
        format!(
            "GET /api/overview HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        )
    };
    for (token, status) in [
        (TOKEN, "HTTP/1.1 200 OK"),
        ("nope", "HTTP/1.1 401 Unauthorized"),
    ] {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(request(token).as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with(status), "{response}");
    }
    server.stop().await.unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    engine.shutdown(secs(1)).await.unwrap();
}

/// Reads Server-Sent Events from `body` until `want` of them arrived or the stream ended:
/// (event name, data as JSON).
async fn read_events(body: &mut Body, buffer: &mut String, want: usize) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    loop {
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let mut name = String::new();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    name = v.to_string();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data.push_str(v);
                }
            }
            if !name.is_empty() {
                out.push((
                    name,
                    serde_json::from_str(&data).unwrap_or(Value::String(data)),
                ));
            }
            if out.len() == want {
                return out;
            }
        }
        match body.frame().await {
            Some(frame) => {
                if let Ok(bytes) = frame.unwrap().into_data() {
                    buffer.push_str(std::str::from_utf8(&bytes).unwrap());
                }
            }
            None => return out,
        }
    }
}

async fn open_stream(app: &Router, uri: &str) -> (StatusCode, Body) {
    let request = Request::builder()
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    (response.status(), response.into_body())
}

#[tokio::test]
async fn live_job_events_and_the_running_feed_arrive_as_server_sent_events() {
    let (_dir, path) = temp_file();
    let (engine, _clock) = open_manual(&path).await;
    let (open, gate) = tokio::sync::watch::channel(false);
    let slow = engine
        .register(JobSpec::new("slow"), move |ctx: JobCtx, _: ()| {
            let mut gate = gate.clone();
            async move {
                ctx.progress(40, "halfway").await?;
                let _ = gate.wait_for(|open| *open).await;
                Ok(())
            }
        })
        .unwrap();
    let app = admin::router(engine.clone(), AdminOptions::with_token(TOKEN));
    let id = slow.submit(()).await.unwrap().id;

    let (status, mut events) = open_stream(&app, &format!("/api/jobs/{id}/events/live")).await;
    assert_eq!(status, StatusCode::OK);
    let mut buffer = String::new();
    let first = read_events(&mut events, &mut buffer, 3).await;
    let kinds: Vec<(&str, &str)> = first
        .iter()
        .map(|(name, e)| (name.as_str(), e["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("job_event", "submitted"),
            ("job_event", "started"),
            ("job_event", "progress")
        ]
    );
    assert_eq!(first[2].1["percent"], 40);

    // The running feed shows the job with its progress.
    let (_, mut running) = open_stream(&app, "/api/running/live").await;
    let mut running_buffer = String::new();
    let now = read_events(&mut running, &mut running_buffer, 1).await;
    assert_eq!(now[0].0, "running");
    assert_eq!(now[0].1[0]["id"], id);
    assert_eq!(
        now[0].1[0]["progress"],
        json!({"percent": 40, "stage": "halfway"})
    );

    // The job completes: its stream sends the terminal event and ends.
    open.send(true).unwrap();
    let rest = read_events(&mut events, &mut buffer, 10).await;
    let kinds: Vec<&str> = rest
        .iter()
        .map(|(_, e)| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["completed"]);
    // And the running feed says no job runs any more (it looks once a second).
    let after = read_events(&mut running, &mut running_buffer, 1).await;
    assert_eq!(after[0], (s("running"), json!([])));
    assert_eq!(
        call(&app, "GET", "/api/jobs/77/events/live", Some(TOKEN), None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
}

fn s(v: &str) -> String {
    v.to_string()
}

#[tokio::test]
async fn the_dashboard_page_needs_no_token_and_cannot_be_framed() {
    let (_dir, path) = temp_file();
    let (engine, _clock) = open_manual(&path).await;
    let app = admin::router(engine.clone(), AdminOptions::with_token(TOKEN));
    let response = app
        .clone()
        .oneshot(Request::builder().uri("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
    assert!(
        headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    let html = response.into_body().collect().await.unwrap().to_bytes();
    let html = String::from_utf8(html.to_vec()).unwrap();
    assert!(html.contains("<title>jobfile</title>"));
    // Everything it shows comes through the API, which still wants the token.
    assert_eq!(
        call(&app, "GET", "/api/jobs", None, None).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn an_operation_from_another_sites_page_is_refused_even_without_a_token() {
    let (_dir, path) = temp_file();
    let engine = engine_with_jobs(&path).await;
    let app = admin::router(engine.clone(), AdminOptions::without_auth());
    let send = |headers: &[(&str, &str)]| {
        let mut request = Request::builder()
            .method("POST")
            .uri("/api/jobs/1/retry")
            .header(header::HOST, "127.0.0.1:7311");
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let app = app.clone();
        let request = request.body(Body::empty()).unwrap();
        async move { app.oneshot(request).await.unwrap().status() }
    };
    assert_eq!(
        send(&[("sec-fetch-site", "cross-site")]).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        send(&[("origin", "https://evil.example")]).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(send(&[("origin", "null")]).await, StatusCode::FORBIDDEN);
    assert_eq!(
        engine.jobs().get(1).await.unwrap().unwrap().state,
        JobState::Failed
    );
    // The dashboard's own requests (same origin) and tools without an Origin go through.
    assert_eq!(
        send(&[
            ("origin", "http://127.0.0.1:7311"),
            ("sec-fetch-site", "same-origin")
        ])
        .await,
        StatusCode::OK
    );
    let mail = engine.job::<String, String>(JobSpec::new("mail")).unwrap();
    mail.join(1, None).await.unwrap();
    assert_eq!(
        send(&[]).await,
        StatusCode::BAD_REQUEST,
        "a completed job is not retried"
    );
}

#[tokio::test]
async fn topics_sets_and_mutex_holders_are_listed() {
    let (_dir, path) = temp_file();
    let (engine, clock) = open_manual(&path).await;
    let app = admin::router(engine.clone(), AdminOptions::with_token(TOKEN));
    let orders = engine.topic("orders").unwrap();
    for p in [b"1", b"2", b"3"] {
        orders.publish(p.to_vec()).await.unwrap();
    }
    let billing = orders.group_at("billing", jobfile::StartAt::Beginning);
    let got = billing.receive(2).await.unwrap();
    billing.commit(got[0].event.seq).await.unwrap();
    let devices = engine.ephemeral("devices").unwrap();
    devices.upsert("a", b"on".to_vec()).await.unwrap();
    devices.upsert("b", b"on".to_vec()).await.unwrap();
    let old = engine.mutex("old").unwrap();
    old.try_acquire("x", secs(1)).await.unwrap().unwrap();
    clock.advance(secs(2));
    let report = engine.mutex("report").unwrap();
    report.try_acquire("a", secs(30)).await.unwrap().unwrap();

    assert_eq!(
        get(&app, "/api/topics").await,
        (
            StatusCode::OK,
            json!([{"name": "orders", "last_seq": 3, "pruned_through": 0, "groups": [
                {"name": "billing", "committed_through": 1, "delivered_through": 2}
            ]}])
        )
    );
    assert_eq!(
        get(&app, "/api/sets").await,
        (
            StatusCode::OK,
            json!([{"name": "devices", "entries": 2, "position": 2}])
        )
    );
    // The expired lease of "old" is not a holder.
    assert_eq!(
        get(&app, "/api/mutexes").await,
        (
            StatusCode::OK,
            json!([{"name": "report", "owner": "a", "token": 2, "expires_at_ms": common::T0 + 32_000}])
        )
    );
    let (_, overview) = get(&app, "/api/overview").await;
    assert_eq!(overview["topics"][0]["name"], "orders");
    assert_eq!(overview["sets"][0]["entries"], 2);
    assert_eq!(overview["mutexes"][0]["owner"], "a");
    assert_eq!(get(&app, "/api/queues").await, (StatusCode::OK, json!([])));
}

#[tokio::test]
async fn progress_in_items_shows_done_of_total_and_an_eta_while_running() {
    let (_dir, path) = temp_file();
    let (engine, clock) = open_manual(&path).await;
    let (cmd_tx, cmd_rx) = tokio::sync::mpsc::unbounded_channel::<Option<(u64, u64)>>();
    let (ack_tx, mut ack_rx) = tokio::sync::mpsc::unbounded_channel::<Option<String>>();
    let cmds = std::sync::Arc::new(tokio::sync::Mutex::new(cmd_rx));
    let import = engine
        .register(JobSpec::new("import"), move |ctx: JobCtx, _: ()| {
            let (cmds, ack) = (cmds.clone(), ack_tx.clone());
            async move {
                let mut cmds = cmds.lock().await;
                while let Some(Some((done, total))) = cmds.recv().await {
                    let refused = ctx.progress_items(done, total, "rows").await.err();
                    ack.send(refused.map(|e| e.code_str().to_string())).unwrap();
                }
                Ok(())
            }
        })
        .unwrap();
    let id = import.submit(()).await.unwrap().id;
    let app = admin::router(engine.clone(), AdminOptions::with_token(TOKEN));
    let uri = format!("/api/jobs/{id}");
    let t0 = common::T0;
    // 10,000 of 50,000 at T0, 20,000 at T0 + 2 s: 0.2 ms an item, 30,000 left, so 6 s more.
    for (at, done) in [(0, 10_000), (2_000, 20_000)] {
        clock.set(t0 + at);
        cmd_tx.send(Some((done, 50_000))).unwrap();
        assert_eq!(ack_rx.recv().await.unwrap(), None);
    }
    let (_, body) = get(&app, &uri).await;
    assert_eq!(
        body["job"]["progress"],
        json!({"percent": 40, "stage": "rows", "done": 20_000, "total": 50_000})
    );
    assert_eq!(body["eta_ms"], t0 + 8_000);
    let reports: Vec<Value> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "progress")
        .cloned()
        .collect();
    assert_eq!(
        reports,
        [
            json!({"seq": 2, "at_ms": t0, "kind": "progress", "percent": 20, "stage": "rows", "done": 10_000, "total": 50_000}),
            json!({"seq": 3, "at_ms": t0 + 2_000, "kind": "progress", "percent": 40, "stage": "rows", "done": 20_000, "total": 50_000}),
        ]
    );
    // Percent is rounded down; a count that makes no sense is refused with a code.
    clock.set(t0 + 3_000);
    cmd_tx.send(Some((1_234, 50_000))).unwrap();
    assert_eq!(ack_rx.recv().await.unwrap(), None);
    let (_, body) = get(&app, &uri).await;
    assert_eq!(body["job"]["progress"]["percent"], 2);
    // Going backwards gives no estimate rather than a wrong one.
    assert_eq!(body["eta_ms"], Value::Null);
    for bad in [(5, 0), (6, 5)] {
        cmd_tx.send(Some(bad)).unwrap();
        assert_eq!(
            ack_rx.recv().await.unwrap().as_deref(),
            Some("INVALID_ARGUMENT")
        );
    }
    cmd_tx.send(None).unwrap();
    import.join(id, None).await.unwrap();
    let (_, body) = get(&app, &uri).await;
    assert_eq!(body["job"]["state"], "completed");
    assert_eq!(body["eta_ms"], Value::Null);
}

#[tokio::test]
async fn bulk_operations_retry_every_failed_job_of_a_name_and_requeue_every_dead_letter() {
    let (_dir, path) = temp_file();
    let engine = engine_with_jobs(&path).await;
    let app = admin::router(engine.clone(), AdminOptions::with_token(TOKEN));
    // A failed job of another name is left alone.
    let other = engine
        .register(
            JobSpec::new("other").max_attempts(1),
            |_: JobCtx, _: ()| async { Err::<(), _>(jobfile::JobError::permanent("no")) },
        )
        .unwrap();
    let other_id = other.submit(()).await.unwrap().id;
    other.join(other_id, None).await.unwrap();
    assert_eq!(
        post(&app, "/api/jobs/retry-failed?name=mail", None).await,
        (StatusCode::OK, json!({"count": 1}))
    );
    // Job 1 (mail) ran again and completed; `other` is still failed.
    let mail = engine.job::<String, String>(JobSpec::new("mail")).unwrap();
    assert!(matches!(
        mail.join(1, None).await.unwrap(),
        Outcome::Completed(_)
    ));
    assert_eq!(
        engine.jobs().get(other_id).await.unwrap().unwrap().state,
        JobState::Failed
    );
    assert_eq!(
        post(&app, "/api/jobs/retry-failed?name=mail", None).await,
        (StatusCode::OK, json!({"count": 0}))
    );

    let q = engine.queue("work").unwrap();
    for i in 0..3u8 {
        q.send(vec![i]).await.unwrap();
    }
    for d in q.try_receive(3, secs(30)).await.unwrap() {
        d.dead_letter("bad").await.unwrap();
    }
    assert_eq!(
        post(&app, "/api/queues/work/dead/requeue", None).await,
        (StatusCode::OK, json!({"count": 3}))
    );
    let (_, stats) = get(&app, "/api/queues/work").await;
    assert_eq!(
        stats,
        json!({"ready": 3, "delayed": 0, "leased": 0, "dead": 0, "paused": false})
    );

    // Pause and resume, of a queue and of a job definition.
    assert_eq!(
        post(&app, "/api/queues/work/pause", None).await,
        (StatusCode::OK, json!({"changed": true}))
    );
    assert_eq!(
        post(&app, "/api/queues/work/pause", None).await,
        (StatusCode::OK, json!({"changed": false}))
    );
    assert_eq!(get(&app, "/api/queues/work").await.1["paused"], json!(true));
    assert!(q.try_receive(1, secs(30)).await.unwrap().is_empty());
    assert_eq!(
        post(&app, "/api/queues/work/resume", None).await,
        (StatusCode::OK, json!({"changed": true}))
    );
    assert_eq!(q.try_receive(3, secs(30)).await.unwrap().len(), 3);
    assert_eq!(
        post(&app, "/api/definitions/parked/pause", None).await,
        (StatusCode::OK, json!({"changed": true}))
    );
    let (_, overview) = get(&app, "/api/overview").await;
    let parked = overview["job_counts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "parked")
        .cloned();
    assert_eq!(parked.map(|c| c["paused"].clone()), Some(json!(true)));
    let (_, metrics) = get(&app, "/metrics").await;
    let paused_line = "jobfile_job_definition_paused{name=\"parked\"} 1";
    assert!(metrics.as_str().unwrap().lines().any(|l| l == paused_line));
    assert_eq!(
        post(&app, "/api/definitions/parked/resume", None).await,
        (StatusCode::OK, json!({"changed": true}))
    );
    let (status, body) = post(&app, "/api/definitions//pause", None).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::BAD_REQUEST, &json!("INVALID_ARGUMENT"))
    );

    // Cancel every queued job of a name; delete failed ones older than an instant.
    // "parked" holds one queued job already; three more make four.
    let parked = engine.job::<u32, ()>(JobSpec::new("parked")).unwrap();
    let batch = (0..3).map(|n| parked.submit(n));
    let last = parked.submit_many(batch).await.unwrap()[2].id;
    assert_eq!(
        post(
            &app,
            "/api/jobs/cancel-queued?name=parked",
            Some(json!({"reason": "tidy"}))
        )
        .await,
        (StatusCode::OK, json!({"count": 4}))
    );
    assert_eq!(
        parked.join(last, None).await.unwrap(),
        Outcome::Cancelled("tidy".into())
    );
    assert_eq!(
        post(&app, "/api/jobs/cancel-queued", None).await.0,
        StatusCode::BAD_REQUEST
    );
    let failed_now = engine.jobs().counts().await.unwrap();
    let failed: u64 = failed_now.iter().map(|c| c.failed + c.timed_out).sum();
    assert_eq!(
        post(&app, "/api/jobs/delete-failed?before_ms=0", None).await,
        (StatusCode::OK, json!({"count": 0}))
    );
    assert_eq!(
        post(
            &app,
            "/api/jobs/delete-failed?before_ms=18446744073709551615",
            None
        )
        .await,
        (StatusCode::OK, json!({"count": failed}))
    );
    engine.shutdown(secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_answers_alike_over_postgres() {
    let Some(schema) = common::pg::PgSchema::new() else {
        return;
    };
    let engine = schema.connect().await;
    let (mail, bounced, sent) = mail_bounced_then_sent(&engine, "ann", "bob").await;
    let app = admin::router(engine.clone(), AdminOptions::with_token(TOKEN));
    let (status, overview) = get(&app, "/api/overview").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        overview["path"],
        format!("postgres://127.0.0.1/test#{}", schema.schema)
    );
    assert_eq!(overview["epoch"], engine.epoch());
    assert_eq!(
        overview["job_counts"],
        json!([{"name": "mail", "waiting": 0, "queued": 0, "running": 0, "completed": 1, "failed": 1, "cancelled": 0, "timed_out": 0, "paused": false}])
    );
    let (_, page) = get(&app, "/api/jobs?state=failed").await;
    assert_eq!(ids(&page), [bounced]);
    let (_, page) = get(&app, "/api/jobs").await;
    assert_eq!(ids(&page), [sent, bounced]);
    assert_eq!(
        post(&app, &format!("/api/jobs/{bounced}/retry"), None).await,
        (StatusCode::OK, json!({"ok": true}))
    );
    assert!(matches!(
        mail.join(bounced, None).await.unwrap(),
        Outcome::Completed(ref s) if s == "sent to ann"
    ));
    let (_, detail) = get(&app, &format!("/api/jobs/{bounced}")).await;
    let kinds: Vec<&str> = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "submitted",
            "started",
            "failed",
            "retry_scheduled",
            "started",
            "completed"
        ]
    );
    // The scheduler answers over PostgreSQL too.
    engine
        .scheduler()
        .register(
            jobfile::ScheduleSpec::new("nightly", "0 3 * * *"),
            &mail,
            "carol".into(),
        )
        .await
        .unwrap();
    let (status, body) = post(
        &app,
        "/api/schedules/nightly/trigger",
        Some(json!({"key": "k"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["deduplicated"], json!(false));
    let (_, schedules) = get(&app, "/api/schedules").await;
    assert_eq!(schedules[0]["id"], json!("nightly"));
    let (status, body) = post(
        &app,
        "/api/schedules/gone/trigger",
        Some(json!({"key": "k"})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], json!("UNKNOWN_SCHEDULE"));
    // Topics and ephemeral sets are listed as on a file.
    let orders = engine.topic("orders").unwrap();
    for p in [b"1", b"2", b"3"] {
        orders.publish(p.to_vec()).await.unwrap();
    }
    let billing = orders.group("billing");
    let got = billing.receive(2).await.unwrap();
    billing.commit(got[0].event.seq).await.unwrap();
    let devices = engine.ephemeral("devices").unwrap();
    devices.upsert("b", b"on".to_vec()).await.unwrap();
    devices.upsert("a", b"on".to_vec()).await.unwrap();
    assert_eq!(
        get(&app, "/api/topics").await,
        (
            StatusCode::OK,
            json!([{"name": "orders", "last_seq": 3, "pruned_through": 0, "groups": [
                {"name": "billing", "committed_through": 1, "delivered_through": 2}
            ]}])
        )
    );
    assert_eq!(
        get(&app, "/api/sets").await,
        (
            StatusCode::OK,
            json!([{"name": "devices", "entries": 2, "position": 2}])
        )
    );
    engine.shutdown(secs(5)).await.unwrap();
}

/// Checks `value` against the named component schema of the description: every required
/// field is there, and no field is missing from the description.
fn conforms(spec: &Value, schema: &str, value: &Value) {
    let s = &spec["components"]["schemas"][schema];
    let (required, properties) = if let Some(all) = s["allOf"].as_array() {
        let mut req = Vec::new();
        let mut props = serde_json::Map::new();
        for part in all {
            let part = match part["$ref"].as_str() {
                Some(r) => &spec["components"]["schemas"][r.rsplit('/').next().unwrap()],
                None => part,
            };
            req.extend(part["required"].as_array().cloned().unwrap_or_default());
            props.extend(part["properties"].as_object().cloned().unwrap_or_default());
        }
        (req, props)
    } else {
        (
            s["required"].as_array().cloned().unwrap_or_default(),
            s["properties"].as_object().cloned().unwrap_or_default(),
        )
    };
    let object = value
        .as_object()
        .unwrap_or_else(|| panic!("{schema}: not an object: {value}"));
    for field in &required {
        assert!(
            object.contains_key(field.as_str().unwrap()),
            "{schema}: {field} missing in {value}"
        );
    }
    for key in object.keys() {
        assert!(
            properties.contains_key(key),
            "{schema}: {key} is not described"
        );
    }
}

#[tokio::test]
async fn the_openapi_description_matches_the_routes_and_the_answers() {
    let (_dir, path) = temp_file();
    let engine = engine_with_jobs(&path).await;
    let app = admin::router(engine.clone(), AdminOptions::with_token(TOKEN));
    let (status, spec) = call(&app, "GET", "/api/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(spec["openapi"], "3.1.0");
    // Every route the router has, with its methods, is described, and nothing else is.
    let source = include_str!("../../src/admin/api.rs");
    let mut routes: Vec<(String, String)> = Vec::new();
    for line in source
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with(".route(\""))
    {
        let path = line.split('"').nth(1).unwrap().to_string();
        let rest = &line[line.find(',').unwrap()..];
        for method in ["get", "post", "delete"] {
            if rest.contains(&format!(" {method}(")) || rest.contains(&format!(".{method}(")) {
                routes.push((path.clone(), method.to_string()));
            }
        }
    }
    routes.sort();
    let mut described: Vec<(String, String)> = spec["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (path.clone(), m.clone()))
        })
        .collect();
    described.sort();
    assert_eq!(described, routes);
    // The answers carry exactly the described fields.
    let (_, overview) = get(&app, "/api/overview").await;
    conforms(&spec, "Overview", &overview);
    for counts in overview["job_counts"].as_array().unwrap() {
        conforms(&spec, "JobCounts", counts);
    }
    let (_, page) = get(&app, "/api/jobs").await;
    conforms(&spec, "JobPage", &page);
    for job in page["jobs"].as_array().unwrap() {
        conforms(&spec, "JobInfo", job);
    }
    let (_, detail) = get(&app, "/api/jobs/1").await;
    conforms(&spec, "JobDetail", &detail);
    conforms(&spec, "JobInfo", &detail["job"]);
    conforms(&spec, "Failure", &detail["job"]["last_error"]);
    for event in detail["events"].as_array().unwrap() {
        conforms(&spec, "JobEvent", event);
    }
    let (_, missing) = get(&app, "/api/jobs/99").await;
    conforms(&spec, "Error", &missing);
    let q = engine.queue("work").unwrap();
    q.send(b"x".to_vec()).await.unwrap();
    q.receive().await.unwrap().dead_letter("bad").await.unwrap();
    let (_, queues) = get(&app, "/api/queues").await;
    conforms(&spec, "QueueSummary", &queues[0]);
    let (_, dead) = get(&app, "/api/queues/work/dead").await;
    conforms(&spec, "DeadLetter", &dead[0]);
    let (_, cancelled) = post(&app, "/api/jobs/3/cancel", None).await;
    conforms(&spec, "CancelOutcome", &cancelled);
}

#[tokio::test]
async fn a_batch_is_read_and_cancelled_as_a_whole() {
    let (_dir, path) = temp_file();
    let (engine, _clock) = open_manual(&path).await;
    let member = engine.job::<u32, ()>(JobSpec::new("member")).unwrap();
    let summary = engine
        .job::<jobfile::BatchOutcome, ()>(JobSpec::new("summary"))
        .unwrap();
    let batch = engine.batch().on_complete(&summary).open().await.unwrap();
    for n in 0..3 {
        member.submit(n).batch(&batch).await.unwrap();
    }
    batch.seal().await.unwrap();
    let app = admin::router(engine.clone(), AdminOptions::with_token(TOKEN));
    let id = batch.id();
    assert_eq!(
        get(&app, &format!("/api/batches/{id}")).await,
        (
            StatusCode::OK,
            json!({"id": id, "sealed": true, "total": 3, "done": 0, "waiting": 0, "queued": 3,
                "running": 0, "completed": 0, "failed": 0, "cancelled": 0, "timed_out": 0,
                "created_at_ms": common::T0, "finished_at_ms": null, "callbacks": []})
        )
    );
    assert_eq!(
        get(&app, "/api/batches/99").await,
        (
            StatusCode::NOT_FOUND,
            json!({"error": {"code": "UNKNOWN_BATCH", "message": "no batch 99"}})
        )
    );
    let read_only = admin::router(
        engine.clone(),
        AdminOptions::with_token(TOKEN).read_only(true),
    );
    assert_eq!(
        post(&read_only, &format!("/api/batches/{id}/cancel"), None)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post(
            &app,
            &format!("/api/batches/{id}/cancel"),
            Some(json!({"reason": "import aborted"}))
        )
        .await,
        (StatusCode::OK, json!({"count": 3}))
    );
    let (_, after) = get(&app, &format!("/api/batches/{id}")).await;
    assert_eq!(
        (
            &after["done"],
            &after["cancelled"],
            &after["finished_at_ms"]
        ),
        (&json!(3), &json!(3), &json!(common::T0))
    );
    let callback = after["callbacks"][0].as_u64().unwrap();
    let (_, job) = get(&app, &format!("/api/jobs/{callback}")).await;
    assert_eq!(job["job"]["name"], "summary");
    let member_job = engine.jobs().get(1).await.unwrap().unwrap();
    assert_eq!(member_job.cancel_reason.as_deref(), Some("import aborted"));
}
