//! The routes and their handlers: each reads or operates through the engine's public API.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::routing::{delete, get, post};
use axum::{Json, Router, middleware};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::options::AdminOptions;
use super::{auth, dashboard, live, metrics, openapi};
use crate::{
    BatchInfo, CancelOutcome, DeadLetter, Engine, JobCounts, JobEvent, JobEventKind, JobInfo,
    JobMetrics, JobPage, JobState, MutexLease, QueueStats, QueueSummary, ScheduleInfo, SetSummary,
    StoreStats, Submitted, TopicSummary,
};

/// The largest request body an operation takes.
const MAX_BODY: usize = 16 * 1024;

/// Events returned with one job: its whole history, or the latest this many of a longer one.
const MAX_EVENTS: usize = 10_000;

/// What every handler reaches.
#[derive(Clone)]
pub(super) struct Admin {
    pub(super) engine: Engine,
    pub(super) options: Arc<AdminOptions>,
}

pub(super) fn routes(engine: Engine, options: AdminOptions) -> Router {
    let options = Arc::new(options);
    let admin = Admin {
        engine,
        options: options.clone(),
    };
    let api = Router::new()
        .route("/api/overview", get(overview))
        .route("/api/jobs", get(list_jobs))
        .route("/api/jobs/{id}", get(job).delete(delete_job))
        .route("/api/jobs/{id}/events/live", get(live::job_events))
        .route("/api/running/live", get(live::running))
        .route("/api/jobs/retry-failed", post(retry_failed))
        .route("/api/jobs/cancel-queued", post(cancel_queued))
        .route("/api/jobs/delete-failed", post(delete_failed))
        .route("/api/definitions/{name}/pause", post(pause_definition))
        .route("/api/definitions/{name}/resume", post(resume_definition))
        .route("/api/queues/{name}/pause", post(pause_queue))
        .route("/api/queues/{name}/resume", post(resume_queue))
        .route("/api/jobs/{id}/retry", post(retry_job))
        .route("/api/jobs/{id}/cancel", post(cancel_job))
        .route("/api/batches/{id}", get(batch))
        .route("/api/batches/{id}/cancel", post(cancel_batch))
        .route("/api/queues/{name}", get(queue_stats))
        .route("/api/queues/{name}/dead", get(dead_letters))
        .route("/api/queues/{name}/dead/purge", post(purge_dead))
        .route("/api/queues/{name}/dead/requeue", post(requeue_all_dead))
        .route("/api/queues/{name}/dead/{id}", delete(delete_dead))
        .route("/api/queues/{name}/dead/{id}/requeue", post(requeue_dead))
        .route("/api/schedules", get(schedules))
        .route("/api/queues", get(queues))
        .route("/api/topics", get(topics))
        .route("/api/sets", get(sets))
        .route("/api/mutexes", get(mutexes))
        .route("/api/schedules/{id}/trigger", post(trigger))
        .route("/metrics", get(metrics::scrape))
        .layer(middleware::from_fn_with_state(options, auth::guard))
        .layer(DefaultBodyLimit::max(MAX_BODY));
    // The page and the description hold no data: the page asks for the token and reads
    // everything through the API.
    Router::new()
        .route("/", get(dashboard::page))
        .route("/api/openapi.json", get(openapi::description))
        .merge(api)
        .with_state(admin)
}

/// `GET /api/overview`.
#[derive(Debug, Serialize)]
struct Overview {
    /// This leadership's epoch.
    epoch: u64,
    /// The file's path and size in bytes.
    path: String,
    file_size_bytes: u64,
    /// Job counters (since the file was created) and gauges.
    jobs: JobMetrics,
    /// Jobs in the file by definition and state.
    job_counts: Vec<JobCounts>,
    /// Every queue holding messages, with its counts (its dead letters included).
    queues: Vec<QueueSummary>,
    /// Every topic with its consumer groups' positions.
    topics: Vec<TopicSummary>,
    /// Every ephemeral set with its entry count.
    sets: Vec<SetSummary>,
    /// The mutex leases live now.
    mutexes: Vec<MutexLease>,
    /// The writer's figures since this engine opened.
    store: StoreStats,
    schedules: Vec<ScheduleInfo>,
}

