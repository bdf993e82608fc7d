//! The mutex's storage seam: its named operations and reads. A lease is proved by its
//! (owner, fencing token) pair, so the same check works in one process or across many.

use super::lease::MutexLease;
use crate::error::Result;

/// What an acquisition found.
#[derive(Debug)]
pub(crate) enum Acquired {
    /// The new lease.
    Lease(MutexLease),
    /// Someone else holds the mutex until this instant (ms since the epoch).
    HeldUntil(u64),
}

/// The named operations and reads of the mutex.
pub(crate) trait MutexStorage {
    /// Takes `name` for `owner` for `ttl_ms` if no live lease holds it.
    async fn acquire(&self, name: &str, owner: &str, ttl_ms: u64) -> Result<Acquired>;
    /// Extends `lease` to `ttl_ms` from now; `None` if it is no longer the live lease.
    async fn extend(&self, lease: &MutexLease, ttl_ms: u64) -> Result<Option<MutexLease>>;
    /// Ends `lease`; false if it is no longer the live lease.
    async fn release(&self, lease: &MutexLease) -> Result<bool>;
    /// The live lease of `name` at `now`, if any.
    async fn holder(&self, name: &str, now: u64) -> Result<Option<MutexLease>>;
    /// Every lease live at `now`, by mutex name.
    async fn holders(&self, now: u64) -> Result<Vec<MutexLease>>;
}
