//! The queue on PostgreSQL: one `queue_messages` row per message holding the same record as
//! the file, with the columns its indexes need. Receives take ready rows with `FOR UPDATE SKIP
//! LOCKED`; a delivery proves it still owns its message by (message, delivery number) as in
//! the file; messages leased by a node found dead are redelivered by the next pass.

use std::sync::Arc;

use deadpool_postgres::Transaction;

use super::info::{DeadLetter, MessageInfo, QueueStats, QueueSummary, SendReceipt, info};
use super::record::{DeadReason, MessageState, MessageV1, StoredMessage, StoredMessageRef};
use super::storage::{DeliveryClaim, NewMessage, QueueNack, QueueStorage, Taken};
use crate::clock::Clock;
use crate::error::Result;
use crate::postgres::{
    Cached, Grouped, Postgres, begin, commit, notify, pg_error, pg_limit, pg_ms,
};
use crate::store::codec::{decode, encode};
use crate::timer::Timer;
use crate::wakeups::Wakeups;

/// The channel that says which queues gained ready messages (names, one per line).
pub(crate) const QUEUE_CHANNEL: &str = "jobfile_queue";

/// Messages handled per kind of timed work in one pass.
const PASS_LIMIT: i64 = 1_000;

/// How often the pass runs at the latest, to see work other nodes made due.
const POLL_MS: u64 = 1_000;

/// State codes of the `state` column.
const DELAYED: i16 = 0;
const READY: i16 = 1;
const LEASED: i16 = 2;
const DEAD: i16 = 3;

/// The queue's storage in a PostgreSQL schema.
pub(crate) struct PgQueue {
    pg: Postgres,
    node: i64,
    /// The engine's clock when it was given one (tests); the database clock otherwise.
    clock: Option<Arc<dyn Clock>>,
    receivers: Arc<Wakeups<String>>,
    pub(crate) timer: Arc<Timer>,
    /// One timed pass at a time in this process (see the job backend's).
    passes: tokio::sync::Mutex<()>,
    /// Sends made together share one transaction; so do acks.
    sends: Grouped<NewMessage, SendReceipt>,
    acks: Grouped<DeliveryClaim, bool>,
}

impl std::fmt::Debug for PgQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgQueue")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

/// One write transaction on messages, and what to do after its commit.
struct QTx<'a> {
    tx: Transaction<'a>,
    now: u64,
    node: i64,
    /// Queues that gained ready messages.
    ready: Vec<String>,
    /// The earliest new deadline for the timer.
    deadline: Option<u64>,
}

