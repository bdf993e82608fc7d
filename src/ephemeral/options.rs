//! [`EphemeralOptions`](crate::EphemeralOptions): the limits of one set handle.

/// Limits of one ephemeral set. Defaults from the spec: 10,000 entries of at most 4 KiB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EphemeralOptions {
    /// Live entries the set may hold; an upsert of a new key beyond it fails with
    /// [`Error::CapacityExceeded`](crate::Error::CapacityExceeded). Default 10,000.
    pub capacity: usize,
    /// The largest value, in bytes; larger ones fail with [`Error::PayloadTooLarge`](crate::Error::PayloadTooLarge).
    /// Default 4 KiB.
    pub payload_limit: usize,
}

impl Default for EphemeralOptions {
    fn default() -> Self {
        EphemeralOptions {
            capacity: 10_000,
            payload_limit: 4 * 1024,
        }
    }
}
