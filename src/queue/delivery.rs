//! [`Delivery`]: a message received under a lease, and how it is settled.

use std::sync::Arc;
use std::time::Duration;

use super::core::QueueCore;
use super::storage::{DeliveryClaim, QueueNack, QueueStorage, Taken};
use crate::clock::millis;
use crate::error::{Error, Held, Result};

/// A leased message. Settle it with [`ack`](Delivery::ack), [`nack`](Delivery::nack) or
/// [`dead_letter`](Delivery::dead_letter). Once its lease has run out (even if no one else
/// has taken the message yet) each of these, and [`extend`](Delivery::extend), fails with
/// [`Error::NotHolder`] and changes nothing.
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

    /// Acknowledges the message: it is deleted.
    ///
    /// Errors: [`Error::NotHolder`] if the lease ran out first.
    pub async fn ack(&self) -> Result<()> {
        let owned = self.core.backend.ack(self.claim()).await?;
        self.held(owned)
    }

    /// Gives the message back: behind the messages already ready, or after `delay`. When this was
    /// its last allowed delivery it goes to the dead-letter list instead (`max_deliveries`).
    ///
    /// Errors: [`Error::NotHolder`] if the lease ran out first.
    pub async fn nack(&self, delay: Duration) -> Result<()> {
        self.settle_nack(delay, None).await
    }

    /// Like [`nack`](Delivery::nack), recording `error` as the message's last error.
    pub async fn nack_with_error(&self, delay: Duration, error: impl Into<String>) -> Result<()> {
        self.settle_nack(delay, Some(error.into())).await
    }

    async fn settle_nack(&self, delay: Duration, error: Option<String>) -> Result<()> {
        let nack = QueueNack {
            claim: self.claim(),
            delay_ms: millis(delay),
            error,
        };
        let owned = self.core.backend.nack(nack).await?;
        self.held(owned)
    }

    /// Extends the lease to `lease` from now.
    ///
    /// Errors: [`Error::NotHolder`] if the lease ran out first.
    pub async fn extend(&mut self, lease: Duration) -> Result<()> {
        let lease_ms = millis(lease).max(1);
        let deadline = self.core.backend.extend(self.claim(), lease_ms).await?;
        if let Some(d) = deadline {
            self.deadline_ms = d;
        }
        self.held(deadline.is_some())
    }

    /// Moves the message to the dead-letter list at once (reason `nacked`), recording `error`.
    ///
    /// Errors: [`Error::NotHolder`] if the lease ran out first.
    pub async fn dead_letter(&self, error: impl Into<String>) -> Result<()> {
        let owned = self
            .core
            .backend
            .dead_letter(self.claim(), error.into())
            .await?;
        self.held(owned)
    }

    /// `Ok` if this delivery still owned its message; [`Error::NotHolder`] if not.
    fn held(&self, owned: bool) -> Result<()> {
        if owned {
            return Ok(());
        }
        Err(Error::NotHolder {
            held: Held::Delivery {
                queue: self.queue.to_string(),
                message: self.id,
                delivery: self.deliveries,
            },
        })
    }
}