impl<'a> QTx<'a> {
    async fn begin(
        client: &'a mut deadpool_postgres::Object,
        now: Option<u64>,
        node: i64,
    ) -> Result<QTx<'a>> {
        let (tx, now) = begin(client, now, "a queue write").await?;
        Ok(QTx {
            tx,
            now,
            node,
            ready: Vec::new(),
            deadline: None,
        })
    }

    fn lower(&mut self, at: u64) {
        self.deadline = Some(self.deadline.map_or(at, |d| d.min(at)));
    }

    async fn load(&self, id: u64) -> Result<Option<MessageV1>> {
        let row = self
            .tx
            .query_opt_cached(
                "SELECT record FROM queue_messages WHERE id = $1 FOR UPDATE",
                &[&(id as i64)],
            )
            .await
            .map_err(|e| pg_error("loading a message", e))?;
        row.map(|r| {
            decode::<StoredMessage>("queue_messages", r.get(0)).map(StoredMessage::into_message)
        })
        .transpose()
    }

    /// The message if `delivery` still owns its lease now. A lease of a node found dead (or
    /// gone) is owned by no one from the moment it was found (the next pass delivers it again).
    async fn owned(&self, claim: &DeliveryClaim) -> Result<Option<MessageV1>> {
        let row = self
            .tx
            .query_opt_cached(
                "SELECT record FROM queue_messages
                 WHERE id = $1 AND (node IS NULL OR node NOT IN (SELECT id FROM nodes WHERE state <> 'live'))
                 FOR UPDATE",
                &[&(claim.id as i64)],
            )
            .await
            .map_err(|e| pg_error("loading a message", e))?;
        let Some(m) = row
            .map(|r| {
                decode::<StoredMessage>("queue_messages", r.get(0)).map(StoredMessage::into_message)
            })
            .transpose()?
        else {
            return Ok(None);
        };
        let live = matches!(m.state, MessageState::Leased { deadline } if deadline > self.now);
        Ok((live && m.deliveries == claim.delivery && m.queue == claim.queue).then_some(m))
    }

    /// Writes the record and its derived columns; `ready_again`: it joins the back of its line.
    async fn save(&mut self, id: u64, m: &MessageV1, ready_again: bool) -> Result<()> {
        let (state, due_at, expires_at, node) = match m.state {
            MessageState::Ready { .. } => (READY, None, Some(m.expires_at() as i64), None),
            MessageState::Delayed { until } => (
                DELAYED,
                Some(until as i64),
                Some(m.expires_at() as i64),
                None,
            ),
            MessageState::Leased { deadline } => {
                (LEASED, Some(deadline as i64), None, Some(self.node))
            }
            MessageState::Dead { purge_at, .. } => (DEAD, Some(purge_at as i64), None, None),
        };
        if ready_again {
            self.ready.push(m.queue.clone());
        }
        if let Some(at) = due_at.into_iter().chain(expires_at).min() {
            self.lower(at as u64);
        }
        self.tx
            .execute_cached(
                "UPDATE queue_messages SET record = $2, state = $3, due_at = $4, expires_at = $5,
                        node = $6,
                        ready_seq = CASE WHEN $7 THEN nextval('queue_ready_seq') ELSE ready_seq END
                 WHERE id = $1",
                &[
                    &(id as i64),
                    &encode(&StoredMessageRef::new(m)),
                    &state,
                    &due_at,
                    &expires_at,
                    &node,
                    &ready_again,
                ],
            )
            .await
            .map_err(|e| pg_error("saving a message", e))?;
        Ok(())
    }

    async fn enter_ready(&mut self, id: u64, m: &mut MessageV1) -> Result<()> {
        m.state = MessageState::Ready { seq: 0 };
        self.save(id, m, true).await
    }

    async fn enter_dead(&mut self, id: u64, m: &mut MessageV1, reason: DeadReason) -> Result<()> {
        let at = self.now;
        m.state = MessageState::Dead {
            reason,
            at,
            purge_at: at.saturating_add(m.dead_retention_ms),
        };
        self.save(id, m, false).await
    }

    /// Back in line after a delivery ended without an ack (after `delay_until` if given), or
    /// to the dead-letter list when out of deliveries or too old.
    async fn redeliver_or_bury(
        &mut self,
        id: u64,
        m: &mut MessageV1,
        delay_until: Option<u64>,
    ) -> Result<()> {
        if m.expired(self.now) {
            self.enter_dead(id, m, DeadReason::Expired).await
        } else if m.deliveries >= m.max_deliveries {
            self.enter_dead(id, m, DeadReason::MaxDeliveries).await
        } else {
            match delay_until {
                Some(until) if until > self.now => {
                    m.state = MessageState::Delayed { until };
                    self.save(id, m, false).await
                }
                _ => self.enter_ready(id, m).await,
            }
        }
    }

    async fn delete(&self, ids: &[i64]) -> Result<u64> {
        self.tx
            .execute_cached("DELETE FROM queue_messages WHERE id = ANY($1)", &[&ids])
            .await
            .map_err(|e| pg_error("deleting messages", e))
    }

    /// Rows of `sql` (selecting `id, record`), decoded.
    async fn messages(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<(u64, MessageV1)>> {
        let rows = self
            .tx
            .query(sql, params)
            .await
            .map_err(|e| pg_error("reading messages", e))?;
        rows.iter()
            .map(|r| {
                let m = decode::<StoredMessage>("queue_messages", r.get(1))?.into_message();
                Ok((r.get::<_, i64>(0) as u64, m))
            })
            .collect()
    }
}

