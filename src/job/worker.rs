//! Workers: one loop per registered definition claims ready jobs in batches (as many as it has
//! free slots) and runs each attempt as its own task, then records how it ended.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tracing::Instrument;

use super::core::JobCore;
use super::ctx::JobCtx;
use super::effects::{Claimed, Slot, try_slot};
use super::error::JobError;
use super::error::JobFailure;
use super::signal::{AttemptSignal, StopReason};
use super::storage::{AttemptClaim, JobStorage};
use crate::error::Error;
use crate::ratelimit::window::Window;

/// What a type-erased handler returns: the JSON-encoded output.
pub(crate) type HandlerFuture = Pin<Box<dyn Future<Output = Result<Vec<u8>, JobError>> + Send>>;

/// Decodes the stored input and starts the handler; `Err` when the input does not decode.
pub(crate) type Invoke = Box<dyn Fn(JobCtx, &[u8]) -> Result<HandlerFuture, String> + Send + Sync>;

/// A registered handler.
pub(crate) struct Definition {
    pub(crate) name: Arc<str>,
    pub(crate) concurrency: Arc<Semaphore>,
    /// The start limit, counted by each claim.
    pub(crate) rate: Option<Window>,
    /// Whether the definition's worker is after ready jobs (1): waiting for a free slot to
    /// claim them with, or claiming them.
    pub(crate) wanted: AtomicUsize,
    /// The largest encoded output or step result.
    pub(crate) result_limit: usize,
    pub(crate) invoke: Invoke,
}

/// The most jobs one claim takes.
const CLAIM_MAX: usize = 256;

/// Runs the attempts that submits started directly for this definition.
pub(crate) async fn take_handoffs(
    core: Arc<JobCore>,
    def: Arc<Definition>,
    mut handoffs: mpsc::UnboundedReceiver<(Claimed, Slot)>,
) {
    while let Some((job, slot)) = handoffs.recv().await {
        start(&core, &def, job, slot);
    }
}

fn start(core: &Arc<JobCore>, def: &Arc<Definition>, job: Claimed, slot: Slot) {
    tokio::spawn(attempts(core.clone(), def.clone(), job, slot));
}

/// Runs a started attempt, then each attempt that its end started in the same slot.
async fn attempts(core: Arc<JobCore>, def: Arc<Definition>, mut job: Claimed, mut slot: Slot) {
    loop {
        let signal = signal_of(&core, &def, &job);
        match run_attempt(core.clone(), def.clone(), job, signal, slot, true).await {
            // The engine began to stop while the end was written: the shutdown may have told
            // the running attempts before this one existed, so it is handed back unrun.
            Some((next, _slot)) if *core.stop.borrow() => {
                return hand_back(&core, &def, next).await;
            }
            Some(next) => (job, slot) = next,
            None => return,
        }
    }
}

/// Hands back a started attempt without running it.
async fn hand_back(core: &Arc<JobCore>, def: &Definition, job: Claimed) {
    let signal = signal_of(core, def, &job);
    let claim = AttemptClaim {
        id: job.id,
        attempt: job.attempt,
        epoch: core.epoch(),
    };
    if let Err(e) = core.backend.release(claim).await {
        tracing::warn!(job = %def.name, id = job.id, error = %e, "could not hand back a job at shutdown");
    }
    core.attempt_ended(job.id, &signal);
}

/// Runs a started attempt to its end, in the calling task: what [`Engine::drain`](crate::Engine::drain) does
/// with each job it claims.
pub(crate) async fn run_here(core: &Arc<JobCore>, def: &Arc<Definition>, job: Claimed) {
    let Some(slot) = acquire(core, def, false).await else {
        return;
    };
    let signal = signal_of(core, def, &job);
    run_attempt(core.clone(), def.clone(), job, signal, slot, false).await;
}

/// The stop signal of a claimed job's attempt.
fn signal_of(core: &JobCore, def: &Definition, job: &Claimed) -> Arc<AttemptSignal> {
    // The signal was registered when the claim committed, before the claim was answered.
    let signal = match core.running_signal(job.id) {
        Some(signal) if signal.attempt == job.attempt => signal,
        _ => {
            tracing::error!(job = %def.name, id = job.id, "started attempt had no stop signal");
            core.attempt_registered(job.id, job.attempt)
        }
    };
    signal.set_definition(def.name.clone());
    signal
}

