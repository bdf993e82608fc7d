//! The queue over the embedded file: each operation is one op of [`ops`](super::ops) sent to
//! the writer (batched with others into one commit), and each read one read transaction.
//! Receivers and the queue's timer are told after the commit.

use std::sync::Arc;

use redb::ReadableTable;

use super::info::{DeadLetter, MessageInfo, QueueStats, QueueSummary, SendReceipt, info};
use super::ops;
use super::record::{MessageState, MessageV1, StoredMessage};
use super::rows::{Became, TALLY_PREFIX};
use super::storage::{DeliveryClaim, NewMessage, QueueNack, QueueStorage, Taken};
use super::tables::{QUEUE_DEAD, QUEUE_MESSAGES, QUEUE_PAUSED, QUEUE_PAYLOADS};
use crate::error::Result;
use crate::store::codec::decode;
use crate::store::{Store, TxCtx};
use crate::timer::Timer;
use crate::wakeups::Wakeups;

/// Maintenance messages handled per op and kind; more remaining makes the next pass run at once.
const PASS_LIMIT: usize = 1_000;

/// The queue's storage in the file.
#[derive(Debug)]
pub(crate) struct RedbQueue {
    store: Arc<Store>,
    /// The receivers waiting on each queue, woken after the commit that made messages ready.
    receivers: Arc<Wakeups<String>>,
    /// When the next timed work is due.
    pub(crate) timer: Arc<Timer>,
}

impl RedbQueue {
    pub(crate) fn new(store: Arc<Store>, receivers: Arc<Wakeups<String>>) -> Self {
        RedbQueue {
            store,
            receivers,
            timer: Arc::new(Timer::new(None)),
        }
    }

    /// At open, in the transaction that starts the epoch: redelivers what the previous process
    /// had leased, and does the timed work that came due while no process held the file.
    pub(crate) fn recover(&self, ctx: &mut TxCtx<'_>, epoch: u64) -> Result<()> {
        let redelivered = ops::recover::recover(ctx)?;
        if redelivered > 0 {
            tracing::info!(
                epoch,
                redelivered,
                "redelivered messages leased by the previous process"
            );
        }
        if let Some(at) = ops::maintain::maintain(ctx, usize::MAX)?.next_deadline {
            self.timer.lower(at);
        }
        Ok(())
    }

    /// Schedules the wake-ups and timer changes a transition calls for, after the commit.
    fn after(&self, ctx: &mut TxCtx<'_>, queue: &str, became: Became) {
        match became {
            Became::Ready => {
                let (receivers, queue) = (self.receivers.clone(), queue.to_string());
                ctx.after_commit(move || receivers.wake(queue.as_str(), 1));
            }
            Became::DelayedUntil(at) | Became::LeasedUntil(at) => {
                let timer = self.timer.clone();
                ctx.after_commit(move || timer.lower(at));
            }
            // A dead letter's purge is at least its retention away; the next pass finds it.
            Became::Dead | Became::Nothing => {}
        }
    }

