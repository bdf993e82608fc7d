//! [`JobHandle`](crate::JobHandle): the typed handle to one job definition.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

use super::core::JobCore;
use super::ctx::JobCtx;
use super::effects::DispatchTarget;
use super::error::{self, JobError};
use super::info::{CancelOutcome, JobInfo, Outcome, Submitted, outcome_of};
use super::spec::JobSpec;
use super::storage::JobStorage;
use super::submit::Submit;
use super::worker::{self, Definition, HandlerFuture};
use crate::clock::millis;
use crate::error::{Error, Result};

/// A typed handle to one job definition: submit, join, cancel and inspect its jobs.
/// Cheap to clone. Get one from [`Engine::register`](crate::Engine::register) (which also runs
/// the handler) or [`Engine::job`](crate::Engine::job) (submit only).
pub struct JobHandle<I, O> {
    core: Arc<JobCore>,
    spec: Arc<JobSpec>,
    _types: PhantomData<fn(I) -> O>,
}

impl<I, O> Clone for JobHandle<I, O> {
    fn clone(&self) -> Self {
        JobHandle {
            core: self.core.clone(),
            spec: self.spec.clone(),
            _types: PhantomData,
        }
    }
}

impl<I, O> std::fmt::Debug for JobHandle<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobHandle")
            .field("name", &self.spec.name)
            .finish_non_exhaustive()
    }
}

