//! [`EphemeralOptions`](crate::EphemeralOptions): the limits of one set handle.

use std::time::Duration;

/// Limits of one ephemeral set. Defaults: 10,000 entries of at most 4 KiB, living 60 s unless
/// an upsert names its own TTL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EphemeralOptions {
    /// Live entries the set may hold; an upsert of a new key beyond it fails with
    /// [`Error::CapacityExceeded`](crate::Error::CapacityExceeded). Default 10,000.
    pub(crate) capacity: usize,
    /// The largest value, in bytes; larger ones fail with [`Error::PayloadTooLarge`](crate::Error::PayloadTooLarge).
    /// Default 4 KiB.
    pub(crate) payload_limit: usize,
    /// How long an upserted entry lives when the upsert names no TTL. Default 60 s.
    pub(crate) ttl: Duration,
}

impl Default for EphemeralOptions {
    fn default() -> Self {
        EphemeralOptions {
            capacity: 10_000,
            payload_limit: 4 * 1024,
            ttl: Duration::from_secs(60),
        }
    }
}

impl EphemeralOptions {
    /// Sets how many live entries the set may hold.
    pub fn capacity(mut self, entries: usize) -> Self {
        self.capacity = entries;
        self
    }
    /// Sets how long an upserted entry lives when the upsert names no TTL.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }
    /// Sets the largest value, in bytes.
    pub fn payload_limit(mut self, bytes: usize) -> Self {
        self.payload_limit = bytes;
        self
    }
}