    /// Sends `f` to the writer with a handle on this backend for its after-commit hooks.
    async fn write<T, F>(&self, mut f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnMut(&mut TxCtx<'_>, &RedbQueue) -> Result<T> + Send + 'static,
    {
        let this = RedbQueue {
            store: self.store.clone(),
            receivers: self.receivers.clone(),
            timer: self.timer.clone(),
        };
        self.store.write(move |ctx| f(ctx, &this)).await
    }
}

impl QueueStorage for RedbQueue {
    async fn send(&self, new: NewMessage) -> Result<SendReceipt> {
        let sent = self
            .write(move |ctx, this| {
                let sent = ops::send::send(ctx, &new)?;
                this.after(ctx, &new.queue, sent.became);
                if !sent.deduplicated {
                    let expires_at = ctx.now.saturating_add(new.max_age_ms);
                    let timer = this.timer.clone();
                    ctx.after_commit(move || timer.lower(expires_at));
                }
                Ok(sent)
            })
            .await?;
        Ok(SendReceipt {
            id: sent.id,
            deduplicated: sent.deduplicated,
        })
    }

    async fn take(&self, queue: &str, max: usize, lease_ms: u64) -> Result<Vec<Taken>> {
        let queue = queue.to_string();
        self.write(move |ctx, this| {
            let (taken, more) = ops::take::take(ctx, &queue, lease_ms, max)?;
            if let Some(t) = taken.first() {
                let (timer, deadline) = (this.timer.clone(), t.deadline);
                let (receivers, queue) = (this.receivers.clone(), queue.clone());
                ctx.after_commit(move || {
                    timer.lower(deadline);
                    // Pass the wake-up on: another receiver may be waiting for the rest.
                    if more {
                        receivers.wake(queue.as_str(), 1);
                    }
                });
            }
            Ok(taken)
        })
        .await
    }

    async fn ack(&self, claim: DeliveryClaim) -> Result<bool> {
        self.write(move |ctx, _| ops::ack::ack(ctx, &claim.queue, claim.id, claim.delivery))
            .await
    }

    async fn nack(&self, nack: QueueNack) -> Result<bool> {
        self.write(move |ctx, this| {
            let claim = &nack.claim;
            let became = ops::nack::nack(
                ctx,
                &claim.queue,
                claim.id,
                claim.delivery,
                nack.delay_ms,
                nack.error.as_deref(),
            )?;
            if let Some(b) = became {
                this.after(ctx, &claim.queue, b);
            }
            Ok(became.is_some())
        })
        .await
    }

    async fn extend(&self, claim: DeliveryClaim, lease_ms: u64) -> Result<Option<u64>> {
        self.write(move |ctx, this| {
            let deadline =
                ops::extend::extend(ctx, &claim.queue, claim.id, claim.delivery, lease_ms)?;
            if let Some(d) = deadline {
                this.after(ctx, &claim.queue, Became::LeasedUntil(d));
            }
            Ok(deadline)
        })
        .await
    }

    async fn dead_letter(&self, claim: DeliveryClaim, error: String) -> Result<bool> {
        self.write(move |ctx, _| {
            ops::dead_letter::dead_letter(ctx, &claim.queue, claim.id, claim.delivery, &error)
        })
        .await
    }

    async fn set_paused(&self, queue: &str, paused: bool) -> Result<bool> {
        let queue = queue.to_string();
        self.write(move |ctx, this| {
            let changed = ops::pause::set_paused(ctx, &queue, paused)?;
            if changed && !paused {
                let (receivers, queue) = (this.receivers.clone(), queue.clone());
                ctx.after_commit(move || receivers.wake_all(queue.as_str()));
            }
            Ok(changed)
        })
        .await
    }

    async fn requeue_dead(&self, queue: &str, id: u64) -> Result<bool> {
        let queue = queue.to_string();
        self.write(move |ctx, this| {
            let requeued = ops::dead::requeue_dead(ctx, &queue, id)?;
            if let Some(expires_at) = requeued {
                this.after(ctx, &queue, Became::Ready);
                let timer = this.timer.clone();
                ctx.after_commit(move || timer.lower(expires_at));
            }
            Ok(requeued.is_some())
        })
        .await
    }

    async fn requeue_dead_batch(&self, queue: &str, limit: usize) -> Result<usize> {
        let queue = queue.to_string();
        self.write(move |ctx, this| {
            let (n, earliest) = ops::dead::requeue_dead_batch(ctx, &queue, limit)?;
            if let Some(expires_at) = earliest {
                this.after(ctx, &queue, Became::Ready);
                let timer = this.timer.clone();
                ctx.after_commit(move || timer.lower(expires_at));
            }
            Ok(n)
        })
        .await
    }

    async fn delete_dead(&self, queue: &str, id: u64) -> Result<bool> {
        let queue = queue.to_string();
        self.write(move |ctx, _| ops::dead::delete_dead(ctx, &queue, id))
            .await
    }

    async fn purge_dead(&self, queue: &str, limit: usize) -> Result<usize> {
        let queue = queue.to_string();
        self.write(move |ctx, _| ops::dead::purge_dead(ctx, &queue, limit))
            .await
    }

    async fn get(&self, queue: &str, id: u64) -> Result<Option<MessageInfo>> {
        let found = self.store.read(|rtx| {
            let table = rtx.open_table(QUEUE_MESSAGES)?;
            match table.get(id)? {
                Some(bytes) => {
                    let m = decode::<StoredMessage>("queue_messages", bytes.value())?;
                    with_payload(rtx, id, m.into_message()).map(Some)
                }
                None => Ok(None),
            }
        })?;
        Ok(found.filter(|m| m.queue == queue).map(|m| info(id, m)))
    }

    /// Counting delayed and leased messages reads every delayed and leased message of the file.
    /// Read from the tallies the state changes keep: as cheap with a million messages as
    /// with ten.
    async fn stats(&self, queue: &str) -> Result<QueueStats> {
        self.store.read(|rtx| {
            let counter = crate::store::meta::read_counters(rtx)?;
            let mut stats = QueueStats::default();
            for state in ["ready", "delayed", "leased", "dead"] {
                stats.add(state, counter(&format!("{TALLY_PREFIX}{state}:{queue}"))?);
            }
            stats.paused = rtx.open_table(QUEUE_PAUSED)?.get(queue)?.is_some();
            Ok(stats)
        })
    }

    async fn queues(&self) -> Result<Vec<QueueSummary>> {
        let (tallies, paused) = self.store.read(|rtx| {
            let tallies = crate::store::meta::read_prefixed(rtx, TALLY_PREFIX)?;
            let paused = rtx
                .open_table(QUEUE_PAUSED)?
                .iter()?
                .map(|e| e.map(|(k, _)| k.value().to_string()))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            Ok((tallies, paused))
        })?;
        let mut by_name: std::collections::BTreeMap<String, QueueStats> = Default::default();
        for (key, n) in tallies {
            if let Some((state, name)) = key.split_once(':')
                && n > 0
            {
                by_name.entry(name.to_string()).or_default().add(state, n);
            }
        }
        for name in paused {
            by_name.entry(name).or_default().paused = true;
        }
        Ok(by_name
            .into_iter()
            .map(|(name, stats)| QueueSummary { name, stats })
            .collect())
    }

    async fn dead_letters(&self, queue: &str, limit: usize) -> Result<Vec<DeadLetter>> {
        self.store.read(|rtx| {
            let dead = rtx.open_table(QUEUE_DEAD)?;
            let messages = rtx.open_table(QUEUE_MESSAGES)?;
            let mut out = Vec::new();
            for entry in dead.range((queue, 0u64)..=(queue, u64::MAX))?.take(limit) {
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

    /// Does what is due and wakes receivers after the commit.
    async fn maintain(&self) -> Result<Option<u64>> {
        self.write(move |ctx, this| {
            let done = ops::maintain::maintain(ctx, PASS_LIMIT)?;
            let (receivers, ready) = (this.receivers.clone(), done.ready.clone());
            ctx.after_commit(move || {
                for (queue, n) in ready {
                    receivers.wake(queue.as_str(), n);
                }
            });
            Ok(done.next_deadline)
        })
        .await
    }
}

/// Puts a payload stored apart into `m`, for a view of the message.
fn with_payload(rtx: &redb::ReadTransaction, id: u64, mut m: MessageV1) -> Result<MessageV1> {
    if m.payload_apart {
        let payloads = rtx.open_table(QUEUE_PAYLOADS)?;
        m.payload = crate::store::apart::read(&payloads, "queue_payloads", id)?;
    }
    Ok(m)
}
