//! The queue: raw work distribution with leases, redelivery and a dead-letter list.
//!
//! A message is sent, received under a lease, and then acknowledged (gone), nacked (back in
//! line, optionally after a delay) or dead-lettered. A lease that runs out redelivers the
//! message; after `max_deliveries` deliveries, or past `max_age`, it moves to the dead-letter
//! list with its reason and last error.

pub(crate) mod maintenance;
pub(crate) mod ops;
mod record;
pub(crate) mod tables;

use std::collections::HashMap;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{ReadableTable, ReadableTableMetadata};
use tokio::sync::Notify;

use crate::clock::millis;
use crate::error::{Error, Result};
use crate::store::Store;
use crate::store::codec::decode;
use crate::timer::Timer;
use ops::{Became, NewMessage};
pub use record::DeadReason;
use record::{MessageState, MessageV1, StoredMessage};
use tables::{
    QUEUE_DEAD, QUEUE_DELAYED, QUEUE_LEASES, QUEUE_MESSAGES, QUEUE_PAYLOADS, QUEUE_READY,
};

/// Limits and defaults of one queue. Every number is a default from the spec and can be changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueOptions {
    /// Lease of [`Queue::receive`] when none is given. Default 30 s.
    pub lease: Duration,
    /// Deliveries before a message is dead-lettered as `max_deliveries`. Default 10.
    pub max_deliveries: u32,
    /// Age after which an unacknowledged message is dead-lettered as `expired`. Default 7 days.
    pub max_age: Duration,
    /// Largest payload accepted by [`Queue::send`], in bytes. Default 128 KiB.
    pub payload_limit: usize,
    /// How long dead letters are kept before they are purged. Default 7 days.
    pub dead_retention: Duration,
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions {
            lease: Duration::from_secs(30),
            max_deliveries: 10,
            max_age: Duration::from_secs(7 * 24 * 3600),
            payload_limit: 128 * 1024,
            dead_retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

impl QueueOptions {
    /// Sets the default lease of [`Queue::receive`].
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }
    /// Sets the deliveries allowed before dead-lettering.
    pub fn max_deliveries(mut self, n: u32) -> Self {
        self.max_deliveries = n;
        self
    }
    /// Sets the maximum age of a message.
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = age;
        self
    }
    /// Sets the payload limit in bytes.
    pub fn payload_limit(mut self, bytes: usize) -> Self {
        self.payload_limit = bytes;
        self
    }
    /// Sets how long dead letters are kept.
    pub fn dead_retention(mut self, keep: Duration) -> Self {
        self.dead_retention = keep;
        self
    }
}

/// State shared by every queue of one engine.
#[derive(Debug)]
pub(crate) struct QueueCore {
    pub(crate) store: Arc<Store>,
    pub(crate) timer: Timer,
    waiters: Mutex<HashMap<String, Arc<Notify>>>,
    /// Fires when the engine stops: waiting receivers return [`Error::Closed`].
    stop: tokio::sync::watch::Receiver<bool>,
}

impl QueueCore {
    pub(crate) fn new(store: Arc<Store>, stop: tokio::sync::watch::Receiver<bool>) -> Self {
        QueueCore {
            store,
            timer: Timer::new(None),
            waiters: Mutex::new(HashMap::new()),
            stop,
        }
    }

    fn waiter(&self, queue: &str) -> Arc<Notify> {
        let mut map = self
            .waiters
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        map.entry(queue.to_string())
            .or_insert_with(|| Arc::new(Notify::new()))
            .clone()
    }

    /// Wakes up to `n` receivers of `queue`.
    pub(crate) fn wake(&self, queue: &str, n: usize) {
        let notify = self.waiter(queue);
        for _ in 0..n {
            notify.notify_one();
        }
    }

    /// Schedules the wake-ups and timer changes a transition calls for, after the commit.
    fn after(self: &Arc<Self>, ctx: &mut crate::store::TxCtx<'_>, queue: &str, became: Became) {
        let core = self.clone();
        let queue = queue.to_string();
        match became {
            Became::Ready => ctx.after_commit(move || core.wake(&queue, 1)),
            Became::DelayedUntil(at) | Became::LeasedUntil(at) => {
                ctx.after_commit(move || core.timer.lower(at))
            }
            // A dead letter's purge is at least its retention away; the next pass finds it.
            Became::Dead | Became::Nothing => {}
        }
    }
}

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
/// assert!(delivery.ack().await?);
/// # engine.shutdown(std::time::Duration::from_secs(1)).await?; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Queue {
    name: Arc<str>,
    options: Arc<QueueOptions>,
    core: Arc<QueueCore>,
}

