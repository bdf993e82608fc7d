//! Running due jobs in the caller's task, for tests: one round claims the next due job of
//! every registered definition and runs it to its end; [`Engine::drain`](crate::Engine::drain)
//! repeats rounds until one finds nothing.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::core::JobCore;
use super::error::JobFailure;
use super::info::JobState;
use super::storage::JobStorage;
use super::worker::run_here;
use crate::error::Result;

/// One attempt that [`Engine::drain`](crate::Engine::drain) ran, and where it left its job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Drained {
    /// The job id.
    pub id: u64,
    /// The definition name.
    pub name: String,
    /// The attempt number (1 for the first).
    pub attempt: u32,
    /// The job's state right after the attempt: `Completed`, `Failed`, `TimedOut`,
    /// `Cancelled`, or `Queued` when a retry is scheduled.
    pub state: JobState,
    /// The attempt's failure, if it failed.
    pub error: Option<JobFailure>,
}

/// Claims and runs the next due job of each registered definition (none of a paused one, and
/// no more than a start limit allows), one after the other; what ran.
pub(crate) async fn round(core: &Arc<JobCore>) -> Result<Vec<Drained>> {
    let mut ran = Vec::new();
    for def in core.definitions() {
        let claim = core
            .backend
            .claim(&def.name, 1, core.epoch(), def.rate)
            .await?;
        for job in claim.jobs {
            let (id, attempt) = (job.id, job.attempt);
            run_here(core, &def, job).await;
            let Some(info) = core.backend.get(id, false).await? else {
                continue;
            };
            let failed = info
                .last_error
                .filter(|e| e.attempt == attempt && info.state != JobState::Completed);
            ran.push(Drained {
                id,
                name: def.name.to_string(),
                attempt,
                state: info.state,
                error: failed,
            });
        }
    }
    Ok(ran)
}
