//! [`MutexLease`]: what a holder of a mutex has.

use serde::{Deserialize, Serialize};

/// A held mutex lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MutexLease {
    /// The mutex name.
    pub name: String,
    /// The owner that holds it.
    pub owner: String,
    /// The fencing token: larger than that of every earlier acquisition. Pass it to the
    /// guarded resource and have it refuse tokens older than the newest it has seen.
    pub token: u64,
    /// When the lease ends unless extended (ms since the epoch).
    pub expires_at_ms: u64,
}
