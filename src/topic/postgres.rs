//! Topics on PostgreSQL (feature `postgres`). A publish takes its sequence number from the
//! topic's row under that row's lock, so numbers are gapless and become visible in order
//! whichever node publishes. A take locks its group's row, so members on any node share the
//! group's deliveries; each delivery not yet committed is a `topic_pending` row naming the node
//! it was handed to, and a node found dead has its deliveries handed out again at once. Other
//! nodes' subscribers and members are woken by `NOTIFY`.

use std::sync::Arc;

use deadpool_postgres::Transaction;

use super::info::{GroupDelivery, GroupSummary, Published, StartAt, TopicEvent, TopicSummary};
use super::storage::{GroupTake, TopicBounds, TopicPublish, TopicStorage};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::postgres::{
    Cached, Grouped, Postgres, begin, commit, notify, pg_error, pg_limit, pg_ms,
};
use crate::timer::Timer;
use crate::wakeups::Followers;

/// The channel that says which topics gained events (names, one per line).
pub(crate) const TOPIC_CHANNEL: &str = "jobfile_topic";

/// Events pruned per topic in one pass.
const SWEEP_LIMIT: i64 = 1_000;

/// How often the pass runs at the latest, to prune what other nodes published.
const POLL_MS: u64 = 1_000;

/// The topics' storage in a PostgreSQL schema.
pub(crate) struct PgTopic {
    pg: Postgres,
    /// This node, which signs its notifications and holds the deliveries it hands out.
    node: i64,
    /// The engine's clock when it was given one (tests); the database clock otherwise.
    clock: Option<Arc<dyn Clock>>,
    followers: Arc<Followers<String>>,
    pub(crate) timer: Arc<Timer>,
    /// Publishes made together share one transaction.
    publishes: Grouped<TopicPublish, Published>,
}

impl std::fmt::Debug for PgTopic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTopic")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

/// A topic's row: its sequence counter and retained range.
#[derive(Debug, Clone, Copy, Default)]
struct Meta {
    last_seq: u64,
    pruned_through: u64,
}

/// A group's delivery not yet committed (or committed past a gap in the cursor).
#[derive(Debug, Clone, Copy)]
struct Pending {
    seq: u64,
    deadline: u64,
    deliveries: u32,
    committed: bool,
}

fn lagged(topic: &str, requested: u64, pruned_through: u64) -> Error {
    Error::Lagged {
        set: topic.to_string(),
        requested,
        next_available: pruned_through + 1,
    }
}

fn event(row: &tokio_postgres::Row) -> TopicEvent {
    TopicEvent {
        seq: row.get::<_, i64>("seq") as u64,
        at_ms: row.get::<_, i64>("at_ms") as u64,
        key: row.get("key"),
        payload: row.get("payload"),
    }
}

async fn meta(tx: &Transaction<'_>, topic: &str, lock: &str) -> Result<Meta> {
    let row = tx
        .query_opt_cached(
            &format!("SELECT last_seq, pruned_through FROM topics WHERE name = $1 {lock}"),
            &[&topic],
        )
        .await
        .map_err(|e| pg_error("reading a topic", e))?;
    Ok(row.map_or(Meta::default(), |r| Meta {
        last_seq: r.get::<_, i64>(0) as u64,
        pruned_through: r.get::<_, i64>(1) as u64,
    }))
}

/// Events `from..=through` of `topic`, by sequence; `None` if one in that range is gone (it
/// was pruned meanwhile: events have no gaps above the pruned position).
async fn events_between(
    tx: &Transaction<'_>,
    topic: &str,
    from: u64,
    through: u64,
) -> Result<Option<Vec<TopicEvent>>> {
    if from > through {
        return Ok(Some(Vec::new()));
    }
    let rows = tx
        .query_cached(
            "SELECT seq, at_ms, key, payload FROM topic_events
             WHERE topic = $1 AND seq BETWEEN $2 AND $3 ORDER BY seq",
            &[&topic, &(from as i64), &(through as i64)],
        )
        .await
        .map_err(|e| pg_error("reading topic events", e))?;
    let events: Vec<TopicEvent> = rows.iter().map(event).collect();
    Ok((events.len() as u64 == through - from + 1).then_some(events))
}