async fn overview(State(admin): State<Admin>) -> Result<Json<Overview>, ApiError> {
    let engine = &admin.engine;
    Ok(Json(Overview {
        epoch: engine.epoch(),
        path: engine.path().display().to_string(),
        file_size_bytes: engine.file_size(),
        jobs: engine.jobs().metrics().await?,
        job_counts: engine.jobs().counts().await?,
        queues: engine.queues().await?,
        topics: engine.topics().await?,
        sets: engine.ephemeral_sets().await?,
        mutexes: engine.mutex_holders().await?,
        store: engine.store_stats(),
        schedules: engine.scheduler().list().await?,
    }))
}

/// The query of `GET /api/jobs`.
#[derive(Debug, Deserialize)]
struct JobsQuery {
    name: Option<String>,
    state: Option<JobState>,
    /// `key:value`.
    meta: Option<String>,
    after: Option<u64>,
    limit: Option<usize>,
    /// `oldest` for ascending ids; newest first otherwise.
    order: Option<String>,
}

async fn list_jobs(
    State(admin): State<Admin>,
    Query(q): Query<JobsQuery>,
) -> Result<Json<JobPage>, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if limit == 0 || limit > admin.options.max_page {
        return Err(ApiError::bad_request(format!(
            "limit must be 1 to {}, got {limit}",
            admin.options.max_page
        )));
    }
    let jobs = admin.engine.jobs();
    // A selective filter must not walk a million jobs for one page: each page examines a
    // bounded number, and `next` says where to go on.
    let mut list = jobs
        .list()
        .limit(limit)
        .scan_limit(limit.saturating_mul(100));
    if let Some(name) = q.name {
        list = list.name(name);
    }
    if let Some(state) = q.state {
        list = list.state(state);
    }
    if let Some(meta) = q.meta {
        let Some((key, value)) = meta.split_once(':') else {
            return Err(ApiError::bad_request(format!(
                "meta must be key:value, got {meta:?}"
            )));
        };
        list = list.meta(key, value);
    }
    if let Some(after) = q.after {
        list = list.after(after);
    }
    match q.order.as_deref() {
        None | Some("newest") => {}
        Some("oldest") => list = list.oldest_first(),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "order must be newest or oldest, got {other:?}"
            )));
        }
    }
    Ok(Json(list.await?))
}

/// `GET /api/jobs/{id}`.
#[derive(Debug, Serialize)]
struct JobDetail {
    job: JobInfo,
    events: Vec<JobEvent>,
    /// When a running job should end, from its progress history (see [`eta_ms`]).
    eta_ms: Option<u64>,
}

async fn job(State(admin): State<Admin>, Path(id): Path<u64>) -> Result<Json<JobDetail>, ApiError> {
    let jobs = admin.engine.jobs();
    let Some(job) = jobs.get(id).await? else {
        return Err(ApiError::not_found("UNKNOWN_JOB", format!("no job {id}")));
    };
    let from = job.events.saturating_sub(MAX_EVENTS as u32);
    let events = jobs.events(id).read(from, MAX_EVENTS).await?;
    let eta_ms = eta_ms(&job, &events);
    Ok(Json(JobDetail {
        job,
        events,
        eta_ms,
    }))
}

/// When a running job should end: the pace between the first and the latest progress report
/// of its current attempt, continued to the end (in items when it counts them, in percent
/// otherwise). `None` unless two reports in the same unit show it moving forward.
fn eta_ms(job: &JobInfo, events: &[JobEvent]) -> Option<u64> {
    if job.state != JobState::Running {
        return None;
    }
    let attempt = events
        .iter()
        .rposition(|e| matches!(e.kind, JobEventKind::Started { .. }))
        .unwrap_or(0);
    // (at, done, total) of each report.
    let reports: Vec<(u64, u64, u64)> = events[attempt..]
        .iter()
        .filter_map(|e| match &e.kind {
            JobEventKind::Progress { items: Some(i), .. } => Some((e.at_ms, i.done, i.total)),
            JobEventKind::Progress { percent, .. } => Some((e.at_ms, u64::from(*percent), 100)),
            _ => None,
        })
        .collect();
    let last = *reports.last()?;
    let first = *reports.iter().find(|r| r.2 == last.2)?;
    if last.0 <= first.0 || last.1 <= first.1 || last.1 >= last.2 {
        return None;
    }
    let per_unit = (last.0 - first.0) as f64 / (last.1 - first.1) as f64;
    Some(last.0 + (per_unit * (last.2 - last.1) as f64).round() as u64)
}

