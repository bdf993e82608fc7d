//! What a caller sees of a queue's messages: receipts, stored messages, dead letters, counts.

use super::record::{DeadReason, MessageState, MessageV1};
use serde::{Deserialize, Serialize};

/// The result of a send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SendReceipt {
    /// The message id.
    pub id: u64,
    /// True when the idempotency key matched a live message and nothing new was stored.
    pub deduplicated: bool,
}

/// A message as stored, for inspection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MessageInfo {
    /// The message id.
    pub id: u64,
    /// The payload.
    pub payload: Vec<u8>,
    /// The priority it was sent with.
    pub priority: i32,
    /// The idempotency key it was sent with.
    pub key: Option<String>,
    /// How many times it has been delivered.
    pub deliveries: u32,
    /// Where it stands.
    pub state: MessageStatus,
    /// The last error recorded by a nack, a lost lease or a dead-lettering.
    pub last_error: Option<String>,
    /// When it was sent (ms since the epoch).
    pub enqueued_at_ms: u64,
}

/// Where a message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum MessageStatus {
    /// Waiting in line.
    Ready,
    /// Waiting until the given instant (ms since the epoch).
    Delayed {
        /// When it becomes ready.
        until_ms: u64,
    },
    /// Delivered and leased until the given instant.
    Leased {
        /// The lease deadline.
        deadline_ms: u64,
    },
    /// In the dead-letter list.
    Dead {
        /// Why it was dead-lettered.
        reason: DeadReason,
        /// When.
        at_ms: u64,
    },
}

/// A dead-lettered message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DeadLetter {
    /// The message id.
    pub id: u64,
    /// The payload.
    pub payload: Vec<u8>,
    /// Why it was dead-lettered.
    pub reason: DeadReason,
    /// The last error recorded for it.
    pub last_error: Option<String>,
    /// How many times it was delivered.
    pub deliveries: u32,
    /// When it was dead-lettered (ms since the epoch).
    pub dead_at_ms: u64,
}

/// Counts of a queue's messages by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct QueueStats {
    /// Ready to deliver now.
    pub ready: u64,
    /// Waiting for their delay.
    pub delayed: u64,
    /// Delivered and leased.
    pub leased: u64,
    /// In the dead-letter list.
    pub dead: u64,
    /// Paused ([`Queue::pause`](crate::Queue::pause)): nothing is delivered.
    #[serde(default)]
    pub paused: bool,
}

impl QueueStats {
    /// Adds `n` messages in the state named `state` (`ready`, `delayed`, `leased`, `dead`).
    pub(crate) fn add(&mut self, state: &str, n: u64) {
        match state {
            "ready" => self.ready += n,
            "delayed" => self.delayed += n,
            "leased" => self.leased += n,
            "dead" => self.dead += n,
            _ => {}
        }
    }
}

/// A queue and its counts; see [`Engine::queues`](crate::Engine::queues).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct QueueSummary {
    /// The queue's name.
    pub name: String,
    /// Its messages by state.
    #[serde(flatten)]
    pub stats: QueueStats,
}

pub(crate) fn info(id: u64, m: MessageV1) -> MessageInfo {
    let state = match m.state {
        MessageState::Ready { .. } => MessageStatus::Ready,
        MessageState::Delayed { until } => MessageStatus::Delayed { until_ms: until },
        MessageState::Leased { deadline } => MessageStatus::Leased {
            deadline_ms: deadline,
        },
        MessageState::Dead { reason, at, .. } => MessageStatus::Dead { reason, at_ms: at },
    };
    MessageInfo {
        id,
        payload: m.payload,
        priority: m.priority,
        key: m.key,
        deliveries: m.deliveries,
        state,
        last_error: m.last_error,
        enqueued_at_ms: m.enqueued_at,
    }
}
