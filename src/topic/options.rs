//! [`TopicOptions`]: the limits and defaults of a topic handle.

use std::time::Duration;

/// Limits and defaults of a topic handle. Retention 7 days, no count limit, 128 KiB payloads,
/// a 30 s reclaim time for group deliveries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicOptions {
    /// How long events are kept. Default 7 days.
    pub retention: Duration,
    /// Keep at most this many events (the oldest go first). Default none.
    pub max_events: Option<u64>,
    /// The largest payload accepted by publish, in bytes. Default 128 KiB.
    pub payload_limit: usize,
    /// How long a group delivery may stay uncommitted before it is delivered again. Default 30 s.
    pub reclaim: Duration,
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