/// The result of a send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendReceipt {
    /// The message id.
    pub id: u64,
    /// True when the idempotency key matched a live message and nothing new was stored.
    pub deduplicated: bool,
}

/// A message as stored, for inspection.
#[derive(Debug, Clone, PartialEq, Eq)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Ready to deliver now.
    pub ready: u64,
    /// Waiting for their delay.
    pub delayed: u64,
    /// Delivered and leased.
    pub leased: u64,
    /// In the dead-letter list.
    pub dead: u64,
}

fn info(id: u64, m: MessageV1) -> MessageInfo {
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

const MAX_QUEUE_NAME: usize = 256;

/// Puts a payload stored apart into `m`, for a view of the message.
fn with_payload(rtx: &redb::ReadTransaction, id: u64, mut m: MessageV1) -> Result<MessageV1> {
    if m.payload_apart {
        let payloads = rtx.open_table(QUEUE_PAYLOADS)?;
        m.payload = crate::store::apart::read(&payloads, "queue_payloads", id)?;
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::record::{MessageState, MessageV1, StoredMessage, StoredMessageRef};
    use crate::store::codec::{decode, encode};

    #[test]
    fn borrowed_and_owned_records_encode_identically() {
        let m = MessageV1 {
            queue: "q".into(),
            payload: vec![1, 2, 3],
            priority: -2,
            key: Some("k".into()),
            enqueued_at: 7,
            max_age_ms: 9,
            max_deliveries: 10,
            dead_retention_ms: 11,
            deliveries: 1,
            state: MessageState::Leased { deadline: 99 },
            last_error: Some("e".into()),
            payload_apart: false,
        };
        let owned = encode(&StoredMessage::V2(m.clone(), false));
        assert_eq!(encode(&StoredMessageRef::new(&m)), owned);
        let back = decode::<StoredMessage>("t", &owned)
            .expect("decode")
            .into_message();
        assert_eq!(back.payload, m.payload);
        assert_eq!(back.state, m.state);
    }
}

/// Decodes a stored message record (for fuzzing the decoder).
#[cfg(feature = "testing")]
pub(crate) fn decode_message_record(bytes: &[u8]) -> Result<()> {
    decode::<StoredMessage>("queue_messages", bytes)?;
    Ok(())
}

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
    pub fn send(&self, payload: impl Into<Vec<u8>>) -> Send<'_> {
        Send {
            queue: self,
            payload: payload.into(),
            priority: 0,
            key: None,
            delay: None,
            at_ms: None,
        }
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
        let notify = self.core.waiter(&self.name);
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
        let core = self.core.clone();
        let name = self.name.clone();
        let taken = self
            .core
            .store
            .write(move |ctx| {
                let (taken, more) = ops::take(ctx, &name, lease_ms, max)?;
                if let Some(t) = taken.first() {
                    let (core, name, deadline) = (core.clone(), name.clone(), t.deadline);
                    ctx.after_commit(move || {
                        core.timer.lower(deadline);
                        // Pass the wake-up on: another receiver may be waiting for the rest.
                        if more {
                            core.wake(&name, 1);
                        }
                    });
                }
                Ok(taken)
            })
            .await?;
        Ok(taken
            .into_iter()
            .map(|t| Delivery {
                queue: self.clone(),
                id: t.id,
                payload: t.payload,
                deliveries: t.deliveries,
                deadline_ms: t.deadline,
            })
            .collect())
    }

    /// The message with this id, in any state, if it is still stored.
    pub fn get(&self, id: u64) -> Result<Option<MessageInfo>> {
        let found = self.core.store.read(|rtx| {
            let table = rtx.open_table(QUEUE_MESSAGES)?;
            match table.get(id)? {
                Some(bytes) => {
                    let m = decode::<StoredMessage>("queue_messages", bytes.value())?;
                    with_payload(rtx, id, m.into_message()).map(Some)
                }
                None => Ok(None),
            }
        })?;
        Ok(found.filter(|m| m.queue == *self.name).map(|m| info(id, m)))
    }

    /// Counts of this queue's messages by state. Counting delayed and leased messages reads
    /// every delayed and leased message of the file.
    pub fn stats(&self) -> Result<QueueStats> {
        let name: &str = &self.name;
        self.core.store.read(|rtx| {
            let mut stats = QueueStats::default();
            let ready = rtx.open_table(QUEUE_READY)?;
            stats.ready = ready
                .range((name, 0u32, 0u64)..=(name, u32::MAX, u64::MAX))?
                .count() as u64;
            let dead = rtx.open_table(QUEUE_DEAD)?;
            stats.dead = dead.range((name, 0u64)..=(name, u64::MAX))?.count() as u64;
            let messages = rtx.open_table(QUEUE_MESSAGES)?;
            let count_in = |table: redb::ReadOnlyTable<(u64, u64), ()>| -> Result<u64> {
                let mut n = 0;
                if table.len()? == 0 {
                    return Ok(0);
                }
                for entry in table.iter()? {
                    let id = entry?.0.value().1;
                    if let Some(bytes) = messages.get(id)? {
                        let m = decode::<StoredMessage>("queue_messages", bytes.value())?;
                        n += u64::from(m.into_message().queue == name);
                    }
                }
                Ok(n)
            };
            stats.delayed = count_in(rtx.open_table(QUEUE_DELAYED)?)?;
            stats.leased = count_in(rtx.open_table(QUEUE_LEASES)?)?;
            Ok(stats)
        })
    }

    /// The dead-letter list, oldest message first, at most `limit` entries.
    pub fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        let name: &str = &self.name;
        self.core.store.read(|rtx| {
            let dead = rtx.open_table(QUEUE_DEAD)?;
            let messages = rtx.open_table(QUEUE_MESSAGES)?;
            let mut out = Vec::new();
            for entry in dead.range((name, 0u64)..=(name, u64::MAX))?.take(limit) {
                let id = entry?.0.value().1;
                let Some(bytes) = messages.get(id)? else {
                    continue;
                };
                let m = decode::<StoredMessage>("queue_messages", bytes.value())?.into_message();
                if let MessageState::Dead { reason, at, .. } = m.state {
                    let m = with_payload(rtx, id, m)?;
                    out.push(DeadLetter {
                        id,
                        payload: m.payload,
                        reason,
                        last_error: m.last_error,
                        deliveries: m.deliveries,
                        dead_at_ms: at,
                    });
                }
            }
            Ok(out)
        })
    }

    /// Puts a dead letter back in line with a fresh delivery budget and age.
    /// Returns false if this queue has no dead letter with that id.
    pub async fn requeue_dead(&self, id: u64) -> Result<bool> {
        let core = self.core.clone();
        let name = self.name.clone();
        self.core
            .store
            .write(move |ctx| {
                let requeued = ops::requeue_dead(ctx, &name, id)?;
                if let Some(expires_at) = requeued {
                    core.after(ctx, &name, Became::Ready);
                    let core = core.clone();
                    ctx.after_commit(move || core.timer.lower(expires_at));
                }
                Ok(requeued.is_some())
            })
            .await
    }

    /// Deletes one dead letter. Returns false if this queue has no dead letter with that id.
    pub async fn delete_dead(&self, id: u64) -> Result<bool> {
        let name = self.name.clone();
        self.core
            .store
            .write(move |ctx| ops::delete_dead(ctx, &name, id))
            .await
    }

    /// Deletes every dead letter of this queue; returns how many.
    pub async fn purge_dead(&self) -> Result<u64> {
        let mut total = 0u64;
        loop {
            let name = self.name.clone();
            let n = self
                .core
                .store
                .write(move |ctx| ops::purge_dead(ctx, &name, 1_000))
                .await?;
            total += n as u64;
            if n < 1_000 {
                return Ok(total);
            }
        }
    }
}