impl PgQueue {
    pub(crate) fn new(
        pg: Postgres,
        node: i64,
        clock: Option<Arc<dyn Clock>>,
        receivers: Arc<Wakeups<String>>,
    ) -> Self {
        PgQueue {
            pg,
            node,
            clock,
            receivers,
            timer: Arc::new(Timer::new(Some(0))),
            passes: tokio::sync::Mutex::new(()),
            sends: Grouped::default(),
            acks: Grouped::default(),
        }
    }

    /// Runs one write; after the commit, wakes receivers and lowers the timer.
    async fn write<T>(&self, f: impl AsyncFnOnce(&mut QTx<'_>) -> Result<T>) -> Result<T> {
        let mut client = self.pg.client().await?;
        let mut tx = QTx::begin(
            &mut client,
            self.clock.as_ref().map(|c| c.now_ms()),
            self.node,
        )
        .await?;
        let out = f(&mut tx).await?;
        let QTx {
            tx,
            mut ready,
            deadline,
            ..
        } = tx;
        ready.sort();
        ready.dedup();
        if !ready.is_empty() && self.pg.others_live() {
            notify(&tx, QUEUE_CHANNEL, self.node, &ready).await?;
        }
        commit(tx, "a queue write").await?;
        for queue in &ready {
            self.receivers.wake(queue.as_str(), 1);
        }
        if let Some(at) = deadline {
            self.timer.lower(at);
        }
        Ok(out)
    }

    fn now_or_system(&self) -> u64 {
        self.clock
            .as_ref()
            .map_or_else(|| crate::clock::SystemClock.now_ms(), |c| c.now_ms())
    }
}

impl QueueStorage for PgQueue {
    async fn send(&self, new: NewMessage) -> Result<SendReceipt> {
        self.sends.run(new, |items| self.send_many(items)).await
    }

    async fn take(&self, queue: &str, max: usize, lease_ms: u64) -> Result<Vec<Taken>> {
        let queue = queue.to_string();
        let (taken, more) = self
            .write(async |tx| {
                let mut out = Vec::new();
                while out.len() < max {
                    let want = (max - out.len()) as i64;
                    let rows = tx
                        .messages(
                            "SELECT id, record FROM queue_messages WHERE state = 1 AND queue = $1
                               AND NOT EXISTS (SELECT 1 FROM queue_paused WHERE name = $1)
                             ORDER BY priority DESC, ready_seq LIMIT $2 FOR UPDATE SKIP LOCKED",
                            &[&queue, &want],
                        )
                        .await?;
                    if rows.is_empty() {
                        break;
                    }
                    for (id, mut m) in rows {
                        if m.expired(tx.now) {
                            tx.enter_dead(id, &mut m, DeadReason::Expired).await?;
                            continue;
                        }
                        let deadline = tx.now.saturating_add(lease_ms);
                        m.deliveries += 1;
                        m.state = MessageState::Leased { deadline };
                        tx.save(id, &m, false).await?;
                        out.push(Taken {
                            id,
                            deliveries: m.deliveries,
                            payload: m.payload,
                            deadline,
                        });
                    }
                }
                let more = tx
                    .tx
                    .query_one_cached(
                        "SELECT EXISTS (SELECT 1 FROM queue_messages WHERE state = 1 AND queue = $1)
                           AND NOT EXISTS (SELECT 1 FROM queue_paused WHERE name = $1)",
                        &[&queue],
                    )
                    .await
                    .map_err(|e| pg_error("looking for ready messages", e))?
                    .get::<_, bool>(0);
                Ok((out, more))
            })
            .await?;
        if more && !taken.is_empty() {
            // Pass the wake-up on: another receiver may be waiting for the rest.
            self.receivers.wake(queue.as_str(), 1);
        }
        Ok(taken)
    }

