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

/// Every job in one state, oldest first: `engine.jobs().all_in(JobState::Failed).await`.
pub trait AllIn {
    /// Every job in `state`, oldest first.
    fn all_in(
        &self,
        state: jobfile::JobState,
    ) -> impl std::future::Future<Output = Vec<jobfile::JobInfo>> + Send + '_;
}

impl AllIn for jobfile::Jobs {
    async fn all_in(&self, state: jobfile::JobState) -> Vec<jobfile::JobInfo> {
        self.list()
            .state(state)
            .oldest_first()
            .limit(usize::MAX)
            .await
            .expect("list")
            .jobs
    }
}

/// Registers `mail` (one attempt each), which fails with code `FULL` ("{to}: mailbox full")
/// on its first run and answers "sent to {to}" ever after. Submits `bounced`, which fails,
/// then `sent`, which completes; returns the handle and the two job ids.
pub async fn mail_bounced_then_sent(
    engine: &Engine,
    bounced: &str,
    sent: &str,
) -> (jobfile::JobHandle<String, String>, u64, u64) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let failing = Arc::new(AtomicBool::new(true));
    let f = failing.clone();
    let mail = engine
        .register(
            jobfile::JobSpec::new("mail").max_attempts(1),
            move |_: jobfile::JobCtx, to: String| {
                let fail = f.load(Ordering::SeqCst);
                async move {
                    if fail {
                        Err(jobfile::JobError::permanent(format!("{to}: mailbox full"))
                            .code("FULL"))
                    } else {
                        Ok(format!("sent to {to}"))
                    }
                }
            },
        )
        .unwrap();
    let first = mail.submit(bounced.to_string()).await.unwrap().id;
    assert!(matches!(
        mail.join(first, None).await.unwrap(),
        jobfile::Outcome::Failed(_)
    ));
    failing.store(false, Ordering::SeqCst);
    let second = mail.submit(sent.to_string()).await.unwrap().id;
    assert!(matches!(
        mail.join(second, None).await.unwrap(),
        jobfile::Outcome::Completed(_)
    ));
    (mail, first, second)
}