pub(crate) async fn run(core: Arc<JobCore>, def: Arc<Definition>) {
    let mut stop = core.stop.clone();
    if *stop.borrow() {
        return;
    }
    let notify = core.ready_notify(&def.name);
    // Jobs may be waiting from before this handler was registered; look without a commit.
    let mut look = core.backend.has_ready(&def.name).await.unwrap_or(true);
    // When the start limit has room again for the jobs it held back.
    let mut limited_until: Option<u64> = None;
    loop {
        if !look {
            // An idle worker holds no slot, so a submit can hand it a job directly. A wake-up
            // sent while the worker was busy is kept by the Notify and returns at once.
            match limited_until {
                // Jobs becoming ready change nothing before the start limit has room.
                Some(at) => tokio::select! {
                    _ = core.clock.sleep_until(at) => {}
                    _ = stop.changed() => return,
                },
                None => tokio::select! {
                    _ = notify.notified() => {}
                    _ = stop.changed() => return,
                },
            }
        }
        let first = tokio::select! {
            slot = acquire(&core, &def, true) => slot,
            _ = stop.changed() => return,
        };
        // A slot freed by an attempt that the shutdown ended comes after the stop: both can
        // be ready at once, and `select!` picks either.
        if *stop.borrow() {
            return;
        }
        let Some(first) = first else { return };
        let mut slots = vec![first];
        while slots.len() < CLAIM_MAX {
            match try_acquire(&core, &def) {
                Some(slot) => slots.push(slot),
                None => break,
            }
        }
        // Counted while in flight: the slots its attempts free meanwhile start the jobs this
        // claim leaves behind, rather than wait for the worker's next claim.
        let claimed = {
            let _claiming = Counted::new(&def.wanted);
            core.backend
                .claim(&def.name, slots.len(), core.epoch(), def.rate)
                .await
        };
        let claim = match claimed {
            Ok(c) => c,
            Err(e @ (Error::Closed | Error::Poisoned { .. })) => {
                tracing::warn!(job = %def.name, error = %e, "worker stopped");
                return;
            }
            Err(e) => {
                tracing::error!(job = %def.name, error = %e, "claiming jobs failed; retrying in 1 s");
                drop(slots);
                let clock = core.clock.clone();
                let retry_at = clock.now_ms().saturating_add(1_000);
                tokio::select! {
                    _ = clock.sleep_until(retry_at) => {}
                    _ = stop.changed() => return,
                }
                look = true;
                continue;
            }
        };
        // More left behind: look again as soon as a slot frees.
        look = claim.more;
        limited_until = claim.limited_until;
        for (job, slot) in claim.jobs.into_iter().zip(slots) {
            start(&core, &def, job, slot);
        }
    }
}

/// A slot for an attempt of `def`, waiting for one if none is free. The worker claims for the
/// slot (`for_claim`); otherwise the attempt is started already.
async fn acquire(core: &Arc<JobCore>, def: &Definition, for_claim: bool) -> Option<Slot> {
    // Counted while they wait. An ending attempt of the definition starts the next ready job
    // in its slot for a worker that waits for one (rather than free the slot for a claim of
    // the worker's own), and frees its slot for anything else that waits.
    let own = match for_claim {
        true => permit(&def.concurrency, &def.wanted).await?,
        false => permit(&def.concurrency, &core.waiting).await?,
    };
    let global = permit(&core.global, &core.waiting).await?;
    Some((own, global))
}

/// A permit of `semaphore`, counted in `waiters` while it waits for one (until the wait ends
/// or is dropped).
async fn permit(semaphore: &Arc<Semaphore>, waiters: &AtomicUsize) -> Option<OwnedSemaphorePermit> {
    if let Ok(permit) = semaphore.clone().try_acquire_owned() {
        return Some(permit);
    }
    let _waiting = Counted::new(waiters);
    semaphore.clone().acquire_owned().await.ok()
}

/// One more in a count while it lives (until dropped, however the wait it stands for ends).
struct Counted<'a>(&'a AtomicUsize);

impl<'a> Counted<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Counted(count)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Whether an ending attempt of `def` keeps its slot for the definition's next ready job: its
/// worker waits for a slot or claims (so jobs are ready: with none, a free slot lets a submit
/// start its job directly), nothing else waits for one (a worker of another definition under
/// the global cap gets it), the definition has no start limit (its claims count starts), and
/// the engine is not stopping.
fn may_keep_slot(core: &JobCore, def: &Definition) -> bool {
    def.wanted.load(Ordering::SeqCst) > 0
        && core.waiting.load(Ordering::SeqCst) == 0
        && def.rate.is_none()
        && !*core.stop.borrow()
}

fn try_acquire(core: &Arc<JobCore>, def: &Definition) -> Option<Slot> {
    try_slot(&core.global, &def.concurrency)
}