impl<I, O> JobHandle<I, O>
where
    I: Serialize + DeserializeOwned + Send + 'static,
    O: Serialize + DeserializeOwned + Send + 'static,
{
    pub(crate) fn new(core: Arc<JobCore>, spec: JobSpec) -> Result<Self> {
        spec.validate()?;
        Ok(JobHandle {
            core,
            spec: Arc::new(spec),
            _types: PhantomData,
        })
    }

    /// Starts the workers of this definition with `handler`.
    pub(crate) fn start<H, Fut>(&self, handler: H) -> Result<()>
    where
        H: Fn(JobCtx, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, JobError>> + Send + 'static,
    {
        if !self.core.register_name(&self.spec.name) {
            return Err(Error::invalid(
                "job name",
                format!("a handler for {:?} is registered already", self.spec.name),
            ));
        }
        let handler = Arc::new(handler);
        let type_name = std::any::type_name::<I>();
        let limit = self.spec.result_limit;
        let invoke = move |ctx: JobCtx,
                           input: &[u8]|
              -> std::result::Result<HandlerFuture, String> {
            let input: I = serde_json::from_slice(input)
                .map_err(|e| format!("the stored input does not decode into {type_name}: {e}"))?;
            let run = handler(ctx, input);
            Ok(Box::pin(async move {
                let output = run.await?;
                let bytes = serde_json::to_vec(&output).map_err(|e| {
                    JobError::permanent(format!("the output cannot be stored: {e}"))
                        .code("OUTPUT_ENCODE")
                })?;
                error::check_result_size(bytes.len(), limit, "the output", "OUTPUT_TOO_LARGE")?;
                Ok(bytes)
            }))
        };
        let concurrency = Arc::new(Semaphore::new(self.spec.concurrency));
        let def = Arc::new(Definition {
            name: self.spec.name.as_str().into(),
            concurrency: concurrency.clone(),
            rate: self.spec.start_window(),
            wanted: AtomicUsize::new(0),
            result_limit: limit,
            invoke: Box::new(invoke),
        });
        self.core.add_definition(def.clone());
        if self.core.manual_workers() {
            // No worker and no hand-off: the jobs run when the application drains them.
            return Ok(());
        }
        let (handoff, handoffs) = tokio::sync::mpsc::unbounded_channel();
        self.core.add_target(
            &self.spec.name,
            DispatchTarget {
                concurrency,
                rate_limited: self.spec.rate_limit.is_some(),
                handoff,
            },
        );
        tokio::spawn(worker::take_handoffs(
            self.core.clone(),
            def.clone(),
            handoffs,
        ));
        tokio::spawn(worker::run(self.core.clone(), def));
        Ok(())
    }

    /// The definition name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Submits a job with `input`; options are set on the returned builder, which is awaited.
    /// Durable (fsync'd by default) when it returns. No handler needs to be registered in this
    /// process: the job waits until one is.
    ///
    /// Errors: [`Error::PayloadTooLarge`](crate::Error::PayloadTooLarge) for an input (plus meta) over the definition's
    /// limit; [`Error::InvalidArgument`](crate::Error::InvalidArgument) for a bad key or override. Nothing is written then.
    pub fn submit(&self, input: I) -> Submit<'_, I, O> {
        Submit::new(&self.core, &self.spec, input)
    }

    /// Submits many jobs in one transaction: all of them or, on any error, none. Each item is a
    /// [`submit`](JobHandle::submit) builder of this handle, with its own key, delay and
    /// options. Returns one [`Submitted`](crate::Submitted) per item, in order; a key used twice in the batch
    /// gives the first job's id twice, the second marked `deduplicated`.
    ///
    /// One commit instead of one per job: the way to enqueue a large backlog fast.
    ///
    /// Errors: those of [`submit`](JobHandle::submit), for the first bad item (nothing is
    /// written then).
    pub async fn submit_many<'a>(
        &'a self,
        items: impl IntoIterator<Item = Submit<'a, I, O>>,
    ) -> Result<Vec<Submitted>> {
        let jobs = items
            .into_iter()
            .map(|s| {
                if s.name() != self.spec.name {
                    return Err(Error::invalid(
                        "job",
                        format!(
                            "a submit of {:?} in a batch of {:?}",
                            s.name(),
                            self.spec.name
                        ),
                    ));
                }
                s.prepare()
            })
            .collect::<Result<Vec<_>>>()?;
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        self.core.backend.submit_many(jobs).await
    }

    /// Waits until the job reaches a terminal state and returns how it ended. With a timeout
    /// (measured on the engine's clock), a job still unfinished then gives
    /// [`Outcome::JoinTimedOut`](crate::Outcome::JoinTimedOut) with the job's state then; the job itself goes on. Without one it
    /// waits as long as it takes.
    ///
    /// Errors: [`Error::UnknownJob`](crate::Error::UnknownJob) for an id that does not exist (or was pruned);
    /// [`Error::WrongDefinition`](crate::Error::WrongDefinition) for a job of another definition;
    /// [`Error::TypeMismatch`](crate::Error::TypeMismatch) if the stored output does not decode into `O`.
    pub async fn join(&self, id: u64, timeout: Option<Duration>) -> Result<Outcome<O>> {
        let clock = self.core.clock.clone();
        let deadline = timeout.map(|t| clock.now_ms().saturating_add(millis(t)));
        let mut stop = self.core.stop.clone();
        let poisoned = self.core.backend.until_failed();
        tokio::pin!(poisoned);
        loop {
            let mut changed = self.core.watch(id);
            let job = self.existing(id).await?;
            let state = job.state;
            if let Some(outcome) = outcome_of::<O>(job)? {
                return Ok(outcome);
            }
            let expired = async {
                match deadline {
                    Some(at) => clock.sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = changed.changed() => if r.is_err() { return Err(Error::Closed) },
                _ = expired => return Ok(Outcome::JoinTimedOut(state)),
                _ = stop.changed() => return Err(Error::Closed),
                e = &mut poisoned => return Err(e),
            }
        }
    }

    /// Cancels the job: a queued job is cancelled at once; a running one is cancelled at once
    /// too and its handler gets the stop signal ([`JobCtx::cancelled`](crate::JobCtx::cancelled)), and whatever it
    /// returns afterwards is dropped: cancel wins. A finished job is left as it is, and the
    /// outcome says so.
    ///
    /// Errors: [`Error::UnknownJob`](crate::Error::UnknownJob);
    /// [`Error::WrongDefinition`](crate::Error::WrongDefinition) for a job of another definition
    /// (nothing is changed).
    pub async fn cancel(&self, id: u64, reason: &str) -> Result<CancelOutcome> {
        // An attempt of this definition running here is marked before anything is awaited,
        // so its completion loses whenever this call began before the handler returned.
        let running_here = self
            .core
            .running_signal(id)
            .is_some_and(|s| s.is_of(&self.spec.name));
        if !running_here {
            self.existing(id).await?;
        }
        self.core.cancel(id, reason).await
    }

    /// The job as stored; `None` if it was never submitted or was pruned after its retention.
    ///
    /// Errors: [`Error::WrongDefinition`](crate::Error::WrongDefinition) for a job of another
    /// definition.
    pub async fn get(&self, id: u64) -> Result<Option<JobInfo>> {
        match self.core.backend.get(id, true).await? {
            Some(job) => self.own(job).map(Some),
            None => Ok(None),
        }
    }

    /// Every job of this definition the engine holds (retained finished ones too), oldest
    /// first, with its input decoded: what a test asserts was submitted. Read in pages of
    /// 1,000.
    ///
    /// Errors: [`Error::TypeMismatch`](crate::Error::TypeMismatch) for a stored input that no
    /// longer decodes into `I`.
    pub async fn submitted(&self) -> Result<Vec<SubmittedJob<I>>>
    where
        I: DeserializeOwned,
    {
        let jobs = super::view::all_of(&self.core, &self.spec.name).await?;
        jobs.into_iter()
            .map(|job| {
                let input =
                    serde_json::from_slice(&job.input_json).map_err(|e| Error::TypeMismatch {
                        what: format!("the input of job {}", job.id),
                        detail: e.to_string(),
                    })?;
                Ok(SubmittedJob { input, job })
            })
            .collect()
    }

    /// The job without its input, if it exists and is of this handle's definition.
    async fn existing(&self, id: u64) -> Result<JobInfo> {
        let job = self.core.backend.get(id, false).await?;
        self.own(job.ok_or(Error::UnknownJob { id })?)
    }

    /// `job` if it is of this handle's definition; [`Error::WrongDefinition`] otherwise.
    fn own(&self, job: JobInfo) -> Result<JobInfo> {
        if job.name == self.spec.name {
            Ok(job)
        } else {
            Err(Error::WrongDefinition {
                id: job.id,
                expected: self.spec.name.clone(),
                found: job.name,
            })
        }
    }
}

/// A job as [`JobHandle::submitted`] lists it: its decoded input beside its record.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SubmittedJob<I> {
    /// The input it was submitted with.
    pub input: I,
    /// The job as stored (id, state, key, meta, when it may run, ...).
    pub job: JobInfo,
}
