//! What a handler gets: its job's identity, memoized steps, progress, heartbeats and the stop
//! signal.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::core::JobCore;
use super::effects::Claimed;
use super::error::JobError;
use super::signal::{AttemptSignal, StopReason};
use super::storage::{AttemptClaim, JobStorage, ProgressUpdate};
use crate::error::{Error, Held};

/// The longest step id, in bytes.
const MAX_STEP_ID: usize = 256;

/// The context of one attempt. Cheap to clone; every clone speaks for the same attempt.
///
/// Writes made through it (steps, progress, heartbeats) are refused with code `LOST` once the
/// attempt no longer owns its job: after a cancel, a timeout, or a shutdown hand-back.
#[derive(Clone)]
pub struct JobCtx {
    inner: Arc<CtxInner>,
}

struct CtxInner {
    core: Arc<JobCore>,
    id: u64,
    name: Arc<str>,
    attempt: u32,
    key: Option<String>,
    meta: Vec<(String, String)>,
    signal: Arc<AttemptSignal>,
    steps_seen: Mutex<HashSet<String>>,
    result_limit: usize,
}

impl std::fmt::Debug for JobCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobCtx")
            .field("id", &self.inner.id)
            .field("name", &self.inner.name)
            .field("attempt", &self.inner.attempt)
            .finish_non_exhaustive()
    }
}

/// The error of a write refused because `claim` no longer owns its job: code `LOST`.
fn lost(claim: AttemptClaim) -> JobError {
    JobError::from(Error::NotHolder {
        held: Held::Attempt {
            job: claim.id,
            attempt: claim.attempt,
        },
    })
}

impl JobCtx {
    /// The context of the started attempt `job` (its input already taken out).
    pub(crate) fn new(
        core: Arc<JobCore>,
        name: Arc<str>,
        job: Claimed,
        signal: Arc<AttemptSignal>,
        result_limit: usize,
    ) -> Self {
        JobCtx {
            inner: Arc::new(CtxInner {
                core,
                id: job.id,
                name,
                attempt: job.attempt,
                key: job.key,
                meta: job.meta,
                signal,
                steps_seen: Mutex::new(HashSet::new()),
                result_limit,
            }),
        }
    }

    /// The job id.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// The definition name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// This attempt's number, from 1.
    pub fn attempt(&self) -> u32 {
        self.inner.attempt
    }

    /// The idempotency key the job was submitted with, if any.
    pub fn key(&self) -> Option<&str> {
        self.inner.key.as_deref()
    }

    /// A `meta` value given at submit.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.inner
            .meta
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The output of job `id`, one this job was submitted to run after
    /// ([`Submit::after`](crate::Submit::after)), decoded as `T`; `None` when that job did not
    /// complete (a dependency declared with
    /// [`after_allowing_failure`](crate::Submit::after_allowing_failure) that failed, timed
    /// out or was cancelled).
    ///
    /// Errors that a retry cannot mend, so the job fails at once: code `NOT_A_DEPENDENCY` when
    /// `id` is not one of this job's dependencies, `DEPENDENCY_GONE` when that job was already
    /// removed (its retention ended), `DEPENDENCY_DECODE` when its output does not decode as
    /// `T`. A storage failure is `ENGINE`, as everywhere.
    pub async fn dependency_output<T: DeserializeOwned>(
        &self,
        id: u64,
    ) -> Result<Option<T>, JobError> {
        let backend = &self.inner.core.backend;
        let me = backend
            .get(self.inner.id, false)
            .await?
            .ok_or(Error::UnknownJob { id: self.inner.id })?;
        if !me.after.iter().any(|d| d.id == id) {
            return Err(JobError::permanent(format!(
                "job {id} is not one that job {} runs after",
                self.inner.id
            ))
            .code("NOT_A_DEPENDENCY"));
        }
        let Some(dep) = backend.get(id, false).await? else {
            return Err(JobError::permanent(format!(
                "job {id}, which this job runs after, was removed when its retention ended"
            ))
            .code("DEPENDENCY_GONE"));
        };
        match super::info::outcome_of::<T>(dep) {
            Ok(Some(super::info::Outcome::Completed(out))) => Ok(Some(out)),
            Ok(_) => Ok(None),
            Err(e) => Err(JobError::permanent(e.to_string()).code("DEPENDENCY_DECODE")),
        }
    }

    /// True once the attempt was asked to stop (cancel, timeout or shutdown).
    pub fn is_cancelled(&self) -> bool {
        self.inner.signal.reason().is_some()
    }

