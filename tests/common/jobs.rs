//! Helpers shared by the job tests.

use jobfile::{Engine, JobEvent, JobEventKind, JobFailure};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// A job input with two numbers.
pub struct Add {
    pub a: u32,
    pub b: u32,
}

/// The names of the events, in order.
pub fn names(events: &[JobEvent]) -> Vec<&'static str> {
    events.iter().map(|e| e.kind.name()).collect()
}

/// Follows the job's events until one matches, returning it.
pub async fn wait_for(engine: &Engine, id: u64, want: impl Fn(&JobEventKind) -> bool) -> JobEvent {
    let mut stream = engine.jobs().events(id).follow(0);
    while let Some(event) = stream.next().await {
        let event = event.expect("event");
        if want(&event.kind) {
            return event;
        }
    }
    panic!("job {id} ended without the awaited event");
}

/// Matches a failure by its code and attempt.
pub fn failure(code: &str, attempt: u32) -> impl Fn(&JobFailure) -> bool + '_ {
    move |f: &JobFailure| f.code == code && f.attempt == attempt
}

/// Runs the futures concurrently (each on its own task) and collects their outputs in order.
pub async fn futures_join_all<T: Send + 'static>(
    futures: impl Iterator<Item = impl std::future::Future<Output = T> + Send + 'static>,
) -> Vec<T> {
    let tasks: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}
