//! The queue's storage seam: every read and write a queue makes, as named operations.
//!
//! A storage backend implements [`QueueStorage`]; [`QueueBackend`](super::backend::QueueBackend)
//! dispatches to the one an engine uses. Nothing here names the storage: ids and instants travel explicitly, and a
//! delivery proves it still owns its message by the pair (message id, delivery number) it was
//! handed, so the same check works in one process or across many.

use super::info::{DeadLetter, MessageInfo, QueueStats, QueueSummary, SendReceipt};
use super::record::{MessageState, MessageV1};
use crate::error::Result;

/// A message to store, before it has an id.
#[derive(Debug, Clone)]
pub(crate) struct NewMessage {
    pub(crate) queue: String,
    pub(crate) payload: Vec<u8>,
    pub(crate) priority: i32,
    pub(crate) key: Option<String>,
    /// When it may first be delivered (ms since the epoch); `None`: now.
    pub(crate) available_at: Option<u64>,
    pub(crate) max_age_ms: u64,
    pub(crate) max_deliveries: u32,
    pub(crate) dead_retention_ms: u64,
}

impl NewMessage {
    /// The record of this message as sent at `now`, ready; its payload kept in the record
    /// unless it is stored apart.
    pub(crate) fn record(&self, now: u64, payload_apart: bool) -> MessageV1 {
        MessageV1 {
            queue: self.queue.clone(),
            payload: if payload_apart {
                Vec::new()
            } else {
                self.payload.clone()
            },
            priority: self.priority,
            key: self.key.clone(),
            enqueued_at: now,
            max_age_ms: self.max_age_ms,
            max_deliveries: self.max_deliveries,
            dead_retention_ms: self.dead_retention_ms,
            deliveries: 0,
            state: MessageState::Ready { seq: 0 },
            last_error: None,
            payload_apart,
        }
    }
}

/// One message taken for delivery.
#[derive(Debug, Clone)]
pub(crate) struct Taken {
    pub(crate) id: u64,
    pub(crate) payload: Vec<u8>,
    /// The delivery number: the count of deliveries, this one included.
    pub(crate) deliveries: u32,
    pub(crate) deadline: u64,
}

/// A delivery's claim on its message: the queue, the message, and the delivery number that
/// leased it. Settling with a claim whose lease was lost (ran out, or a later delivery took
/// the message) changes nothing and reports `false` (or `None`).
#[derive(Debug, Clone)]
pub(crate) struct DeliveryClaim {
    pub(crate) queue: String,
    pub(crate) id: u64,
    pub(crate) delivery: u32,
}

/// How a delivery is given back.
#[derive(Debug, Clone)]
pub(crate) struct QueueNack {
    pub(crate) claim: DeliveryClaim,
    /// Back in line after this long (0: at once).
    pub(crate) delay_ms: u64,
    /// Recorded as the message's last error.
    pub(crate) error: Option<String>,
}

/// The named operations and reads of the queue.
pub(crate) trait QueueStorage {
    /// Stores a new message, or finds the live one with the same key.
    async fn send(&self, new: NewMessage) -> Result<SendReceipt>;
    /// Leases up to `max` ready messages of `queue` for `lease_ms` each.
    async fn take(&self, queue: &str, max: usize, lease_ms: u64) -> Result<Vec<Taken>>;
    /// Pauses (`true`) or resumes `queue`: a paused queue delivers nothing. False if it
    /// already was.
    async fn set_paused(&self, queue: &str, paused: bool) -> Result<bool>;
    /// Deletes the claimed message.
    async fn ack(&self, claim: DeliveryClaim) -> Result<bool>;
    /// Gives the claimed message back, or buries it when it is out of deliveries or too old.
    async fn nack(&self, nack: QueueNack) -> Result<bool>;
    /// Extends the claim's lease to `lease_ms` from now; the new deadline.
    async fn extend(&self, claim: DeliveryClaim, lease_ms: u64) -> Result<Option<u64>>;
    /// Moves the claimed message to the dead-letter list, recording `error`.
    async fn dead_letter(&self, claim: DeliveryClaim, error: String) -> Result<bool>;
    /// Puts a dead letter of `queue` back in line with a fresh budget and age.
    async fn requeue_dead(&self, queue: &str, id: u64) -> Result<bool>;
    /// Requeues up to `limit` dead letters of `queue`, oldest first; how many.
    async fn requeue_dead_batch(&self, queue: &str, limit: usize) -> Result<usize>;
    /// Deletes a dead letter of `queue`.
    async fn delete_dead(&self, queue: &str, id: u64) -> Result<bool>;
    /// Deletes up to `limit` dead letters of `queue`; how many.
    async fn purge_dead(&self, queue: &str, limit: usize) -> Result<usize>;
    /// The message `id` of `queue`, in any state.
    async fn get(&self, queue: &str, id: u64) -> Result<Option<MessageInfo>>;
    /// Counts of `queue`'s messages by state.
    async fn stats(&self, queue: &str) -> Result<QueueStats>;
    /// Every queue that holds messages, by name, with its counts.
    async fn queues(&self) -> Result<Vec<QueueSummary>>;
    /// Up to `limit` dead letters of `queue`, oldest first.
    async fn dead_letters(&self, queue: &str, limit: usize) -> Result<Vec<DeadLetter>>;
    /// One pass of timed work (expired leases, due delays, age limits, retention); the next
    /// instant with work.
    async fn maintain(&self) -> Result<Option<u64>>;
}