/// A send being prepared; `.await` it to store the message.
#[must_use = "a send does nothing until it is awaited"]
#[derive(Debug)]
pub struct Send<'q> {
    queue: &'q Queue,
    payload: Vec<u8>,
    priority: i32,
    key: Option<String>,
    delay: Option<Duration>,
    at_ms: Option<u64>,
}

impl Send<'_> {
    /// Higher priorities are delivered first; FIFO within one priority. Default 0.
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// An idempotency key: while a message sent with this key is stored (in line, leased or
    /// dead-lettered), sending again with it returns that message's id and stores nothing.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Makes the message ready only after `delay`.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Makes the message ready at `at_ms` (ms since the epoch). Wins over [`Send::delay`].
    pub fn at_ms(mut self, at_ms: u64) -> Self {
        self.at_ms = Some(at_ms);
        self
    }

    /// Makes the message ready at `at`. Wins over [`Send::delay`].
    pub fn at(self, at: SystemTime) -> Self {
        let ms = at.duration_since(UNIX_EPOCH).map(millis).unwrap_or(0);
        self.at_ms(ms)
    }

    async fn run(self) -> Result<SendReceipt> {
        let q = self.queue;
        let limit = q.options.payload_limit;
        if self.payload.len() > limit {
            return Err(Error::PayloadTooLarge {
                size: self.payload.len(),
                limit,
            });
        }
        if let Some(key) = &self.key
            && (key.is_empty() || key.len() > 1024)
        {
            return Err(Error::invalid(
                "idempotency key",
                format!("must be 1 to 1024 bytes, got {}", key.len()),
            ));
        }
        let now = q.core.store.clock().now_ms();
        let available_at = self
            .at_ms
            .or_else(|| self.delay.map(|d| now.saturating_add(millis(d))));
        let new = NewMessage {
            queue: q.name.to_string(),
            payload: self.payload,
            priority: self.priority,
            key: self.key,
            available_at,
            max_age_ms: millis(q.options.max_age),
            max_deliveries: q.options.max_deliveries,
            dead_retention_ms: millis(q.options.dead_retention),
        };
        let core = q.core.clone();
        let sent = q
            .core
            .store
            .write(move |ctx| {
                let sent = ops::send(ctx, &new)?;
                core.after(ctx, &new.queue, sent.became);
                if !sent.deduplicated {
                    let expires_at = ctx.now.saturating_add(new.max_age_ms);
                    let core = core.clone();
                    ctx.after_commit(move || core.timer.lower(expires_at));
                }
                Ok(sent)
            })
            .await?;
        Ok(SendReceipt {
            id: sent.id,
            deduplicated: sent.deduplicated,
        })
    }
}

