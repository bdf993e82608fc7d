//! The topic's stored records. Versioned: only ever add variants.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum StoredEvent {
    V1(EventV1),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EventV1 {
    pub(crate) at: u64,
    pub(crate) key: Option<String>,
    pub(crate) payload: Vec<u8>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) enum StoredTopic {
    #[default]
    Empty,
    V1(TopicV1),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct TopicV1 {
    /// The last sequence number given out (0: none yet).
    pub(crate) last_seq: u64,
    /// Every event at or below this sequence was pruned.
    pub(crate) pruned_through: u64,
    /// Retention of this topic's events, as last published with.
    pub(crate) retention_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum StoredGroup {
    V1(GroupV1),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct GroupV1 {
    /// Events up to here were handed to a member at least once.
    pub(crate) delivered_through: u64,
    /// Events up to here are committed: the durable cursor.
    pub(crate) committed_through: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum StoredPending {
    V1(PendingV1),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PendingV1 {
    pub(crate) deadline: u64,
    pub(crate) deliveries: u32,
    pub(crate) committed: bool,
}

/// Decodes `bytes` as each stored topic record kind (for the fuzz targets).
#[cfg(feature = "testing")]
#[cfg(feature = "testing")]
pub(crate) fn decode_records(bytes: &[u8]) -> [(&'static str, crate::Result<()>); 4] {
    [
        (
            "topic_events",
            crate::store::codec::decode::<StoredEvent>("topic_events", bytes).map(|_| ()),
        ),
        (
            "topics",
            crate::store::codec::decode::<StoredTopic>("topics", bytes).map(|_| ()),
        ),
        (
            "topic_groups",
            crate::store::codec::decode::<StoredGroup>("topic_groups", bytes).map(|_| ()),
        ),
        (
            "topic_pending",
            crate::store::codec::decode::<StoredPending>("topic_pending", bytes).map(|_| ()),
        ),
    ]
}
