//! [`TopicOptions`]: the limits and defaults of a topic handle.

use std::time::Duration;

/// Limits and defaults of a topic handle. Retention 7 days, no count limit, 128 KiB payloads,
/// a 30 s reclaim time for group deliveries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicOptions {
    /// How long events are kept. Default 7 days.
    pub(crate) retention: Duration,
    /// Keep at most this many events (the oldest go first). Default none.
    pub(crate) max_events: Option<u64>,
    /// The largest payload accepted by publish, in bytes. Default 128 KiB.
    pub(crate) payload_limit: usize,
    /// How long a group delivery may stay uncommitted before it is delivered again. Default 30 s.
    pub(crate) reclaim: Duration,
}

impl Default for TopicOptions {
    fn default() -> Self {
        TopicOptions {
            retention: Duration::from_secs(7 * 24 * 3600),
            max_events: None,
            payload_limit: 128 * 1024,
            reclaim: Duration::from_secs(30),
        }
    }
}

impl TopicOptions {
    /// Sets how long events are kept.
    pub fn retention(mut self, keep: Duration) -> Self {
        self.retention = keep;
        self
    }
    /// Keeps at most `n` events; the oldest go first.
    pub fn max_events(mut self, n: u64) -> Self {
        self.max_events = Some(n);
        self
    }
    /// Sets the payload limit in bytes.
    pub fn payload_limit(mut self, bytes: usize) -> Self {
        self.payload_limit = bytes;
        self
    }
    /// Sets how long a group delivery may stay uncommitted before it is delivered again.
    pub fn reclaim(mut self, after: Duration) -> Self {
        self.reclaim = after;
        self
    }
}
