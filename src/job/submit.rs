//! [`Submit`](crate::Submit): a job submit being built, stored when awaited.

use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::backoff::Backoff;
use super::core::JobCore;
use super::info::Submitted;
use super::ops::submit::NewJob;
use super::record::DependencyV1;
use super::spec::{self, JobSpec};
use super::storage::JobStorage;
use crate::clock::millis;
use crate::error::{Error, Result, check_key};

/// A submit being built; await it to store the job.
#[must_use = "a submit does nothing until it is awaited"]
pub struct Submit<'a, I, O> {
    core: &'a Arc<JobCore>,
    spec: &'a JobSpec,
    input: I,
    key: Option<String>,
    delay: Option<Duration>,
    at: Option<SystemTime>,
    priority: Option<i32>,
    max_attempts: Option<u32>,
    backoff: Option<Backoff>,
    lease: Option<Duration>,
    timeout: Option<Duration>,
    meta: Vec<(String, String)>,
    after: Vec<DependencyV1>,
    batch: Option<u64>,
    _output: PhantomData<fn() -> O>,
}

impl<'a, I, O> Submit<'a, I, O> {
    pub(crate) fn new(core: &'a Arc<JobCore>, spec: &'a JobSpec, input: I) -> Self {
        Submit {
            core,
            spec,
            input,
            key: None,
            delay: None,
            at: None,
            priority: None,
            max_attempts: None,
            backoff: None,
            lease: None,
            timeout: None,
            meta: Vec::new(),
            after: Vec::new(),
            batch: None,
            _output: PhantomData,
        }
    }

    /// The engine's job state this submit stores into.
    pub(crate) fn core(&self) -> &Arc<JobCore> {
        self.core
    }

    /// The name of the definition this submit is for.
    pub(crate) fn name(&self) -> &str {
        &self.spec.name
    }

    /// An idempotency key: while a job with this key (of this definition) is retained, even
    /// finished, submitting again returns its id with `deduplicated: true`.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }
    /// Run no sooner than `delay` from now. [`Submit::at`](crate::Submit::at) wins if both are given.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }
    /// Run no sooner than `at`.
    pub fn at(mut self, at: SystemTime) -> Self {
        self.at = Some(at);
        self
    }
    /// Overrides the definition's priority.
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = Some(priority);
        self
    }
    /// Overrides the definition's attempts.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(n);
        self
    }
    /// Overrides the definition's backoff.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = Some(backoff);
        self
    }
    /// Overrides the definition's lease.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = Some(lease);
        self
    }
    /// Overrides the definition's attempt timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
    /// Runs the job only after every job in `ids` has completed: until then it is
    /// [`waiting`](crate::JobState::Waiting). If one of them fails, times out or is cancelled,
    /// this job is cancelled, with a reason naming it (and so are the jobs waiting for this
    /// one). Each id must be of an existing job, so dependencies cannot form a cycle. The
    /// handler reads their outputs with [`JobCtx::dependency_output`](crate::JobCtx::dependency_output).
    ///
    /// ```no_run
    /// # use jobfile::{Engine, JobSpec};
    /// # async fn demo(engine: Engine) -> jobfile::Result<()> {
    /// let resize = engine.job::<String, String>(JobSpec::new("resize"))?;
    /// let upload = engine.job::<(), String>(JobSpec::new("upload"))?;
    /// let small = resize.submit("a.png".to_string()).await?;
    /// let large = resize.submit("b.png".to_string()).await?;
    /// upload.submit(()).after(&[small.id, large.id]).await?;
    /// # Ok(()) }
    /// ```
    pub fn after(mut self, ids: &[u64]) -> Self {
        self.depend(ids, false);
        self
    }
    /// Runs the job after every job in `ids` has ended, however it ended (completed, failed,
    /// timed out or cancelled); otherwise as [`after`](Submit::after).
    pub fn after_allowing_failure(mut self, ids: &[u64]) -> Self {
        self.depend(ids, true);
        self
    }
    /// Makes the job a member of `batch` (see [`Engine::batch`](crate::Engine::batch)). The
    /// batch must not be sealed yet.
    pub fn batch(mut self, batch: &crate::Batch) -> Self {
        self.batch = Some(batch.id());
        self
    }
    fn depend(&mut self, ids: &[u64], allow_failure: bool) {
        for &id in ids {
            match self.after.iter_mut().find(|d| d.id == id) {
                // Named twice: it may fail only if both said so.
                Some(d) => d.allow_failure &= allow_failure,
                None => self.after.push(DependencyV1 { id, allow_failure }),
            }
        }
    }
    /// Adds a meta entry (a correlation id, say: the key `correlation_id` is put on the
    /// attempt's tracing span).
    pub fn meta(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.meta.push((key.into(), value.into()));
        self
    }
}

impl<'a, I, O> IntoFuture for Submit<'a, I, O>
where
    I: Serialize + DeserializeOwned + Send + 'static,
    O: Serialize + DeserializeOwned + Send + 'static,
{
    type Output = Result<Submitted>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<Submitted>> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let new = self.prepare()?;
            self.core.backend.submit(new).await
        })
    }
}

impl<I: Serialize, O> Submit<'_, I, O> {
    pub(crate) fn prepare(&self) -> Result<NewJob> {
        let spec = self.spec;
        let input = serde_json::to_vec(&self.input)
            .map_err(|e| Error::invalid("input", format!("it cannot be encoded: {e}")))?;
        let meta_size: usize = self.meta.iter().map(|(k, v)| k.len() + v.len()).sum();
        let size = input.len() + meta_size;
        if size > spec.payload_limit {
            return Err(Error::PayloadTooLarge {
                size,
                limit: spec.payload_limit,
            });
        }
        check_key("key", self.key.as_deref())?;
        let max_attempts = self.max_attempts.unwrap_or(spec.max_attempts);
        spec::validate_attempts(max_attempts)?;
        let lease = self.lease.unwrap_or(spec.lease);
        let timeout = self.timeout.or(spec.timeout);
        spec::validate_lease(lease, timeout)?;
        let backoff = self.backoff.unwrap_or(spec.backoff);
        backoff.validate()?;
        let clock = &self.core.clock;
        let run_at = match (self.at, self.delay) {
            (Some(at), _) => Some(
                at.duration_since(UNIX_EPOCH)
                    .map(millis)
                    .unwrap_or_default(),
            ),
            (None, Some(delay)) => Some(clock.now_ms().saturating_add(millis(delay))),
            (None, None) => None,
        };
        Ok(NewJob {
            name: spec.name.clone(),
            input,
            priority: self.priority.unwrap_or(spec.priority),
            key: self.key.clone(),
            meta: self.meta.clone(),
            max_attempts,
            backoff: backoff.into(),
            lease_ms: millis(lease),
            timeout_ms: timeout.map(millis),
            retention_ms: millis(spec.retention),
            crash_budget: spec.crash_budget,
            run_at,
            after: self.after.clone(),
            batch: self.batch,
        })
    }
}
