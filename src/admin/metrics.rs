//! `GET /metrics`: the engine's counters and gauges in the Prometheus text format, read at
//! each scrape (nothing is kept between scrapes).

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::{Registry, Unit};

use crate::AttemptDurations;

use super::api::Admin;
use super::error::ApiError;

/// The content type of the text exposition format.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub(super) async fn scrape(State(admin): State<Admin>) -> Result<impl IntoResponse, ApiError> {
    let engine = &admin.engine;
    let jobs = engine.jobs().metrics().await?;
    let store = engine.store_stats();
    let mut registry = Registry::with_prefix("jobfile");
    let counters = [
        ("jobs_submitted", "Jobs submitted", jobs.submitted),
        ("jobs_started", "Attempts started", jobs.started),
        ("jobs_completed", "Jobs completed", jobs.completed),
        ("jobs_failed", "Jobs failed for good", jobs.failed),
        ("jobs_retried", "Retries scheduled", jobs.retried),
        ("jobs_cancelled", "Jobs cancelled", jobs.cancelled),
        ("jobs_timed_out", "Attempts timed out", jobs.timed_out),
        (
            "jobs_recovered",
            "Attempts recovered after a crash",
            jobs.recovered,
        ),
        (
            "store_commits",
            "Transactions committed since the engine opened",
            store.commits,
        ),
        (
            "store_ops",
            "Operations applied since the engine opened",
            store.ops,
        ),
        (
            "store_log_syncs",
            "Syncs of the write-ahead log since the engine opened",
            store.log_syncs,
        ),
        (
            "store_checkpoints",
            "Checkpoints (durable commits of the file) since the engine opened",
            store.checkpoints,
        ),
    ];
    for (name, help, value) in counters {
        registry.register(name, help, ConstCounter::new(value));
    }
    let gauges = [
        ("jobs_queued", "Jobs waiting to run now", jobs.queued_now),
        ("jobs_running", "Attempts running now", jobs.running_now),
        ("epoch", "This leadership's epoch", engine.epoch()),
        (
            "file_size_bytes",
            "Size of the data file",
            engine.file_size(),
        ),
    ];
    for (name, help, value) in gauges {
        registry.register(
            name,
            help,
            ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX)),
        );
    }
    let by_state: Family<Vec<(String, String)>, Gauge> = Family::default();
    let paused: Family<Vec<(String, String)>, Gauge> = Family::default();
    for c in engine.jobs().counts().await? {
        paused
            .get_or_create(&vec![("name".to_string(), c.name.clone())])
            .set(i64::from(c.paused));
        for (state, n) in [
            ("waiting", c.waiting),
            ("queued", c.queued),
            ("running", c.running),
            ("completed", c.completed),
            ("failed", c.failed),
            ("cancelled", c.cancelled),
            ("timed_out", c.timed_out),
        ] {
            let labels = vec![
                ("name".to_string(), c.name.clone()),
                ("state".to_string(), state.to_string()),
            ];
            by_state
                .get_or_create(&labels)
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }
    registry.register("jobs", "Jobs in the file by definition and state", by_state);
    registry.register(
        "job_definition_paused",
        "1 while the job definition is paused (none of its jobs start)",
        paused,
    );
    let queues: Family<Vec<(String, String)>, Gauge> = Family::default();
    let queues_paused: Family<Vec<(String, String)>, Gauge> = Family::default();
    for q in engine.queues().await? {
        queues_paused
            .get_or_create(&vec![("queue".to_string(), q.name.clone())])
            .set(i64::from(q.stats.paused));
        for (state, n) in [
            ("ready", q.stats.ready),
            ("delayed", q.stats.delayed),
            ("leased", q.stats.leased),
            ("dead", q.stats.dead),
        ] {
            let labels = vec![
                ("queue".to_string(), q.name.clone()),
                ("state".to_string(), state.to_string()),
            ];
            queues
                .get_or_create(&labels)
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }
    registry.register(
        "queue_messages",
        "Queue messages by queue and state",
        queues,
    );
    registry.register(
        "queue_paused",
        "1 while the queue is paused (nothing is delivered)",
        queues_paused,
    );
    let durations: Family<Vec<(String, String)>, HistogramSnapshot> = Family::default();
    for h in engine.jobs().attempt_durations() {
        let labels = vec![
            ("name".to_string(), h.name.clone()),
            ("outcome".to_string(), h.outcome.clone()),
        ];
        *durations
            .get_or_create(&labels)
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(h);
    }
    registry.register_with_unit(
        "attempt_duration",
        "How long attempts ran since the engine opened, by definition and outcome",
        Unit::Seconds,
        durations,
    );
    let mut text = String::new();
    encode(&mut text, &registry)
        .map_err(|e| ApiError::from(crate::Error::Internal(format!("metrics encoding: {e}"))))?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text))
}

/// One attempt-duration histogram as the engine keeps it, encoded as a Prometheus histogram
/// in seconds.
#[derive(Debug, Default)]
struct HistogramSnapshot(std::sync::Mutex<Option<AttemptDurations>>);

impl TypedMetric for HistogramSnapshot {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for HistogramSnapshot {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let h = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let Some(h) = h.as_ref() else {
            return Ok(());
        };
        let seconds = |ms: u64| ms as f64 / 1_000.0;
        let buckets: Vec<(f64, u64)> = h
            .buckets
            .iter()
            .map(|(bound, n)| {
                let bound = if *bound == u64::MAX {
                    f64::MAX
                } else {
                    seconds(*bound)
                };
                (bound, *n)
            })
            .collect();
        encoder.encode_histogram::<NoLabelSet>(seconds(h.sum_ms), h.count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}