    async fn set_paused(&self, queue: &str, paused: bool) -> Result<bool> {
        let queue = queue.to_string();
        let changed = self
            .write(async |tx| {
                let failed = |e| pg_error("pausing or resuming a queue", e);
                let changed = if paused {
                    tx.tx
                        .execute_cached(
                            "INSERT INTO queue_paused (name, paused_at) VALUES ($1, $2)
                             ON CONFLICT (name) DO NOTHING",
                            &[&queue, &pg_ms(tx.now)],
                        )
                        .await
                        .map_err(failed)?
                } else {
                    tx.tx
                        .execute_cached("DELETE FROM queue_paused WHERE name = $1", &[&queue])
                        .await
                        .map_err(failed)?
                } > 0;
                if changed && !paused {
                    // Receivers on other nodes look again at the commit.
                    tx.ready.push(queue.clone());
                }
                Ok(changed)
            })
            .await?;
        if changed && !paused {
            self.receivers.wake_all(queue.as_str());
        }
        Ok(changed)
    }

    async fn ack(&self, claim: DeliveryClaim) -> Result<bool> {
        self.acks.run(claim, |claims| self.ack_many(claims)).await
    }

    async fn nack(&self, nack: QueueNack) -> Result<bool> {
        self.write(async |tx| {
            let Some(mut m) = tx.owned(&nack.claim).await? else {
                return Ok(false);
            };
            if let Some(e) = &nack.error {
                m.last_error = Some(e.clone());
            }
            let until = tx.now.saturating_add(nack.delay_ms);
            tx.redeliver_or_bury(nack.claim.id, &mut m, Some(until))
                .await?;
            Ok(true)
        })
        .await
    }

    async fn extend(&self, claim: DeliveryClaim, lease_ms: u64) -> Result<Option<u64>> {
        self.write(async |tx| {
            let Some(mut m) = tx.owned(&claim).await? else {
                return Ok(None);
            };
            let deadline = tx.now.saturating_add(lease_ms);
            m.state = MessageState::Leased { deadline };
            tx.save(claim.id, &m, false).await?;
            Ok(Some(deadline))
        })
        .await
    }

    async fn dead_letter(&self, claim: DeliveryClaim, error: String) -> Result<bool> {
        self.write(async |tx| {
            let Some(mut m) = tx.owned(&claim).await? else {
                return Ok(false);
            };
            m.last_error = Some(error.clone());
            tx.enter_dead(claim.id, &mut m, DeadReason::Nacked).await?;
            Ok(true)
        })
        .await
    }

    async fn requeue_dead(&self, queue: &str, id: u64) -> Result<bool> {
        self.write(async |tx| requeue_one(tx, queue, id).await)
            .await
    }

    async fn requeue_dead_batch(&self, queue: &str, limit: usize) -> Result<usize> {
        self.write(async |tx| {
            let ids: Vec<i64> = tx
                .tx
                .query_cached(
                    "SELECT id FROM queue_messages WHERE state = 3 AND queue = $1 ORDER BY id LIMIT $2",
                    &[&queue, &pg_limit(limit)],
                )
                .await
                .map_err(|e| pg_error("finding dead letters", e))?
                .iter()
                .map(|r| r.get(0))
                .collect();
            for &id in &ids {
                requeue_one(tx, queue, id as u64).await?;
            }
            Ok(ids.len())
        })
        .await
    }

    async fn delete_dead(&self, queue: &str, id: u64) -> Result<bool> {
        self.write(async |tx| {
            let n = tx
                .tx
                .execute_cached(
                    "DELETE FROM queue_messages WHERE id = $1 AND queue = $2 AND state = 3",
                    &[&(id as i64), &queue],
                )
                .await
                .map_err(|e| pg_error("deleting a dead letter", e))?;
            Ok(n == 1)
        })
        .await
    }

