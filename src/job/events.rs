//! Each job's event stream: read from an offset, or followed live as a [`Stream`](crate::Stream).

use std::sync::Arc;

use super::core::JobCore;
use super::info::JobEvent;
use super::storage::JobStorage;
use crate::error::Result;
use crate::feed::{self, Feed};

/// A job's event stream. Get one from [`Jobs::events`](crate::Jobs::events).
#[derive(Debug, Clone)]
pub struct JobEvents {
    core: Arc<JobCore>,
    id: u64,
}

impl JobEvents {
    pub(crate) fn new(core: Arc<JobCore>, id: u64) -> Self {
        JobEvents { core, id }
    }

    /// Up to `limit` events from position `from` on (replay).
    ///
    /// Errors: [`Error::UnknownJob`](crate::Error::UnknownJob) if the job does not exist (or was pruned).
    pub async fn read(&self, from: u32, limit: usize) -> Result<Vec<JobEvent>> {
        self.core.backend.events(self.id, from, limit).await
    }

    /// Every event from position `from` on, then live ones as they are committed, ending
    /// after the job's terminal event. Woken by the commits, never by polling. The first item
    /// is an [`Error::UnknownJob`](crate::Error::UnknownJob) if the job does not exist.
    pub fn follow(&self, from: u32) -> JobEventStream {
        let core = self.core.clone();
        let id = self.id;
        let source = feed::Source {
            read: move |from: u64, limit| {
                let core = core.clone();
                let from = u32::try_from(from).unwrap_or(u32::MAX);
                async move { core.backend.events(id, from, limit).await }
            },
            after: |e: &JobEvent| u64::from(e.seq) + 1,
            last: |e: &JobEvent| e.kind.is_terminal(),
        };
        let changes = self.core.watch(id);
        feed::spawn(Ok(u64::from(from)), source, changes, self.core.stop.clone())
    }
}

/// A live feed of a job's events; see [`JobEvents::follow`](crate::JobEvents::follow).
pub type JobEventStream = Feed<JobEvent>;