/// The answer of an operation that has nothing else to say.
#[derive(Debug, Serialize)]
struct Done {
    ok: bool,
}

async fn retry_job(
    State(admin): State<Admin>,
    Path(id): Path<u64>,
) -> Result<Json<Done>, ApiError> {
    admin.engine.jobs().retry(id).await?;
    Ok(Json(Done { ok: true }))
}

/// The query of `POST /api/jobs/retry-failed`.
#[derive(Debug, Deserialize)]
struct NameQuery {
    name: Option<String>,
}

/// `POST /api/jobs/retry-failed?name=N`: every failed or timed-out job of `N` (of every
/// definition without `name`) again.
async fn retry_failed(
    State(admin): State<Admin>,
    Query(q): Query<NameQuery>,
) -> Result<Json<Count>, ApiError> {
    let count = admin
        .engine
        .jobs()
        .retry_all_failed(q.name.as_deref())
        .await?;
    Ok(Json(Count { count }))
}

/// The query of `POST /api/jobs/cancel-queued`: the definition, required.
#[derive(Debug, Deserialize)]
struct DefinitionQuery {
    name: String,
}

/// `POST /api/jobs/cancel-queued?name=N` with an optional `{"reason": ...}`: every queued
/// job of `N` cancelled.
async fn cancel_queued(
    State(admin): State<Admin>,
    Query(q): Query<DefinitionQuery>,
    body: Option<Json<CancelBody>>,
) -> Result<Json<Count>, ApiError> {
    let reason = body
        .and_then(|Json(b)| b.reason)
        .unwrap_or_else(|| "cancelled by an operator".to_string());
    let count = admin
        .engine
        .jobs()
        .cancel_all_queued(&q.name, &reason)
        .await?;
    Ok(Json(Count { count }))
}

/// The query of `POST /api/jobs/delete-failed`.
#[derive(Debug, Deserialize)]
struct DeleteFailedQuery {
    name: Option<String>,
    before_ms: u64,
}

/// `POST /api/jobs/delete-failed?before_ms=T&name=N`: every failed or timed-out job of `N`
/// (of every definition without `name`) that finished before `T`, deleted.
async fn delete_failed(
    State(admin): State<Admin>,
    Query(q): Query<DeleteFailedQuery>,
) -> Result<Json<Count>, ApiError> {
    let count = admin
        .engine
        .jobs()
        .delete_failed_before(q.name.as_deref(), q.before_ms)
        .await?;
    Ok(Json(Count { count }))
}

/// What a pause or a resume did.
#[derive(Debug, Serialize)]
struct Changed {
    /// False if it was so already.
    changed: bool,
}

async fn pause_definition(
    State(admin): State<Admin>,
    Path(name): Path<String>,
) -> Result<Json<Changed>, ApiError> {
    let changed = admin.engine.jobs().pause(&name).await?;
    Ok(Json(Changed { changed }))
}

async fn resume_definition(
    State(admin): State<Admin>,
    Path(name): Path<String>,
) -> Result<Json<Changed>, ApiError> {
    let changed = admin.engine.jobs().resume(&name).await?;
    Ok(Json(Changed { changed }))
}

async fn pause_queue(
    State(admin): State<Admin>,
    Path(name): Path<String>,
) -> Result<Json<Changed>, ApiError> {
    let changed = admin.engine.queue(&name)?.pause().await?;
    Ok(Json(Changed { changed }))
}

async fn resume_queue(
    State(admin): State<Admin>,
    Path(name): Path<String>,
) -> Result<Json<Changed>, ApiError> {
    let changed = admin.engine.queue(&name)?.resume().await?;
    Ok(Json(Changed { changed }))
}

async fn delete_job(
    State(admin): State<Admin>,
    Path(id): Path<u64>,
) -> Result<Json<Done>, ApiError> {
    admin.engine.jobs().delete(id).await?;
    Ok(Json(Done { ok: true }))
}

/// The body of `POST /api/jobs/{id}/cancel`.
#[derive(Debug, Default, Deserialize)]
struct CancelBody {
    reason: Option<String>,
}

async fn cancel_job(
    State(admin): State<Admin>,
    Path(id): Path<u64>,
    body: Option<Json<CancelBody>>,
) -> Result<Json<CancelOutcome>, ApiError> {
    let reason = body
        .and_then(|Json(b)| b.reason)
        .unwrap_or_else(|| "cancelled by an operator".to_string());
    Ok(Json(admin.engine.jobs().cancel(id, &reason).await?))
}