    async fn purge_dead(&self, queue: &str, limit: usize) -> Result<usize> {
        self.write(async |tx| {
            let n = tx
                .tx
                .execute_cached(
                    "DELETE FROM queue_messages WHERE id IN (
                         SELECT id FROM queue_messages WHERE state = 3 AND queue = $1
                         ORDER BY id LIMIT $2 FOR UPDATE)",
                    &[&queue, &pg_limit(limit)],
                )
                .await
                .map_err(|e| pg_error("purging dead letters", e))?;
            Ok(n as usize)
        })
        .await
    }

    async fn get(&self, queue: &str, id: u64) -> Result<Option<MessageInfo>> {
        let client = self.pg.client().await?;
        let row = client
            .query_opt_cached(
                "SELECT record FROM queue_messages WHERE id = $1 AND queue = $2",
                &[&(id as i64), &queue],
            )
            .await
            .map_err(|e| pg_error("reading a message", e))?;
        row.map(|r| {
            let m = decode::<StoredMessage>("queue_messages", r.get(0))?.into_message();
            Ok(info(id, m))
        })
        .transpose()
    }

    async fn stats(&self, queue: &str) -> Result<QueueStats> {
        let client = self.pg.client().await?;
        let rows = client
            .query_cached(
                "SELECT state, count(*) FROM queue_messages WHERE queue = $1 GROUP BY state
                 UNION ALL SELECT (-1)::smallint, 0::bigint FROM queue_paused WHERE name = $1",
                &[&queue],
            )
            .await
            .map_err(|e| pg_error("counting messages", e))?;
        let mut stats = QueueStats::default();
        for row in rows {
            match row.get::<_, i16>(0) {
                -1 => stats.paused = true,
                code => stats.add(state_name(code), row.get::<_, i64>(1) as u64),
            }
        }
        Ok(stats)
    }

    async fn queues(&self) -> Result<Vec<QueueSummary>> {
        let client = self.pg.client().await?;
        let rows = client
            .query_cached(
                "SELECT queue, state, count(*) FROM queue_messages GROUP BY queue, state
                 UNION ALL SELECT name, (-1)::smallint, 0::bigint FROM queue_paused",
                &[],
            )
            .await
            .map_err(|e| pg_error("counting messages", e))?;
        let mut by_name: std::collections::BTreeMap<String, QueueStats> = Default::default();
        for row in rows {
            let stats = by_name.entry(row.get(0)).or_default();
            match row.get::<_, i16>(1) {
                -1 => stats.paused = true,
                code => stats.add(state_name(code), row.get::<_, i64>(2) as u64),
            }
        }
        Ok(by_name
            .into_iter()
            .map(|(name, stats)| QueueSummary { name, stats })
            .collect())
    }

