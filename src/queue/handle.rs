//! [`Queue`]: the handle to one named queue.

use std::sync::Arc;
use std::time::Duration;

use super::backend::QueueBackend;
use super::core::QueueCore;
use super::delivery::Delivery;
use super::info::{DeadLetter, MessageInfo, QueueStats};
use super::options::QueueOptions;
use super::send::SendMessage;
use super::storage::QueueStorage;
use crate::clock::millis;
use crate::error::{Error, Result};

/// The longest queue name, in bytes.
const MAX_QUEUE_NAME: usize = 256;

/// A named queue. Cheap to clone; every clone talks to the same file.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> jobfile::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// let engine = jobfile::Engine::open(dir.path().join("app.jobfile")).await?;
/// let emails = engine.queue("emails")?;
/// let sent = emails.send(b"hello".to_vec()).key("welcome-42").await?;
/// let delivery = emails.receive().await?;
/// assert_eq!(delivery.id(), sent.id);
/// assert_eq!(delivery.payload(), b"hello");
/// delivery.ack().await?;
/// # engine.shutdown(std::time::Duration::from_secs(1)).await?; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Queue {
    name: Arc<str>,
    options: Arc<QueueOptions>,
    core: Arc<QueueCore>,
}

/// How many items one transaction of a bulk operation acts on.
const BULK_BATCH: usize = 1_000;

impl Queue {
    pub(crate) fn new(core: Arc<QueueCore>, name: &str, options: QueueOptions) -> Result<Self> {
        if name.is_empty() || name.len() > MAX_QUEUE_NAME {
            return Err(Error::invalid(
                "queue name",
                format!("must be 1 to {MAX_QUEUE_NAME} bytes, got {}", name.len()),
            ));
        }
        if options.max_deliveries == 0 {
            return Err(Error::invalid("max_deliveries", "must be at least 1"));
        }
        if options.lease.is_zero() {
            return Err(Error::invalid("lease", "must be longer than zero"));
        }
        Ok(Queue {
            name: name.into(),
            options: Arc::new(options),
            core,
        })
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The queue's options.
    pub fn options(&self) -> &QueueOptions {
        &self.options
    }

    /// Starts a send of `payload`; set options on the returned builder and `.await` it.
    /// Resolves once the message is durable.
    ///
    /// Errors: [`Error::PayloadTooLarge`] above [`QueueOptions::payload_limit`] (nothing is
    /// written), [`Error::Poisoned`], [`Error::Closed`].
    pub fn send(&self, payload: impl Into<Vec<u8>>) -> SendMessage<'_> {
        SendMessage::new(&self.core, &self.name, &self.options, payload.into())
    }

    /// Waits for a message and leases it for [`QueueOptions::lease`]. Woken by the send that
    /// makes a message ready, not by polling.
    ///
    /// If the returned future is dropped after the message was taken, the message is
    /// redelivered when its lease runs out.
    pub async fn receive(&self) -> Result<Delivery> {
        self.receive_for(self.options.lease).await
    }

    /// Waits for a message and leases it for `lease`.
    pub async fn receive_for(&self, lease: Duration) -> Result<Delivery> {
        let mut batch = self.receive_batch(1, lease).await?;
        batch
            .pop()
            .ok_or_else(|| Error::Internal("receive returned nothing".into()))
    }

    /// Waits until at least one message is ready, then takes up to `max` of them in one op,
    /// each leased for `lease`.
    pub async fn receive_batch(&self, max: usize, lease: Duration) -> Result<Vec<Delivery>> {
        let notify = self.core.receivers.waiter(&*self.name);
        let mut stop = self.core.stop.clone();
        loop {
            if *stop.borrow_and_update() {
                return Err(Error::Closed);
            }
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let got = self.take(max, lease).await?;
            if !got.is_empty() {
                return Ok(got);
            }
            tokio::select! {
                _ = notified => {}
                _ = stop.changed() => return Err(Error::Closed),
            }
        }
    }

    /// Takes up to `max` ready messages without waiting; empty if none is ready.
    pub async fn try_receive(&self, max: usize, lease: Duration) -> Result<Vec<Delivery>> {
        self.take(max, lease).await
    }

    async fn take(&self, max: usize, lease: Duration) -> Result<Vec<Delivery>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let lease_ms = millis(lease).max(1);
        let taken = self.core.backend.take(&self.name, max, lease_ms).await?;
        Ok(taken
            .into_iter()
            .map(|t| Delivery::new(self.core.clone(), self.name.clone(), t))
            .collect())
    }

    /// Pauses the queue: `receive` (on every handle of the queue, and on PostgreSQL on every
    /// node) waits and `try_receive` gets nothing until [`resume`](Self::resume); sends,
    /// acks, nacks, lease expiry and delays go on. Durable: still paused after a restart.
    /// Shown by [`stats`](Self::stats) and [`Engine::queues`](crate::Engine::queues).
    /// Returns false if it was paused already.
    pub async fn pause(&self) -> Result<bool> {
        self.core.backend.set_paused(&self.name, true).await
    }

    /// Resumes the queue: its waiting receivers are woken at once. Returns false if it was
    /// not paused.
    pub async fn resume(&self) -> Result<bool> {
        self.core.backend.set_paused(&self.name, false).await
    }

    /// The message with this id, in any state, if it is still stored.
    pub async fn get(&self, id: u64) -> Result<Option<MessageInfo>> {
        self.core.backend.get(&self.name, id).await
    }

    /// Counts of this queue's messages by state. Counting delayed and leased messages reads
    /// every delayed and leased message of the file.
    pub async fn stats(&self) -> Result<QueueStats> {
        self.core.backend.stats(&self.name).await
    }

    /// The dead-letter list, oldest message first, at most `limit` entries.
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        self.core.backend.dead_letters(&self.name, limit).await
    }

    /// Puts a dead letter back in line with a fresh delivery budget and age.
    /// Returns false if this queue has no dead letter with that id.
    pub async fn requeue_dead(&self, id: u64) -> Result<bool> {
        self.core.backend.requeue_dead(&self.name, id).await
    }

    /// Deletes one dead letter. Returns false if this queue has no dead letter with that id.
    pub async fn delete_dead(&self, id: u64) -> Result<bool> {
        self.core.backend.delete_dead(&self.name, id).await
    }

    /// Puts every dead letter of this queue back in line, as [`requeue_dead`](Self::requeue_dead)
    /// does one; returns how many. Works in batches of 1,000, one transaction each, so it is
    /// safe beside running consumers (a message buried meanwhile may be requeued too).
    pub async fn requeue_all_dead(&self) -> Result<u64> {
        self.in_batches(|backend, name| backend.requeue_dead_batch(name, BULK_BATCH))
            .await
    }

    /// Deletes every dead letter of this queue; returns how many. In batches of 1,000, as
    /// [`requeue_all_dead`](Self::requeue_all_dead).
    pub async fn purge_dead(&self) -> Result<u64> {
        self.in_batches(|backend, name| backend.purge_dead(name, BULK_BATCH))
            .await
    }

    /// Runs `batch` until it acts on fewer than [`BULK_BATCH`] items; the total.
    async fn in_batches<'a, F, Fut>(&'a self, batch: F) -> Result<u64>
    where
        F: Fn(&'a QueueBackend, &'a str) -> Fut,
        Fut: std::future::Future<Output = Result<usize>>,
    {
        let mut total = 0u64;
        loop {
            let n = batch(&self.core.backend, &self.name).await?;
            total += n as u64;
            if n < BULK_BATCH {
                return Ok(total);
            }
        }
    }
}