async fn batch(
    State(admin): State<Admin>,
    Path(id): Path<u64>,
) -> Result<Json<BatchInfo>, ApiError> {
    Ok(Json(admin.engine.batch_with_id(id).info().await?))
}

async fn cancel_batch(
    State(admin): State<Admin>,
    Path(id): Path<u64>,
    body: Option<Json<CancelBody>>,
) -> Result<Json<Count>, ApiError> {
    let reason = body
        .and_then(|Json(b)| b.reason)
        .unwrap_or_else(|| "cancelled by an operator".to_string());
    let count = admin.engine.batch_with_id(id).cancel(&reason).await?;
    Ok(Json(Count { count }))
}

async fn queue_stats(
    State(admin): State<Admin>,
    Path(name): Path<String>,
) -> Result<Json<QueueStats>, ApiError> {
    Ok(Json(admin.engine.queue(&name)?.stats().await?))
}

/// The query of list requests that take only a page size.
#[derive(Debug, Deserialize)]
struct LimitQuery {
    limit: Option<usize>,
}

async fn dead_letters(
    State(admin): State<Admin>,
    Path(name): Path<String>,
    Query(q): Query<LimitQuery>,
) -> Result<Json<Vec<DeadLetter>>, ApiError> {
    let limit = q.limit.unwrap_or(50).clamp(1, admin.options.max_page);
    Ok(Json(admin.engine.queue(&name)?.dead_letters(limit).await?))
}

/// The answer of an operation on one item: whether it was there to act on.
#[derive(Debug, Serialize)]
struct Acted {
    found: bool,
}

async fn requeue_dead(
    State(admin): State<Admin>,
    Path((name, id)): Path<(String, u64)>,
) -> Result<Json<Acted>, ApiError> {
    let found = admin.engine.queue(&name)?.requeue_dead(id).await?;
    Ok(Json(Acted { found }))
}

async fn delete_dead(
    State(admin): State<Admin>,
    Path((name, id)): Path<(String, u64)>,
) -> Result<Json<Acted>, ApiError> {
    let found = admin.engine.queue(&name)?.delete_dead(id).await?;
    Ok(Json(Acted { found }))
}

/// The answer of a bulk operation: how many items it acted on.
#[derive(Debug, Serialize)]
struct Count {
    count: u64,
}

async fn requeue_all_dead(
    State(admin): State<Admin>,
    Path(name): Path<String>,
) -> Result<Json<Count>, ApiError> {
    let count = admin.engine.queue(&name)?.requeue_all_dead().await?;
    Ok(Json(Count { count }))
}

async fn purge_dead(
    State(admin): State<Admin>,
    Path(name): Path<String>,
) -> Result<Json<Count>, ApiError> {
    let count = admin.engine.queue(&name)?.purge_dead().await?;
    Ok(Json(Count { count }))
}

async fn schedules(State(admin): State<Admin>) -> Result<Json<Vec<ScheduleInfo>>, ApiError> {
    Ok(Json(admin.engine.scheduler().list().await?))
}

/// The body of `POST /api/schedules/{id}/trigger`.
#[derive(Debug, Deserialize)]
struct TriggerBody {
    key: String,
}

async fn trigger(
    State(admin): State<Admin>,
    Path(id): Path<String>,
    Json(body): Json<TriggerBody>,
) -> Result<Json<Submitted>, ApiError> {
    Ok(Json(
        admin.engine.scheduler().trigger_now(&id, &body.key).await?,
    ))
}

async fn queues(State(admin): State<Admin>) -> Result<Json<Vec<QueueSummary>>, ApiError> {
    Ok(Json(admin.engine.queues().await?))
}

async fn topics(State(admin): State<Admin>) -> Result<Json<Vec<TopicSummary>>, ApiError> {
    Ok(Json(admin.engine.topics().await?))
}

async fn sets(State(admin): State<Admin>) -> Result<Json<Vec<SetSummary>>, ApiError> {
    Ok(Json(admin.engine.ephemeral_sets().await?))
}

async fn mutexes(State(admin): State<Admin>) -> Result<Json<Vec<MutexLease>>, ApiError> {
    Ok(Json(admin.engine.mutex_holders().await?))
}