    async fn dead_letters(&self, queue: &str, limit: usize) -> Result<Vec<DeadLetter>> {
        let client = self.pg.client().await?;
        let rows = client
            .query_cached(
                "SELECT id, record FROM queue_messages WHERE state = 3 AND queue = $1 ORDER BY id LIMIT $2",
                &[&queue, &pg_limit(limit)],
            )
            .await
            .map_err(|e| pg_error("reading dead letters", e))?;
        let mut out = Vec::new();
        for row in rows {
            let id = row.get::<_, i64>(0) as u64;
            let m = decode::<StoredMessage>("queue_messages", row.get(1))?.into_message();
            if let MessageState::Dead { reason, at, .. } = m.state {
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
    }

    async fn maintain(&self) -> Result<Option<u64>> {
        let _one = self.passes.lock().await;
        let next = self
            .write(async |tx| {
                let now = tx.now as i64;
                // Leases of nodes found dead end at once; others when they run out.
                let ended = tx
                    .messages(
                        "SELECT id, record FROM queue_messages
                         WHERE state = 2 AND (due_at <= $1 OR node IN (SELECT id FROM nodes WHERE state <> 'live'))
                         ORDER BY due_at, id LIMIT $2 FOR UPDATE SKIP LOCKED",
                        &[&now, &PASS_LIMIT],
                    )
                    .await?;
                for (id, mut m) in ended {
                    let MessageState::Leased { deadline } = m.state else { continue };
                    m.last_error = Some(if deadline <= tx.now {
                        "lease expired".to_string()
                    } else {
                        "the process holding the lease ended".to_string()
                    });
                    tx.redeliver_or_bury(id, &mut m, None).await?;
                }
                let due = tx
                    .messages(
                        "SELECT id, record FROM queue_messages WHERE state = 0 AND due_at <= $1
                         ORDER BY due_at, id LIMIT $2 FOR UPDATE SKIP LOCKED",
                        &[&now, &PASS_LIMIT],
                    )
                    .await?;
                for (id, mut m) in due {
                    if m.expired(tx.now) {
                        tx.enter_dead(id, &mut m, DeadReason::Expired).await?;
                    } else {
                        tx.enter_ready(id, &mut m).await?;
                    }
                }
                // Ready and delayed messages past their maximum age go to the dead-letter
                // list on time, whether or not anyone receives.
                let aged = tx
                    .messages(
                        "SELECT id, record FROM queue_messages WHERE state IN (0, 1) AND expires_at <= $1
                         ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED",
                        &[&now, &PASS_LIMIT],
                    )
                    .await?;
                for (id, mut m) in aged {
                    tx.enter_dead(id, &mut m, DeadReason::Expired).await?;
                }
                tx.tx
                    .execute_cached(
                        "DELETE FROM queue_messages WHERE id IN (
                             SELECT id FROM queue_messages WHERE state = 3 AND due_at <= $1
                             ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
                        &[&now, &PASS_LIMIT],
                    )
                    .await
                    .map_err(|e| pg_error("purging dead letters past retention", e))?;
                let next: Option<i64> = tx
                    .tx
                    .query_one_cached(
                        "SELECT least(
                             (SELECT min(due_at) FROM queue_messages WHERE state IN (0, 2, 3)),
                             (SELECT min(expires_at) FROM queue_messages WHERE state IN (0, 1)))",
                        &[],
                    )
                    .await
                    .map_err(|e| pg_error("finding the next due message", e))?
                    .get(0);
                Ok(next.map(|n| n.max(0) as u64))
            })
            .await?;
        let poll_at = self.now_or_system().saturating_add(POLL_MS);
        Ok(Some(next.map_or(poll_at, |n| n.min(poll_at))))
    }
}

impl PgQueue {
    /// Stores the sends of one group commit in one transaction, in arrival order (a key sent
    /// twice in it answers the second with the first's message).
    async fn send_many(&self, items: Arc<[NewMessage]>) -> Result<Vec<SendReceipt>> {
        self.write(async |tx| {
            let mut out = Vec::with_capacity(items.len());
            for new in items.iter() {
                out.push(send_one(tx, new).await?);
            }
            Ok(out)
        })
        .await
    }

    /// Settles the acks of one group commit in one transaction: each message whose delivery
    /// still owns it is deleted (all in one statement); for each, whether it was.
    async fn ack_many(&self, claims: Arc<[DeliveryClaim]>) -> Result<Vec<bool>> {
        self.write(async |tx| {
            let mut owned = Vec::with_capacity(claims.len());
            for (k, claim) in claims.iter().enumerate() {
                // The same delivery acked twice in one group: the first ack settles it.
                let again = claims[..k]
                    .iter()
                    .zip(&owned)
                    .any(|(c, o)| *o && c.id == claim.id);
                owned.push(!again && tx.owned(claim).await?.is_some());
            }
            let ids: Vec<i64> = claims
                .iter()
                .zip(&owned)
                .filter(|(_, owned)| **owned)
                .map(|(c, _)| c.id as i64)
                .collect();
            tx.delete(&ids).await?;
            Ok(owned)
        })
        .await
    }

