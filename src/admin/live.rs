//! Server-Sent Events: a job's events as they are committed, and the running jobs as they
//! change. Each stream is fed by a task that ends when the client goes away.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use serde::Deserialize;
use tokio::sync::mpsc;

use super::api::Admin;
use super::error::ApiError;
use crate::JobState;

/// How often the running-jobs feed looks for changes.
const RUNNING_EVERY: Duration = Duration::from_secs(1);

/// A stream of events fed through a channel.
pub(super) struct Feed(mpsc::Receiver<Event>);

impl futures_core::Stream for Feed {
    type Item = Result<Event, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|e| e.map(Ok))
    }
}

/// The query of the live job events.
#[derive(Debug, Deserialize)]
pub(super) struct FromQuery {
    from: Option<u32>,
}

/// `GET /api/jobs/{id}/events/live?from=N`: the job's events from position `from` (default 0),
/// then each new one as it is committed, as `event: job_event` with the event's JSON; the
/// stream ends after the terminal event, or with `event: error`.
pub(super) async fn job_events(
    State(admin): State<Admin>,
    Path(id): Path<u64>,
    Query(q): Query<FromQuery>,
) -> Result<impl IntoResponse, ApiError> {
    if admin.engine.jobs().get(id).await?.is_none() {
        return Err(ApiError::not_found("UNKNOWN_JOB", format!("no job {id}")));
    }
    let (tx, rx) = mpsc::channel(64);
    let mut events = admin.engine.jobs().events(id).follow(q.from.unwrap_or(0));
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            let sent = match event {
                Ok(event) => match Event::default().event("job_event").json_data(&event) {
                    Ok(e) => e,
                    Err(e) => Event::default().event("error").data(e.to_string()),
                },
                Err(e) => Event::default().event("error").data(e.to_string()),
            };
            if tx.send(sent).await.is_err() {
                return;
            }
        }
    });
    Ok(Sse::new(Feed(rx)).keep_alive(KeepAlive::default()))
}

/// `GET /api/running/live`: the running jobs (with their progress), sent at once and then
/// whenever the set or a job's progress changes, as `event: running` with a JSON array.
pub(super) async fn running(State(admin): State<Admin>) -> impl IntoResponse {
    let (tx, rx) = mpsc::channel(4);
    let limit = admin.options.max_page;
    tokio::spawn(async move {
        let mut last = None;
        loop {
            let page = admin
                .engine
                .jobs()
                .list()
                .state(JobState::Running)
                .limit(limit)
                .await;
            let event = match page.map(|p| serde_json::to_string(&p.jobs)) {
                Ok(Ok(json)) if last.as_ref() == Some(&json) => None,
                Ok(Ok(json)) => {
                    last = Some(json.clone());
                    Some(Event::default().event("running").data(json))
                }
                Ok(Err(e)) => Some(Event::default().event("error").data(e.to_string())),
                Err(e) => Some(Event::default().event("error").data(e.to_string())),
            };
            if let Some(event) = event
                && tx.send(event).await.is_err()
            {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(RUNNING_EVERY) => {}
                _ = tx.closed() => return,
            }
        }
    });
    Sse::new(Feed(rx)).keep_alive(KeepAlive::default())
}