impl<'q> IntoFuture for Send<'q> {
    type Output = Result<SendReceipt>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<SendReceipt>> + std::marker::Send + 'q>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

/// A leased message. Settle it with [`ack`](Delivery::ack), [`nack`](Delivery::nack) or
/// [`dead_letter`](Delivery::dead_letter); each returns whether this delivery still owned the
/// message (false once its lease ran out, even if no one else has taken it yet).
#[derive(Debug, Clone)]
pub struct Delivery {
    queue: Queue,
    id: u64,
    payload: Vec<u8>,
    deliveries: u32,
    deadline_ms: u64,
}

impl Delivery {
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
        let (name, id, no) = (self.queue.name.clone(), self.id, self.deliveries);
        self.queue
            .core
            .store
            .write(move |ctx| ops::ack(ctx, &name, id, no))
            .await
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
        let core = self.queue.core.clone();
        let (name, id, no) = (self.queue.name.clone(), self.id, self.deliveries);
        let delay_ms = millis(delay);
        self.queue
            .core
            .store
            .write(move |ctx| {
                let became = ops::nack(ctx, &name, id, no, delay_ms, error.as_deref())?;
                if let Some(b) = became {
                    core.after(ctx, &name, b);
                }
                Ok(became.is_some())
            })
            .await
    }

    /// Extends the lease to `lease` from now. Returns whether this delivery still owned it.
    pub async fn extend(&mut self, lease: Duration) -> Result<bool> {
        let core = self.queue.core.clone();
        let (name, id, no) = (self.queue.name.clone(), self.id, self.deliveries);
        let lease_ms = millis(lease).max(1);
        let deadline = self
            .queue
            .core
            .store
            .write(move |ctx| {
                let deadline = ops::extend(ctx, &name, id, no, lease_ms)?;
                if let Some(d) = deadline {
                    core.after(ctx, &name, Became::LeasedUntil(d));
                }
                Ok(deadline)
            })
            .await?;
        if let Some(d) = deadline {
            self.deadline_ms = d;
        }
        Ok(deadline.is_some())
    }

    /// Moves the message to the dead-letter list at once (reason `nacked`), recording `error`.
    /// Returns whether this delivery still owned it.
    pub async fn dead_letter(&self, error: impl Into<String>) -> Result<bool> {
        let (name, id, no) = (self.queue.name.clone(), self.id, self.deliveries);
        let error = error.into();
        self.queue
            .core
            .store
            .write(move |ctx| ops::dead_letter(ctx, &name, id, no, &error))
            .await
    }
}