    /// Wakes a receiver of each queue waited on here that has ready messages: the poll
    /// besides notifications (a notice can be missed, and in poll-only mode none is sent).
    pub(crate) async fn wake_for_ready(&self) -> Result<()> {
        let queues = self.receivers.keys();
        if queues.is_empty() {
            return Ok(());
        }
        let client = self.pg.client().await?;
        let rows = client
            .query_cached(
                "SELECT q FROM unnest($1::text[]) AS q
                 WHERE EXISTS (SELECT 1 FROM queue_messages WHERE state = 1 AND queue = q)",
                &[&queues],
            )
            .await
            .map_err(|e| pg_error("looking for ready messages", e))?;
        for row in rows {
            self.receivers.wake(row.get::<_, &str>(0), 1);
        }
        Ok(())
    }

    /// At shutdown: the messages this node leased go back in line (or to the dead-letter list
    /// after their last allowed delivery) at once, in the order their leases would have run
    /// out, as the file does when the next process opens it: their holder is gone.
    pub(crate) async fn hand_back(&self) -> Result<usize> {
        let mut total = 0;
        loop {
            let n = self
                .write(async |tx| {
                    let node = tx.node;
                    let held = tx
                        .messages(
                            "SELECT id, record FROM queue_messages WHERE state = 2 AND node = $1
                             ORDER BY due_at, id LIMIT $2 FOR UPDATE SKIP LOCKED",
                            &[&node, &PASS_LIMIT],
                        )
                        .await?;
                    for (id, mut m) in held.iter().cloned() {
                        m.last_error = Some("the process holding the lease ended".to_string());
                        tx.redeliver_or_bury(id, &mut m, None).await?;
                    }
                    Ok(held.len())
                })
                .await?;
            total += n;
            if n < PASS_LIMIT as usize {
                return Ok(total);
            }
        }
    }
}

/// Stores one message, or finds the live one with its key.
async fn send_one(tx: &mut QTx<'_>, new: &NewMessage) -> Result<SendReceipt> {
    loop {
        if new.key.is_some() {
            let existing = tx
                .tx
                .query_opt_cached(
                    "SELECT id FROM queue_messages WHERE queue = $1 AND key = $2",
                    &[&new.queue, &new.key],
                )
                .await
                .map_err(|e| pg_error("finding a message by key", e))?;
            if let Some(row) = existing {
                return Ok(SendReceipt {
                    id: row.get::<_, i64>(0) as u64,
                    deduplicated: true,
                });
            }
        }
        let mut m = new.record(tx.now, false);
        let inserted = tx
            .tx
            .query_opt_cached(
                "INSERT INTO queue_messages (queue, key, priority, record, state)
                 VALUES ($1, $2, $3, $4, 1)
                 ON CONFLICT (queue, key) WHERE key IS NOT NULL DO NOTHING RETURNING id",
                &[
                    &new.queue,
                    &new.key,
                    &new.priority,
                    &encode(&StoredMessageRef::new(&m)),
                ],
            )
            .await
            .map_err(|e| pg_error("storing a message", e))?;
        let Some(row) = inserted else {
            continue; // a racing send took the key: answer with its message
        };
        let id = row.get::<_, i64>(0) as u64;
        match new.available_at {
            Some(at) if at > tx.now => {
                m.state = MessageState::Delayed { until: at };
                tx.save(id, &m, false).await?;
            }
            _ => tx.enter_ready(id, &mut m).await?,
        }
        return Ok(SendReceipt {
            id,
            deduplicated: false,
        });
    }
}

/// Gives a dead letter of `queue` a fresh start: back in line, no deliveries counted, a fresh
/// age. False if there is no such dead letter.
async fn requeue_one(tx: &mut QTx<'_>, queue: &str, id: u64) -> Result<bool> {
    let Some(mut m) = tx.load(id).await? else {
        return Ok(false);
    };
    if m.queue != queue || !matches!(m.state, MessageState::Dead { .. }) {
        return Ok(false);
    }
    m.deliveries = 0;
    m.enqueued_at = tx.now;
    tx.enter_ready(id, &mut m).await?;
    Ok(true)
}

fn state_name(code: i16) -> &'static str {
    match code {
        DELAYED => "delayed",
        READY => "ready",
        LEASED => "leased",
        _ => "dead",
    }
}
