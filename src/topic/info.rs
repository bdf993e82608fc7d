//! What a caller sees of a topic: its events, publish receipts, group deliveries.

use serde::{Deserialize, Serialize};

/// An event of a topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TopicEvent {
    /// Its sequence number: 1, 2, 3, … within the topic.
    pub seq: u64,
    /// When it was published (ms since the epoch).
    pub at_ms: u64,
    /// Its idempotency key, if it was published with one.
    pub key: Option<String>,
    /// The payload.
    pub payload: Vec<u8>,
}

/// Where a subscription or a new consumer group starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "at", content = "seq", rename_all = "snake_case")]
#[non_exhaustive]
pub enum StartAt {
    /// The oldest retained event.
    Beginning,
    /// The event with this sequence number.
    Seq(u64),
    /// The next event published.
    Now,
}

/// The result of a publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Published {
    /// The event's sequence number.
    pub seq: u64,
    /// True when the key matched a retained event and nothing new was stored.
    pub deduplicated: bool,
}

/// An event handed to a group member; commit it when done, or it is delivered again after the
/// topic's reclaim time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct GroupDelivery {
    /// The event.
    pub event: TopicEvent,
    /// How many times it has been handed to this group.
    pub deliveries: u32,
    /// When it is delivered again if not committed (ms since the epoch).
    pub reclaim_at_ms: u64,
}

/// A topic and its consumer groups; see [`Engine::topics`](crate::Engine::topics).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TopicSummary {
    /// The topic's name.
    pub name: String,
    /// The last sequence number given out (0: none yet).
    pub last_seq: u64,
    /// Every event at or below this sequence was pruned.
    pub pruned_through: u64,
    /// Its consumer groups, by name.
    pub groups: Vec<GroupSummary>,
}

/// A consumer group's position in its topic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct GroupSummary {
    /// The group's name.
    pub name: String,
    /// Every event up to this one is committed.
    pub committed_through: u64,
    /// Every event up to this one was handed to a member at least once.
    pub delivered_through: u64,
}
