//! [`Delivery`]: a message received under a lease, and how it is settled.

use std::sync::Arc;
use std::time::Duration;

use super::core::QueueCore;
use super::storage::{DeliveryClaim, QueueNack, QueueStorage, Taken};
use crate::clock::millis;
use crate::error::Result;

/// A leased message. Settle it with [`ack`](Delivery::ack), [`nack`](Delivery::nack) or
/// [`dead_letter`](Delivery::dead_letter); each returns whether this delivery still owned the
/// message (false once its lease ran out, even if no one else has taken it yet).
#[derive(Debug, Clone)]
pub struct Delivery {
    core: Arc<QueueCore>,
    queue: Arc<str>,
    id: u64,
    payload: Vec<u8>,
    deliveries: u32,
    deadline_ms: u64,
}

impl Delivery {
    pub(crate) fn new(core: Arc<QueueCore>, queue: Arc<str>, taken: Taken) -> Self {
        Delivery {
            core,
            queue,
            id: taken.id,
            payload: taken.payload,
            deliveries: taken.deliveries,
            deadline_ms: taken.deadline,
        }
    }

    fn claim(&self) -> DeliveryClaim {
        DeliveryClaim {
            queue: self.queue.to_string(),
            id: self.id,
            delivery: self.deliveries,
        }
    }

    /// The message id (as returned by the send).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The payload.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Takes the payload out of the delivery.
    pub fn into_payload(self) -> Vec<u8> {
        self.payload
    }

    /// How many times the message has been delivered, this delivery included (1 the first time).
    pub fn deliveries(&self) -> u32 {
        self.deliveries
    }

    /// When the lease runs out (ms since the epoch).
    pub fn lease_deadline_ms(&self) -> u64 {
        self.deadline_ms
    }

    /// Acknowledges the message: it is deleted. Returns whether this delivery still owned it.
    pub async fn ack(&self) -> Result<bool> {
        self.core.backend.ack(self.claim()).await
    }

    /// Gives the message back: behind the messages already ready, or after `delay`. When this was
    /// its last allowed delivery it goes to the dead-letter list instead (`max_deliveries`).
    /// Returns whether this delivery still owned it.
    pub async fn nack(&self, delay: Duration) -> Result<bool> {
        self.settle_nack(delay, None).await
    }

    /// Like [`nack`](Delivery::nack), recording `error` as the message's last error.
    pub async fn nack_with_error(&self, delay: Duration, error: impl Into<String>) -> Result<bool> {
        self.settle_nack(delay, Some(error.into())).await
    }

    async fn settle_nack(&self, delay: Duration, error: Option<String>) -> Result<bool> {
        let nack = QueueNack {
            claim: self.claim(),
            delay_ms: millis(delay),
            error,
        };
        self.core.backend.nack(nack).await
    }

    /// Extends the lease to `lease` from now. Returns whether this delivery still owned it.
    pub async fn extend(&mut self, lease: Duration) -> Result<bool> {
        let lease_ms = millis(lease).max(1);
        let deadline = self.core.backend.extend(self.claim(), lease_ms).await?;
        if let Some(d) = deadline {
            self.deadline_ms = d;
        }
        Ok(deadline.is_some())
    }

    /// Moves the message to the dead-letter list at once (reason `nacked`), recording `error`.
    /// Returns whether this delivery still owned it.
    pub async fn dead_letter(&self, error: impl Into<String>) -> Result<bool> {
        self.core
            .backend
            .dead_letter(self.claim(), error.into())
            .await
    }
}
