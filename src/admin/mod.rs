//! The admin HTTP API (feature `admin`): what an operator needs to see and steer an engine,
//! as JSON over HTTP, plus Prometheus metrics at `/metrics`.
//!
//! [`router`] returns an [`axum::Router`] an app nests under its own routes;
//! [`Engine::serve_admin`](crate::Engine::serve_admin) serves it alone. Every request needs
//! `Authorization: Bearer <token>` unless the options say otherwise; a read-only router
//! refuses every operation with `403`. Operations go through the engine, with the library's
//! guarantees. Errors are JSON: `{"error": {"code": "UNKNOWN_JOB", "message": "..."}}`.
//!
//! | method and path | what |
//! |---|---|
//! | `GET /` | the web dashboard (no token needed for the page; it asks for one) |
//! | `GET /api/openapi.json` | this API's OpenAPI 3.1 description (no token needed) |
//! | `GET /api/overview` | epoch, file size, job counters and gauges, jobs by definition and state, queues with their counts, topics, ephemeral sets, mutex holders, writer figures, schedules |
//! | `GET /api/jobs?name=&state=&meta=key:value&after=&limit=&order=oldest` | a [`JobPage`](crate::JobPage), newest first |
//! | `GET /api/jobs/{id}` | `{"job": JobInfo, "events": [JobEvent]}` (its whole history) |
//! | `GET /api/jobs/{id}/events/live?from=` | Server-Sent Events: `job_event` per event, from `from` on, ending after the terminal one |
//! | `GET /api/running/live` | Server-Sent Events: `running`, the running jobs with their progress, at once and on every change |
//! | `POST /api/jobs/{id}/retry` | a failed or timed-out job again, with a fresh budget |
//! | `POST /api/jobs/retry-failed?name=` | every failed or timed-out job of a definition (of all without `name`) again; `{"count": N}` |
//! | `POST /api/jobs/{id}/cancel` | cancels it; body `{"reason": "..."}` (optional) |
//! | `DELETE /api/jobs/{id}` | deletes a finished job |
//! | `GET /api/queues/{name}` | its [`QueueStats`](crate::QueueStats) |
//! | `GET /api/queues/{name}/dead?limit=` | its dead letters |
//! | `POST /api/queues/{name}/dead/{id}/requeue`, `DELETE /api/queues/{name}/dead/{id}`, `POST /api/queues/{name}/dead/requeue` (all), `POST /api/queues/{name}/dead/purge` | dead-letter operations; the bulk ones answer `{"count": N}` |
//! | `GET /api/schedules` | every schedule with its next run |
//! | `GET /api/queues`, `/api/topics`, `/api/sets`, `/api/mutexes` | every queue with its counts; every topic with its groups' positions; every ephemeral set with its entries; the live mutex leases |
//! | `POST /api/schedules/{id}/trigger` | runs it now; body `{"key": "..."}` (once per key) |
//! | `GET /metrics` | Prometheus text exposition: `jobfile_jobs{name,state}` (jobs in the file), `jobfile_queue_messages{queue,state}`, the job counters (`jobfile_jobs_completed_total`, ...), `jobfile_jobs_queued`, `jobfile_jobs_running`, `jobfile_store_commits_total`, `jobfile_store_ops_total`, `jobfile_epoch`, `jobfile_file_size_bytes` |

mod api;
mod auth;
mod dashboard;
mod error;
mod live;
mod metrics;
mod openapi;
mod options;
mod serve;

pub use options::AdminOptions;
pub use serve::AdminServer;

use axum::Router;

use crate::Engine;

/// The admin router for `engine`: nest it under the app's routes, or serve it with
/// [`Engine::serve_admin`](crate::Engine::serve_admin).
pub fn router(engine: Engine, options: AdminOptions) -> Router {
    api::routes(engine, options)
}