/// Runs the attempt and records how it ended. With `chain`, a completed attempt may keep its
/// slot for the next ready job of its definition, started in the same write as this end; that
/// job and the slot are returned, to be run next.
async fn run_attempt(
    core: Arc<JobCore>,
    def: Arc<Definition>,
    job: Claimed,
    signal: Arc<AttemptSignal>,
    slot: Slot,
    chain: bool,
) -> Option<(Claimed, Slot)> {
    let mut job = job;
    let input = std::mem::take(&mut job.input);
    let (id, attempt) = (job.id, job.attempt);
    let correlation_id = job
        .meta
        .iter()
        .find(|(k, _)| k == "correlation_id")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let span = tracing::info_span!(
        "job_attempt",
        job = %def.name,
        id,
        attempt,
        correlation_id = %correlation_id,
    );
    let ctx = JobCtx::new(
        core.clone(),
        def.name.clone(),
        job,
        signal.clone(),
        def.result_limit,
    );
    let mut slot = Some(slot);
    let result = match (def.invoke)(ctx, &input) {
        Err(why) => Err(JobError::permanent(why).code("INPUT_DECODE")),
        Ok(handler) => {
            let mut task = tokio::spawn(handler.instrument(span.clone()));
            signal.set_abort(task.abort_handle());
            let joined = tokio::select! {
                joined = &mut task => joined,
                () = ended_in_file(&signal) => {
                    // The attempt already ended in the file (timed out or cancelled): its slot
                    // goes to the next attempt now, whatever the handler does. The handler was
                    // told to stop; it gets a grace period to return, then it is dropped at
                    // its next await point. Its writes are refused meanwhile (`LOST`).
                    drop(slot.take());
                    tracing::debug!(job = %def.name, id, attempt, "attempt ended in the file; its slot is free");
                    match tokio::time::timeout(LOST_ATTEMPT_GRACE, &mut task).await {
                        Ok(joined) => joined,
                        Err(_) => {
                            tracing::warn!(job = %def.name, id, attempt, "handler ignored its stop signal; dropped");
                            task.abort();
                            task.await
                        }
                    }
                }
            };
            match joined {
                Ok(result) => result,
                Err(e) if e.is_panic() => {
                    let msg = panic_text(e.into_panic());
                    Err(JobError::retryable(format!("the handler panicked: {msg}")).code("PANIC"))
                }
                Err(_) => Err(JobError::retryable("the handler was stopped").code("ABORTED")),
            }
        }
    };
    // The handler is done. Its slot goes to the next ready job of its definition, started in
    // the write that records this end, unless something else waits for a slot (another
    // definition, under the global cap) or the definition's start limit must count the start:
    // then the slot is free now, for the next attempt while the result commits.
    let keep = chain
        && slot.is_some()
        && result.is_ok()
        && core.backend.claims_on_complete()
        && may_keep_slot(&core, &def);
    // (Dropped here when not kept, before the end is written.)
    let slot = slot.filter(|_| keep);
    let claim = AttemptClaim {
        id,
        attempt,
        epoch: core.epoch(),
    };
    let settle = || async {
        match &result {
            Ok(output) if slot.is_some() => {
                core.backend
                    .complete_then_claim(
                        claim,
                        output.clone(),
                        signal.cancel_requested(),
                        def.name.clone(),
                    )
                    .await
            }
            Ok(output) => core
                .backend
                .complete(claim, output.clone(), signal.cancel_requested())
                .await
                .map(|done| (done, None)),
            // Stopped by the shutdown's deadline: the shutdown hands the job back, together
            // with every other unfinished one, in one write.
            Err(_) if signal.aborted() => Ok((false, None)),
            Err(_) if signal.reason() == Some(StopReason::Shutdown) => {
                core.backend.release(claim).await.map(|done| (done, None))
            }
            Err(e) => {
                let failure = JobFailure {
                    code: e.code_str().to_string(),
                    message: e.message().to_string(),
                    attempt,
                };
                core.backend
                    .fail(claim, failure, e.is_retryable())
                    .await
                    .map(|done| (done, None))
            }
        }
    };
    // A server that restarts or a connection that drops fails a write for a moment: try
    // again (the claim makes a repeat harmless) for about 10 s before leaving the job to its
    // lease.
    let settled = async {
        let mut pause = std::time::Duration::from_millis(50);
        let mut waited = std::time::Duration::ZERO;
        loop {
            match settle().await {
                Err(e) if e.is_transient() && waited < std::time::Duration::from_secs(10) => {
                    tracing::debug!(job = %def.name, id, attempt, error = %e, "recording the end of an attempt failed; retrying");
                    tokio::time::sleep(pause).await;
                    waited += pause;
                    pause = (pause * 2).min(std::time::Duration::from_secs(1));
                }
                settled => return settled,
            }
        }
    };
    let next = match settled.instrument(span).await {
        Ok((true, next)) => next,
        Ok((false, _)) => {
            tracing::debug!(job = %def.name, id, attempt, "late result dropped: the attempt no longer owns the job");
            None
        }
        Err(e) => {
            tracing::warn!(job = %def.name, id, attempt, error = %e, "could not record the end of an attempt");
            None
        }
    };
    core.attempt_ended(id, &signal);
    next.zip(slot)
}

/// How long the handler of an attempt that ended in the file (timed out or cancelled) may run on
/// after its slot was given to the next attempt, before it is dropped at its next await point.
pub(crate) const LOST_ATTEMPT_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Completes once the attempt's signal says it ended in the file: timed out or cancelled. A
/// shutdown does not end it (the attempt keeps its job until the deadline hands it back).
async fn ended_in_file(signal: &AttemptSignal) {
    let mut rx = signal.subscribe();
    loop {
        if matches!(
            &*rx.borrow_and_update(),
            Some(StopReason::TimedOut | StopReason::Cancelled(_))
        ) {
            return;
        }
        if rx.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

fn panic_text(panic: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_string()
    }
}
