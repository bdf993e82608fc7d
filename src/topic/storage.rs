//! The topic's storage seam: its named operations and reads.

use super::info::{GroupDelivery, Published, StartAt, TopicEvent, TopicSummary};
use crate::error::Result;

/// One event to publish.
#[derive(Debug, Clone)]
pub(crate) struct TopicPublish {
    pub(crate) topic: String,
    pub(crate) key: Option<String>,
    pub(crate) payload: Vec<u8>,
    /// How long the topic keeps its events.
    pub(crate) retention_ms: u64,
    /// The most events the topic keeps; the oldest go first.
    pub(crate) max_events: Option<u64>,
}

/// A group member's take.
#[derive(Debug, Clone)]
pub(crate) struct GroupTake {
    pub(crate) topic: String,
    pub(crate) group: String,
    /// Where a new group starts.
    pub(crate) start: StartAt,
    pub(crate) max: usize,
    /// How long a delivery may stay uncommitted before it is handed out again.
    pub(crate) reclaim_ms: u64,
}

/// A topic's retained range.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TopicBounds {
    /// Every event at or below this sequence was pruned.
    pub(crate) pruned_through: u64,
    /// The last sequence given out (0: none yet).
    pub(crate) last_seq: u64,
}

/// The named operations and reads of topics.
pub(crate) trait TopicStorage {
    /// Stores an event, or finds the retained one with the same key.
    async fn publish(&self, publish: TopicPublish) -> Result<Published>;
    /// Up to `limit` events from `from` on; `Lagged` if some were pruned.
    async fn read(&self, topic: &str, from: u64, limit: usize) -> Result<Vec<TopicEvent>>;
    /// The topic's retained range.
    async fn bounds(&self, topic: &str) -> Result<TopicBounds>;
    /// Hands up to `max` events to a member: reclaimed deliveries first, then new events.
    /// Also returns the earliest reclaim deadline still pending. `Lagged` if the group's next
    /// event was pruned.
    async fn take(&self, take: GroupTake) -> Result<(Vec<GroupDelivery>, Option<u64>)>;
    /// Commits delivered events of a group in one write; how many were newly committed.
    async fn commit(&self, topic: &str, group: &str, seqs: Vec<u64>) -> Result<usize>;
    /// The group's durable cursor.
    async fn committed_through(&self, topic: &str, group: &str) -> Result<u64>;
    /// Moves the group so that its next event is the one after `after`.
    async fn seek(&self, topic: &str, group: &str, after: u64) -> Result<()>;
    /// Every topic with its groups, by name.
    async fn topics(&self) -> Result<Vec<TopicSummary>>;
    /// One pass of timed work (retention); the next instant with work.
    async fn sweep(&self) -> Result<Option<u64>>;
}
