//! Every attempt runs in a `job_attempt` span carrying the job name, id, attempt and
//! correlation id, and starts, retries, failures and completions are logged.

#[path = "suite/common/mod.rs"]
mod common;

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::{open_manual, temp_file};
use jobfile::{JobCtx, JobError, JobSpec, Outcome};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

#[derive(Default)]
struct Seen {
    spans: Vec<(String, Vec<(String, String)>)>,
    events: Vec<String>,
}

struct Recorder {
    seen: Arc<Mutex<Seen>>,
    next_id: AtomicU64,
}

struct Fields(Vec<(String, String)>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0
            .push((field.name().to_string(), format!("{value:?}")));
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let mut fields = Fields(Vec::new());
        attrs.record(&mut fields);
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .spans
            .push((attrs.metadata().name().to_string(), fields.0));
        Id::from_u64(self.next_id.fetch_add(1, Ordering::Relaxed) + 1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields(Vec::new());
        event.record(&mut fields);
        let text = fields
            .0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .events
            .push(text);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[tokio::test]
async fn each_attempt_has_a_span_with_name_id_attempt_and_correlation_id() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    tracing::subscriber::set_global_default(Recorder {
        seen: seen.clone(),
        next_id: AtomicU64::new(0),
    })
    .expect("the only subscriber of this test binary");

    let (_dir, path) = temp_file();
    let (engine, _clock) = open_manual(&path).await;
    let h = engine
        .register(
            JobSpec::new("traced").max_attempts(2),
            |ctx: JobCtx, _: ()| async move {
                if ctx.attempt() == 1 {
                    return Err(JobError::retryable("first try fails").code("FLAKY"));
                }
                Ok(())
            },
        )
        .unwrap();
    let id = h
        .submit(())
        .meta("correlation_id", "req-9")
        .await
        .unwrap()
        .id;
    assert_eq!(h.join(id, None).await.unwrap(), Outcome::Completed(()));

    let seen = seen.lock().unwrap();
    let attempts: Vec<&Vec<(String, String)>> = seen
        .spans
        .iter()
        .filter(|(name, _)| name == "job_attempt")
        .map(|(_, fields)| fields)
        .collect();
    let field = |f: &Vec<(String, String)>, k: &str| {
        f.iter().find(|(name, _)| name == k).map(|(_, v)| v.clone())
    };
    assert_eq!(attempts.len(), 2, "{:?}", seen.spans);
    for (n, fields) in attempts.iter().enumerate() {
        assert_eq!(field(fields, "job").as_deref(), Some("traced"));
        assert_eq!(field(fields, "id"), Some(id.to_string()));
        assert_eq!(field(fields, "attempt"), Some((n + 1).to_string()));
        assert_eq!(field(fields, "correlation_id").as_deref(), Some("req-9"));
    }
    let logged = |needle: &str| seen.events.iter().any(|e| e.contains(needle));
    assert!(logged("job attempt started"), "{:?}", seen.events);
    assert!(
        logged("retry scheduled") && logged("code=FLAKY"),
        "{:?}",
        seen.events
    );
    assert!(logged("job completed"), "{:?}", seen.events);
}