    /// Why the attempt was asked to stop, if it was.
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.inner.signal.reason()
    }

    /// Completes when the attempt is asked to stop, with the reason. Use it in a `select!` to
    /// end long work early; what the handler returns afterwards is kept only if the job still
    /// belongs to this attempt (never after a cancel).
    pub async fn cancelled(&self) -> StopReason {
        let mut rx = self.inner.signal.subscribe();
        loop {
            if let Some(why) = rx.borrow_and_update().clone() {
                return why;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Extends the lease (and the attempt timeout, if set) from now, and emits `heartbeat`.
    /// Durable when it returns.
    pub async fn heartbeat(&self) -> Result<(), JobError> {
        let claim = self.claim();
        let owned = self.inner.core.backend.heartbeat(claim).await?;
        owned.then_some(()).ok_or_else(|| lost(claim))
    }

    /// Stores the latest progress (`percent` from 0 to 100, and a stage name) on the job and
    /// emits a `progress` event. Durable when it returns. Updates within the same second of
    /// the clock are kept as one event (the latest), so reporting often writes little.
    pub async fn progress(&self, percent: u8, stage: &str) -> Result<(), JobError> {
        if percent > 100 {
            return Err(JobError::permanent(format!(
                "progress must be between 0 and 100 percent, got {percent}"
            ))
            .code("INVALID_ARGUMENT"));
        }
        self.report(ProgressUpdate {
            percent,
            stage: stage.to_string(),
            items: None,
        })
        .await
    }

    /// Progress counted in items: `done` of `total` (1,234 of 50,000), with a stage name. The
    /// percent is derived (rounded down); operators see the count, and the job view an
    /// estimate of when it ends. Otherwise as [`progress`](Self::progress).
    ///
    /// Fails with code `INVALID_ARGUMENT` if `total` is 0 or `done` exceeds it.
    pub async fn progress_items(&self, done: u64, total: u64, stage: &str) -> Result<(), JobError> {
        if total == 0 || done > total {
            return Err(JobError::permanent(format!(
                "progress items must be done <= total with total > 0, got {done} of {total}"
            ))
            .code("INVALID_ARGUMENT"));
        }
        self.report(ProgressUpdate {
            percent: (u128::from(done) * 100 / u128::from(total)) as u8,
            stage: stage.to_string(),
            items: Some((done, total)),
        })
        .await
    }

    async fn report(&self, update: ProgressUpdate) -> Result<(), JobError> {
        let claim = self.claim();
        let owned = self.inner.core.backend.progress(claim, update).await?;
        owned.then_some(()).ok_or_else(|| lost(claim))
    }

    /// Runs `work` once for this job and remembers its result in the file.
    ///
    /// The first time, `work` runs and its `Ok` value is committed (durably) before this
    /// returns. When the handler runs again (a retry, or after a crash), a step that committed
    /// returns its stored value without running `work`. An `Err` is not remembered: the step
    /// runs again next time. Each step id may be used once per attempt; a second use fails
    /// with code `DUPLICATE_STEP`. A stored value that no longer decodes into `T` fails with
    /// `STEP_DECODE`; a result over the definition's
    /// [`result_limit`](crate::JobSpec::result_limit) is not stored and fails with
    /// `STEP_TOO_LARGE` (permanent). An attempt that no longer owns its job (timed out,
    /// cancelled) gets `LOST` without `work` running.
    pub async fn step<T, F, Fut>(&self, step_id: &str, work: F) -> Result<T, JobError>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, JobError>>,
    {
        if step_id.is_empty() || step_id.len() > MAX_STEP_ID {
            return Err(JobError::permanent(format!(
                "step id must be 1 to {MAX_STEP_ID} bytes, got {}",
                step_id.len()
            ))
            .code("INVALID_ARGUMENT"));
        }
        let first_use = self
            .inner
            .steps_seen
            .lock()
            .map(|mut seen| seen.insert(step_id.to_string()))
            .unwrap_or(false);
        if !first_use {
            return Err(JobError::permanent(format!(
                "step {step_id:?} is used twice in one run of job {}",
                self.inner.id
            ))
            .code("DUPLICATE_STEP"));
        }
        let claim = self.claim();
        // An attempt that lost its job (timed out, cancelled, handed back) must not run the
        // body: the attempt that owns the job now may be running it, or will.
        if self.lost_signal() {
            return Err(lost(claim));
        }
        let (owned, stored) = self.inner.core.backend.step_result(claim, step_id).await?;
        if !owned {
            return Err(lost(claim));
        }
        if let Some(bytes) = stored {
            return serde_json::from_slice(&bytes).map_err(|e| {
                JobError::permanent(format!(
                    "stored result of step {step_id:?} does not decode into {}: {e}",
                    std::any::type_name::<T>()
                ))
                .code("STEP_DECODE")
            });
        }
        let value = work().await?;
        let bytes = serde_json::to_vec(&value).map_err(|e| {
            JobError::permanent(format!("result of step {step_id:?} cannot be stored: {e}"))
                .code("STEP_ENCODE")
        })?;
        super::error::check_result_size(
            bytes.len(),
            self.inner.result_limit,
            &format!("result of step {step_id:?}"),
            "STEP_TOO_LARGE",
        )?;
        let owned = self
            .inner
            .core
            .backend
            .record_step(claim, step_id.to_string(), bytes)
            .await?;
        if !owned {
            return Err(lost(claim));
        }
        Ok(value)
    }

    /// Whether the stop signal says this attempt no longer owns its job. A shutdown does not
    /// count: the attempt owns its job until the deadline hands it back.
    fn lost_signal(&self) -> bool {
        matches!(
            self.inner.signal.reason(),
            Some(StopReason::TimedOut | StopReason::Cancelled(_))
        )
    }

    fn claim(&self) -> AttemptClaim {
        AttemptClaim {
            id: self.inner.id,
            attempt: self.inner.attempt,
            epoch: self.inner.core.epoch(),
        }
    }
}
