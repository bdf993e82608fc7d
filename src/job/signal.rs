//! The stop signal of a running attempt: a flag and a future a handler can watch.

use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;
use tokio::task::AbortHandle;

/// Why a running attempt was asked to stop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
#[serde(tag = "reason", content = "detail", rename_all = "snake_case")]
pub enum StopReason {
    /// The job was cancelled, with the reason given to `cancel`.
    Cancelled(String),
    /// The attempt missed its lease or passed its timeout; it already counts as failed with
    /// code `TIMEOUT`.
    TimedOut,
    /// The engine is shutting down; an attempt that stops now is handed back to the queue
    /// without being charged.
    Shutdown,
}

/// One running attempt's signal, shared by the worker, the handler's context and `cancel`.
#[derive(Debug)]
pub(crate) struct AttemptSignal {
    pub(crate) attempt: u32,
    /// Set by `cancel` before its op is sent: a completion applied after this loses.
    cancel_requested: AtomicBool,
    reason: watch::Sender<Option<StopReason>>,
    abort: Mutex<Option<AbortHandle>>,
    /// Set when the handler was stopped by [`AttemptSignal::abort`].
    aborted: AtomicBool,
    /// The job's definition, once its worker started the handler.
    definition: std::sync::OnceLock<std::sync::Arc<str>>,
}

impl AttemptSignal {
    pub(crate) fn new(attempt: u32) -> Self {
        AttemptSignal {
            attempt,
            cancel_requested: AtomicBool::new(false),
            reason: watch::channel(None).0,
            abort: Mutex::new(None),
            aborted: AtomicBool::new(false),
            definition: std::sync::OnceLock::new(),
        }
    }

    /// Records the definition whose handler runs the attempt.
    pub(crate) fn set_definition(&self, name: std::sync::Arc<str>) {
        let _ = self.definition.set(name);
    }

    /// Whether the attempt is known to be a job of the definition `name`.
    pub(crate) fn is_of(&self, name: &str) -> bool {
        self.definition.get().is_some_and(|d| **d == *name)
    }

    /// Fires the signal; the first reason sticks.
    pub(crate) fn fire(&self, why: StopReason) {
        self.reason.send_if_modified(|r| {
            if r.is_none() {
                *r = Some(why);
                true
            } else {
                false
            }
        });
    }

    pub(crate) fn set_abort(&self, handle: AbortHandle) {
        if let Ok(mut abort) = self.abort.lock() {
            *abort = Some(handle);
        }
    }

    /// Stops the handler's task at its next await point.
    pub(crate) fn abort(&self) {
        self.aborted.store(true, Ordering::SeqCst);
        if let Some(handle) = self.abort.lock().ok().and_then(|mut a| a.take()) {
            handle.abort();
        }
    }

    /// Whether [`AttemptSignal::abort`] stopped the handler (a shutdown past its deadline).
    pub(crate) fn aborted(&self) -> bool {
        self.aborted.load(Ordering::SeqCst)
    }

    pub(crate) fn request_cancel(&self) {
        self.cancel_requested.store(true, Ordering::SeqCst);
    }

    pub(crate) fn cancel_requested(&self) -> bool {
        self.cancel_requested.load(Ordering::SeqCst)
    }

    pub(crate) fn reason(&self) -> Option<StopReason> {
        self.reason.borrow().clone()
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<Option<StopReason>> {
        self.reason.subscribe()
    }
}
