//! The ephemeral set's storage seam: its named operations and reads. Instants travel
//! explicitly: a read says at what time an entry must still be live.

use super::info::{Change, Entry, SetSummary, Snapshot};
use crate::error::Result;

/// An insert or replace of one entry.
#[derive(Debug, Clone)]
pub(crate) struct EphemeralUpsert {
    pub(crate) set: String,
    pub(crate) key: String,
    pub(crate) value: Vec<u8>,
    pub(crate) ttl_ms: u64,
    /// Live entries the set may hold; a new key beyond it is refused.
    pub(crate) capacity: usize,
}

/// The named operations and reads of ephemeral sets.
pub(crate) trait EphemeralStorage {
    /// Inserts or replaces an entry; the change's position.
    async fn upsert(&self, upsert: EphemeralUpsert) -> Result<u64>;
    /// Extends a live entry's TTL to `ttl_ms` from now; the change's position, `None` if absent.
    async fn touch(&self, set: &str, key: &str, ttl_ms: u64) -> Result<Option<u64>>;
    /// Removes a live entry; the change's position, `None` if absent.
    async fn remove(&self, set: &str, key: &str) -> Result<Option<u64>>;
    /// The entry under `key` if it is live at `now`.
    async fn get(&self, set: &str, key: &str, now: u64) -> Result<Option<Entry>>;
    /// Every entry live at `now`, with the position of the last change it reflects.
    async fn snapshot(&self, set: &str, now: u64) -> Result<Snapshot>;
    /// Up to `limit` changes from position `from` on; `Lagged` if some were pruned.
    async fn read_changes(&self, set: &str, from: u64, limit: usize) -> Result<Vec<Change>>;
    /// One pass of timed work (expiry, pruning); the next instant with work.
    async fn sweep(&self) -> Result<Option<u64>>;
    /// Every set that holds entries or changes, by name.
    async fn sets(&self) -> Result<Vec<SetSummary>>;
}