impl PgTopic {
    pub(crate) fn new(
        pg: Postgres,
        node: i64,
        clock: Option<Arc<dyn Clock>>,
        followers: Arc<Followers<String>>,
    ) -> Self {
        PgTopic {
            pg,
            node,
            clock,
            followers,
            timer: Arc::new(Timer::new(Some(0))),
            publishes: Grouped::default(),
        }
    }

    fn now(&self) -> Option<u64> {
        self.clock.as_ref().map(|c| c.now_ms())
    }

    /// A group's cursors, its row locked (created after `start` if new).
    async fn lock_group(
        &self,
        tx: &Transaction<'_>,
        topic: &str,
        group: &str,
        start: StartAt,
    ) -> Result<(u64, u64)> {
        let select = "SELECT delivered_through, committed_through FROM topic_groups
                      WHERE topic = $1 AND name = $2 FOR UPDATE";
        let found = tx
            .query_opt_cached(select, &[&topic, &group])
            .await
            .map_err(|e| pg_error("locking a consumer group", e))?;
        let row = match found {
            Some(row) => row,
            None => {
                let m = meta(tx, topic, "").await?;
                let start_after = match start {
                    StartAt::Beginning => m.pruned_through,
                    StartAt::Seq(n) => n.saturating_sub(1),
                    StartAt::Now => m.last_seq,
                };
                let start_after = i64::try_from(start_after).unwrap_or(i64::MAX);
                tx.execute_cached(
                    "INSERT INTO topic_groups (topic, name, delivered_through, committed_through)
                     VALUES ($1, $2, $3, $3) ON CONFLICT DO NOTHING",
                    &[&topic, &group, &start_after],
                )
                .await
                .map_err(|e| pg_error("creating a consumer group", e))?;
                tx.query_one_cached(select, &[&topic, &group])
                    .await
                    .map_err(|e| pg_error("locking a consumer group", e))?
            }
        };
        Ok((row.get::<_, i64>(0) as u64, row.get::<_, i64>(1) as u64))
    }
}

