//! [`QueueOptions`](crate::QueueOptions): the limits and defaults of one queue handle.

use std::time::Duration;

/// Limits and defaults of one queue. Every number is a default from the spec and can be changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueOptions {
    /// Lease of [`Queue::receive`](crate::Queue::receive) when none is given. Default 30 s.
    pub(crate) lease: Duration,
    /// Deliveries before a message is dead-lettered as `max_deliveries`. Default 10.
    pub(crate) max_deliveries: u32,
    /// Age after which an unacknowledged message is dead-lettered as `expired`. Default 7 days.
    pub(crate) max_age: Duration,
    /// Largest payload accepted by [`Queue::send`](crate::Queue::send), in bytes. Default 128 KiB.
    pub(crate) payload_limit: usize,
    /// How long dead letters are kept before they are purged. Default 7 days.
    pub(crate) dead_retention: Duration,
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions {
            lease: Duration::from_secs(30),
            max_deliveries: 10,
            max_age: Duration::from_secs(7 * 24 * 3600),
            payload_limit: 128 * 1024,
            dead_retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

impl QueueOptions {
    /// Sets the default lease of [`Queue::receive`](crate::Queue::receive).
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }
    /// Sets the deliveries allowed before dead-lettering.
    pub fn max_deliveries(mut self, n: u32) -> Self {
        self.max_deliveries = n;
        self
    }
    /// Sets the maximum age of a message.
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = age;
        self
    }
    /// Sets the payload limit in bytes.
    pub fn payload_limit(mut self, bytes: usize) -> Self {
        self.payload_limit = bytes;
        self
    }
    /// Sets how long dead letters are kept.
    pub fn dead_retention(mut self, keep: Duration) -> Self {
        self.dead_retention = keep;
        self
    }
}