impl PgTopic {
    /// Stores the publishes of one group commit in one transaction, topic by topic in name
    /// order (so two nodes' groups never wait on each other in a cycle): each topic's row is
    /// locked, its keys looked up at once, its new events numbered in arrival order and
    /// inserted in one statement. The answers are in the order of `items`.
    async fn publish_many(&self, items: Arc<[TopicPublish]>) -> Result<Vec<Published>> {
        let mut client = self.pg.client().await?;
        let (tx, now) = begin(&mut client, self.now(), "a publish").await?;
        let mut out: Vec<Option<Published>> = vec![None; items.len()];
        let mut topics: Vec<&str> = items.iter().map(|p| p.topic.as_str()).collect();
        topics.sort_unstable();
        topics.dedup();
        let mut changed = Vec::new();
        let mut prune_at: Option<u64> = None;
        for topic in topics {
            tx.execute_cached(
                "INSERT INTO topics (name) VALUES ($1) ON CONFLICT DO NOTHING",
                &[&topic],
            )
            .await
            .map_err(|e| pg_error("creating a topic", e))?;
            // The row lock orders the publishes: keys are looked up and numbers taken under it.
            let mut m = meta(&tx, topic, "FOR UPDATE").await?;
            let mine: Vec<usize> = (0..items.len())
                .filter(|&i| items[i].topic == topic)
                .collect();
            let keys: Vec<&str> = mine
                .iter()
                .filter_map(|&i| items[i].key.as_deref())
                .collect();
            let mut known: std::collections::HashMap<String, u64> = if keys.is_empty() {
                Default::default()
            } else {
                tx.query_cached(
                    "SELECT key, seq FROM topic_events WHERE topic = $1 AND key = ANY($2)",
                    &[&topic, &keys],
                )
                .await
                .map_err(|e| pg_error("finding events by key", e))?
                .iter()
                .map(|r| (r.get(0), r.get::<_, i64>(1) as u64))
                .collect()
            };
            let (mut seqs, mut new_keys, mut payloads) = (Vec::new(), Vec::new(), Vec::new());
            let (mut pruned, mut retention) = (m.pruned_through, None);
            for &i in &mine {
                let p = &items[i];
                if let Some(seq) = p.key.as_ref().and_then(|k| known.get(k)) {
                    out[i] = Some(Published {
                        seq: *seq,
                        deduplicated: true,
                    });
                    continue;
                }
                m.last_seq += 1;
                if let Some(key) = &p.key {
                    known.insert(key.clone(), m.last_seq);
                }
                seqs.push(m.last_seq as i64);
                new_keys.push(p.key.as_deref());
                payloads.push(p.payload.as_slice());
                if let Some(max) = p.max_events {
                    // Keep at most `max` events: prune from the front.
                    pruned = pruned.max(m.last_seq.saturating_sub(max.max(1)));
                }
                retention = Some(p.retention_ms);
                out[i] = Some(Published {
                    seq: m.last_seq,
                    deduplicated: false,
                });
            }
            let Some(retention) = retention else {
                continue;
            };
            tx.execute_cached(
                "INSERT INTO topic_events (topic, seq, at_ms, key, payload)
                 SELECT $1, s, $3, k, p FROM unnest($2::bigint[], $4::text[], $5::bytea[]) AS e(s, k, p)",
                &[&topic, &seqs, &(now as i64), &new_keys, &payloads],
            )
            .await
            .map_err(|e| pg_error("storing events", e))?;
            if pruned > m.pruned_through {
                tx.execute_cached(
                    "DELETE FROM topic_events WHERE topic = $1 AND seq <= $2",
                    &[&topic, &(pruned as i64)],
                )
                .await
                .map_err(|e| pg_error("pruning events", e))?;
                m.pruned_through = pruned;
            }
            tx.execute_cached(
                "UPDATE topics SET last_seq = $2, pruned_through = $3, retention_ms = $4 WHERE name = $1",
                &[
                    &topic,
                    &(m.last_seq as i64),
                    &(m.pruned_through as i64),
                    &pg_ms(retention),
                ],
            )
            .await
            .map_err(|e| pg_error("numbering events", e))?;
            changed.push(topic);
            let at = now.saturating_add(retention);
            prune_at = Some(prune_at.map_or(at, |p| p.min(at)));
        }
        if !changed.is_empty() && self.pg.others_live() {
            notify(&tx, TOPIC_CHANNEL, self.node, &changed).await?;
        }
        commit(tx, "a publish").await?;
        for topic in changed {
            self.followers.bump(topic);
        }
        if let Some(at) = prune_at {
            self.timer.lower(at);
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// At shutdown: the deliveries this node took and did not commit are handed out again at
    /// once (their holder is gone), and the members of their topics on every node told.
    pub(crate) async fn hand_back(&self) -> Result<usize> {
        let mut client = self.pg.client().await?;
        let (tx, now) = begin(&mut client, self.now(), "a hand-back of deliveries").await?;
        let topics: Vec<String> = tx
            .query_cached(
                "UPDATE topic_pending SET deadline = least(deadline, $2), node = NULL
                 WHERE NOT committed AND node = $1 RETURNING topic",
                &[&self.node, &pg_ms(now)],
            )
            .await
            .map_err(|e| pg_error("handing back deliveries", e))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let n = topics.len();
        let mut names: Vec<&str> = topics.iter().map(String::as_str).collect();
        names.sort_unstable();
        names.dedup();
        if !names.is_empty() && self.pg.others_live() {
            notify(&tx, TOPIC_CHANNEL, self.node, &names).await?;
        }
        commit(tx, "a hand-back of deliveries").await?;
        Ok(n)
    }
}

impl TopicStorage for PgTopic {
    async fn publish(&self, p: TopicPublish) -> Result<Published> {
        self.publishes
            .run(p, |items| self.publish_many(items))
            .await
    }

    async fn read(&self, topic: &str, from: u64, limit: usize) -> Result<Vec<TopicEvent>> {
        let client = self.pg.client().await?;
        // One statement, one snapshot: the pruned position and the events agree.
        let rows = client
            .query_cached(
                "SELECT t.pruned_through, e.seq, e.at_ms, e.key, e.payload
                 FROM (SELECT coalesce((SELECT pruned_through FROM topics WHERE name = $1), 0)
                          AS pruned_through) t
                 LEFT JOIN LATERAL (
                     SELECT seq, at_ms, key, payload FROM topic_events
                     WHERE topic = $1 AND seq >= $2 ORDER BY seq LIMIT $3) e ON true",
                &[
                    &topic,
                    &(from.min(i64::MAX as u64) as i64),
                    &pg_limit(limit),
                ],
            )
            .await
            .map_err(|e| pg_error("reading topic events", e))?;
        let pruned_through = rows.first().map_or(0, |r| r.get::<_, i64>(0) as u64);
        if pruned_through > 0 && from <= pruned_through {
            return Err(lagged(topic, from, pruned_through));
        }
        Ok(rows
            .iter()
            .filter(|r| r.get::<_, Option<i64>>("seq").is_some())
            .map(event)
            .collect())
    }

    async fn bounds(&self, topic: &str) -> Result<TopicBounds> {
        let client = self.pg.client().await?;
        let row = client
            .query_opt_cached(
                "SELECT last_seq, pruned_through FROM topics WHERE name = $1",
                &[&topic],
            )
            .await
            .map_err(|e| pg_error("reading a topic", e))?;
        Ok(row.map_or(TopicBounds::default(), |r| TopicBounds {
            last_seq: r.get::<_, i64>(0) as u64,
            pruned_through: r.get::<_, i64>(1) as u64,
        }))
    }

    async fn take(&self, t: GroupTake) -> Result<(Vec<GroupDelivery>, Option<u64>)> {
        let mut client = self.pg.client().await?;
        let (tx, now) = begin(&mut client, self.now(), "a group take").await?;
        let (topic, group) = (t.topic.as_str(), t.group.as_str());
        let (mut delivered_through, _) = self.lock_group(&tx, topic, group, t.start).await?;
        // Read after the group's lock: every event up to `last_seq` is committed and visible.
        let m = meta(&tx, topic, "").await?;
        let pending: Vec<Pending> = tx
            .query_cached(
                "SELECT seq, deadline, deliveries, committed FROM topic_pending
                 WHERE topic = $1 AND grp = $2 ORDER BY seq",
                &[&topic, &group],
            )
            .await
            .map_err(|e| pg_error("reading a group's deliveries", e))?
            .iter()
            .map(|r| Pending {
                seq: r.get::<_, i64>(0) as u64,
                deadline: r.get::<_, i64>(1) as u64,
                deliveries: r.get::<_, i32>(2) as u32,
                committed: r.get(3),
            })
            .collect();
        // A delivery due again whose event was pruned meanwhile is lost to the group: say so,
        // writing nothing (the transaction is dropped, so rolled back).
        if let Some(p) = pending
            .iter()
            .find(|p| !p.committed && p.deadline <= now && p.seq <= m.pruned_through)
        {
            return Err(lagged(topic, p.seq, m.pruned_through));
        }
        let max = t.max;
        let deadline = now.saturating_add(t.reclaim_ms);
        let mut next_deadline: Option<u64> = None;
        let mut lower = |at: u64| next_deadline = Some(next_deadline.map_or(at, |d| d.min(at)));
        let mut again: Vec<Pending> = Vec::new();
        for p in pending.iter().filter(|p| !p.committed) {
            if p.deadline > now || again.len() >= max {
                lower(p.deadline);
            } else {
                again.push(*p);
            }
        }
        let mut out = Vec::new();
        for p in &again {
            let Some(mut events) = events_between(&tx, topic, p.seq, p.seq).await? else {
                let m = meta(&tx, topic, "").await?;
                return Err(lagged(topic, p.seq, m.pruned_through));
            };
            lower(deadline);
            out.push(GroupDelivery {
                event: events.remove(0),
                deliveries: p.deliveries + 1,
                reclaim_at_ms: deadline,
            });
        }
        if out.len() < max && delivered_through < m.last_seq && delivered_through < m.pruned_through
        {
            return Err(lagged(topic, delivered_through + 1, m.pruned_through));
        }
        let through = m
            .last_seq
            .min(delivered_through.saturating_add((max - out.len()) as u64));
        let Some(fresh) = events_between(&tx, topic, delivered_through + 1, through).await? else {
            let m = meta(&tx, topic, "").await?;
            return Err(lagged(topic, delivered_through + 1, m.pruned_through));
        };
        if !fresh.is_empty() {
            lower(deadline);
        }
        let fresh_seqs: Vec<i64> = fresh.iter().map(|e| e.seq as i64).collect();
        let again_seqs: Vec<i64> = again.iter().map(|p| p.seq as i64).collect();
        delivered_through = delivered_through.max(through);
        out.extend(fresh.into_iter().map(|event| GroupDelivery {
            event,
            deliveries: 1,
            reclaim_at_ms: deadline,
        }));
        if !out.is_empty() {
            tx.execute_cached(
                "UPDATE topic_pending SET deadline = $4, deliveries = deliveries + 1, node = $5
                 WHERE topic = $1 AND grp = $2 AND seq = ANY($3)",
                &[&topic, &group, &again_seqs, &pg_ms(deadline), &self.node],
            )
            .await
            .map_err(|e| pg_error("handing out deliveries again", e))?;
            tx.execute_cached(
                "INSERT INTO topic_pending (topic, grp, seq, deadline, deliveries, node)
                 SELECT $1, $2, seq, $4, 1, $5 FROM unnest($3::bigint[]) AS seq",
                &[&topic, &group, &fresh_seqs, &pg_ms(deadline), &self.node],
            )
            .await
            .map_err(|e| pg_error("handing out deliveries", e))?;
            tx.execute_cached(
                "UPDATE topic_groups SET delivered_through = $3 WHERE topic = $1 AND name = $2",
                &[&topic, &group, &(delivered_through as i64)],
            )
            .await
            .map_err(|e| pg_error("moving a group's cursor", e))?;
        }
        commit(tx, "a group take").await?;
        Ok((out, next_deadline))
    }

    async fn commit(&self, topic: &str, group: &str, seqs: Vec<u64>) -> Result<usize> {
        let mut client = self.pg.client().await?;
        let (tx, _) = begin(&mut client, self.now(), "a group commit").await?;
        let (delivered_through, mut committed_through) =
            self.lock_group(&tx, topic, group, StartAt::Seq(1)).await?;
        let mut n = 0;
        for seq in seqs {
            let row = tx
                .query_opt_cached(
                    "SELECT committed FROM topic_pending WHERE topic = $1 AND grp = $2 AND seq = $3",
                    &[&topic, &group, &(seq as i64)],
                )
                .await
                .map_err(|e| pg_error("reading a delivery", e))?;
            match row {
                Some(r) if !r.get::<_, bool>(0) => {
                    tx.execute_cached(
                        "UPDATE topic_pending SET committed = true, node = NULL
                         WHERE topic = $1 AND grp = $2 AND seq = $3",
                        &[&topic, &group, &(seq as i64)],
                    )
                    .await
                    .map_err(|e| pg_error("committing a delivery", e))?;
                    n += 1;
                }
                Some(_) => {}
                None if seq <= committed_through => {}
                None => {
                    return Err(Error::invalid(
                        "sequence",
                        format!(
                            "event {seq} of topic {topic:?} was never delivered to group {group:?}"
                        ),
                    ));
                }
            }
        }
        // The cursor moves over every committed delivery in a row, and over events pruned
        // before they were delivered (they never had a delivery to commit).
        loop {
            let rows = tx
                .query_cached(
                    "SELECT seq, committed FROM topic_pending
                     WHERE topic = $1 AND grp = $2 AND seq > $3 ORDER BY seq LIMIT 1000",
                    &[&topic, &group, &(committed_through as i64)],
                )
                .await
                .map_err(|e| pg_error("reading a group's deliveries", e))?;
            let before = committed_through;
            for r in &rows {
                let (seq, committed) = (r.get::<_, i64>(0) as u64, r.get::<_, bool>(1));
                if seq != committed_through + 1 {
                    // Sequences between without a delivery: passed over only where their
                    // event is gone (pruned before it was delivered).
                    let kept: Option<i64> = tx
                        .query_one_cached(
                            "SELECT min(seq) FROM topic_events
                             WHERE topic = $1 AND seq BETWEEN $2 AND $3",
                            &[&topic, &(committed_through as i64 + 1), &(seq as i64 - 1)],
                        )
                        .await
                        .map_err(|e| pg_error("reading topic events", e))?
                        .get(0);
                    if seq - 1 > delivered_through || kept.is_some() {
                        break;
                    }
                    committed_through = seq - 1;
                }
                if !committed {
                    break;
                }
                committed_through = seq;
            }
            if rows.len() < 1000 || committed_through == before {
                break;
            }
        }
        tx.execute_cached(
            "DELETE FROM topic_pending WHERE topic = $1 AND grp = $2 AND seq <= $3",
            &[&topic, &group, &(committed_through as i64)],
        )
        .await
        .map_err(|e| pg_error("dropping committed deliveries", e))?;
        tx.execute_cached(
            "UPDATE topic_groups SET committed_through = $3 WHERE topic = $1 AND name = $2",
            &[&topic, &group, &(committed_through as i64)],
        )
        .await
        .map_err(|e| pg_error("moving a group's cursor", e))?;
        commit(tx, "a group commit").await?;
        Ok(n)
    }

    async fn committed_through(&self, topic: &str, group: &str) -> Result<u64> {
        let client = self.pg.client().await?;
        let row = client
            .query_opt_cached(
                "SELECT committed_through FROM topic_groups WHERE topic = $1 AND name = $2",
                &[&topic, &group],
            )
            .await
            .map_err(|e| pg_error("reading a group's cursor", e))?;
        Ok(row.map_or(0, |r| r.get::<_, i64>(0) as u64))
    }

    async fn seek(&self, topic: &str, group: &str, after: u64) -> Result<()> {
        let mut client = self.pg.client().await?;
        let (tx, _) = begin(&mut client, self.now(), "a group seek").await?;
        self.lock_group(&tx, topic, group, StartAt::Seq(after + 1))
            .await?;
        tx.execute_cached(
            "DELETE FROM topic_pending WHERE topic = $1 AND grp = $2",
            &[&topic, &group],
        )
        .await
        .map_err(|e| pg_error("dropping a group's deliveries", e))?;
        tx.execute_cached(
            "UPDATE topic_groups SET delivered_through = $3, committed_through = $3
             WHERE topic = $1 AND name = $2",
            &[&topic, &group, &i64::try_from(after).unwrap_or(i64::MAX)],
        )
        .await
        .map_err(|e| pg_error("moving a group", e))?;
        commit(tx, "a group seek").await
    }

    async fn topics(&self) -> Result<Vec<TopicSummary>> {
        let client = self.pg.client().await?;
        let rows = client
            .query_cached(
                "SELECT t.name, t.last_seq, t.pruned_through, g.name, g.committed_through,
                        g.delivered_through
                 FROM topics t LEFT JOIN topic_groups g ON g.topic = t.name
                 ORDER BY t.name, g.name",
                &[],
            )
            .await
            .map_err(|e| pg_error("listing topics", e))?;
        let mut out: Vec<TopicSummary> = Vec::new();
        for r in rows {
            let name: String = r.get(0);
            if out.last().is_none_or(|t| t.name != name) {
                out.push(TopicSummary {
                    name,
                    last_seq: r.get::<_, i64>(1) as u64,
                    pruned_through: r.get::<_, i64>(2) as u64,
                    groups: Vec::new(),
                });
            }
            if let Some(group) = r.get::<_, Option<String>>(3)
                && let Some(t) = out.last_mut()
            {
                t.groups.push(GroupSummary {
                    name: group,
                    committed_through: r.get::<_, i64>(4) as u64,
                    delivered_through: r.get::<_, i64>(5) as u64,
                });
            }
        }
        Ok(out)
    }

    /// Prunes events past their topic's retention, from the front of each topic.
    async fn sweep(&self) -> Result<Option<u64>> {
        let mut client = self.pg.client().await?;
        let (tx, now) = begin(&mut client, self.now(), "a topic pass").await?;
        // Topics whose oldest retained event is past retention; a topic a publish holds is
        // left for the next pass.
        let due = tx
            .query_cached(
                "SELECT t.name, t.pruned_through, t.retention_ms FROM topics t
                 WHERE EXISTS (SELECT 1 FROM topic_events e
                               WHERE e.topic = t.name AND e.seq = t.pruned_through + 1
                                 AND e.at_ms + t.retention_ms <= $1)
                 ORDER BY t.name FOR UPDATE SKIP LOCKED",
                &[&(now as i64)],
            )
            .await
            .map_err(|e| pg_error("finding topics to prune", e))?;
        for row in due {
            let topic = row.get::<_, String>(0);
            let (pruned_through, retention) = (row.get::<_, i64>(1), row.get::<_, i64>(2));
            let events = tx
                .query_cached(
                    "SELECT seq, at_ms FROM topic_events WHERE topic = $1 AND seq > $2
                     ORDER BY seq LIMIT $3",
                    &[&topic, &pruned_through, &SWEEP_LIMIT],
                )
                .await
                .map_err(|e| pg_error("reading events to prune", e))?;
            let mut through = pruned_through;
            for e in &events {
                if e.get::<_, i64>(1).saturating_add(retention) > now as i64 {
                    break;
                }
                through = e.get(0);
            }
            tx.execute_cached(
                "DELETE FROM topic_events WHERE topic = $1 AND seq <= $2",
                &[&topic, &through],
            )
            .await
            .map_err(|e| pg_error("pruning events", e))?;
            tx.execute_cached(
                "UPDATE topics SET pruned_through = $2 WHERE name = $1",
                &[&topic, &through],
            )
            .await
            .map_err(|e| pg_error("pruning events", e))?;
        }
        let next: Option<i64> = tx
            .query_one_cached(
                "SELECT min(e.at_ms + t.retention_ms) FROM topics t
                 JOIN topic_events e ON e.topic = t.name AND e.seq = t.pruned_through + 1",
                &[],
            )
            .await
            .map_err(|e| pg_error("finding the next event to prune", e))?
            .get(0);
        commit(tx, "a topic pass").await?;
        let poll_at = now.saturating_add(POLL_MS);
        Ok(Some(
            next.map_or(poll_at, |n| (n.max(0) as u64).min(poll_at)),
        ))
    }
}
