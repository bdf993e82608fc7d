//! Topics: append-only event streams with per-topic sequence numbers, live subscriptions, and
//! consumer groups with a durable committed cursor and redelivery of what was not committed.

pub(crate) mod ops;
pub(crate) mod tables;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redb::ReadTransaction;
use tokio::sync::watch;

use crate::clock::millis;
use crate::error::{Error, Result, check_name, check_ttl};
use crate::feed::{self, Feed};
use crate::primitive::{Primitive, Work};
use crate::store::codec::decode;
use crate::store::{SchemaTable, Store, TxCtx};
use crate::timer::Timer;
use ops::{StoredEvent, StoredTopic, Take};
use tables::{TOPIC_EVENTS, TOPICS};

/// Topic events pruned per topic in one timer pass.
const SWEEP_LIMIT: usize = 1_000;

/// Limits and defaults of a topic handle. Retention 7 days, no count limit, 128 KiB payloads,
/// a 30 s reclaim time for group deliveries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicOptions {
    /// How long events are kept. Default 7 days.
    pub retention: Duration,
    /// Keep at most this many events (the oldest go first). Default none.
    pub max_events: Option<u64>,
    /// The largest payload accepted by publish, in bytes. Default 128 KiB.
    pub payload_limit: usize,
    /// How long a group delivery may stay uncommitted before it is delivered again. Default 30 s.
    pub reclaim: Duration,
}

impl Default for TopicOptions {
    fn default() -> Self {
        TopicOptions {
            retention: Duration::from_secs(7 * 24 * 3600),
            max_events: None,
            payload_limit: 128 * 1024,
            reclaim: Duration::from_secs(30),
        }
    }
}

/// An event of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicEvent {
    /// Its sequence number: 1, 2, 3, … within the topic.
    pub seq: u64,
    /// When it was published (ms since the epoch).
    pub at_ms: u64,
    /// Its idempotency key, if it was published with one.
    pub key: Option<String>,
    /// The payload.
    pub payload: Vec<u8>,
}

/// Where a subscription or a new consumer group starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// The oldest retained event.
    Beginning,
    /// The event with this sequence number.
    Seq(u64),
    /// The next event published.
    Now,
}

/// The result of a publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// The event's sequence number.
    pub seq: u64,
    /// True when the key matched a retained event and nothing new was stored.
    pub deduplicated: bool,
}

#[derive(Debug)]
pub(crate) struct TopicCore {
    pub(crate) store: Arc<Store>,
    pub(crate) timer: Timer,
    published: Mutex<HashMap<String, watch::Sender<u64>>>,
    stop: watch::Receiver<bool>,
}

impl TopicCore {
    pub(crate) fn new(store: Arc<Store>, stop: watch::Receiver<bool>) -> Self {
        TopicCore {
            store,
            timer: Timer::new(None),
            published: Mutex::new(HashMap::new()),
            stop,
        }
    }

    fn sender(&self, topic: &str) -> watch::Sender<u64> {
        self.published
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(topic.to_string())
            .or_insert_with(|| watch::channel(0).0)
            .clone()
    }
}

impl Primitive for TopicCore {
    fn name(&self) -> &'static str {
        "topic"
    }

    fn tables(&self) -> &'static [&'static dyn SchemaTable] {
        tables::TABLES
    }

    /// Events past retention while no process held the file are pruned now.
    fn recover(self: Arc<Self>, ctx: &mut TxCtx<'_>, _epoch: u64) -> Result<()> {
        if let Some(at) = ops::sweep(ctx, usize::MAX)? {
            self.timer.lower(at);
        }
        Ok(())
    }

    fn timer(&self) -> Option<&Timer> {
        Some(&self.timer)
    }

    /// Prunes events past their topic's retention.
    fn pass(self: Arc<Self>) -> Work<Result<Option<u64>>> {
        Box::pin(async move { self.store.write(|ctx| ops::sweep(ctx, SWEEP_LIMIT)).await })
    }
}

/// A named topic. Get one from [`Engine::topic`](crate::Engine::topic); cheap to clone.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> jobfile::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// use std::time::Duration;
/// use jobfile::StartAt;
/// let engine = jobfile::Engine::open(dir.path().join("app.jobfile")).await?;
/// let orders = engine.topic("orders")?;
/// assert_eq!(orders.publish(b"created 1".to_vec()).await?.seq, 1);
/// let billing = orders.group_at("billing", StartAt::Beginning);
/// let got = billing.receive(10).await?;
/// assert_eq!(got[0].event.payload, b"created 1");
/// assert!(billing.commit(got[0].event.seq).await?);
/// # engine.shutdown(Duration::from_secs(1)).await?; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Topic {
    name: Arc<str>,
    options: Arc<TopicOptions>,
    core: Arc<TopicCore>,
}

impl Topic {
    pub(crate) fn new(core: Arc<TopicCore>, name: &str, options: TopicOptions) -> Result<Self> {
        check_name("topic name", name)?;
        check_ttl("retention", options.retention)?;
        check_ttl("reclaim", options.reclaim)?;
        Ok(Topic {
            name: name.into(),
            options: Arc::new(options),
            core,
        })
    }

    /// Publishes an event; durable when it returns.
    ///
    /// Errors: [`Error::PayloadTooLarge`]; nothing is written then.
    pub async fn publish(&self, payload: Vec<u8>) -> Result<Published> {
        self.publish_inner(None, payload).await
    }

    /// Publishes an event with an idempotency key: while an event with this key is retained,
    /// publishing again returns its sequence number and stores nothing.
    pub async fn publish_with_key(&self, key: &str, payload: Vec<u8>) -> Result<Published> {
        check_name("topic key", key)?;
        self.publish_inner(Some(key.to_string()), payload).await
    }

    async fn publish_inner(&self, key: Option<String>, payload: Vec<u8>) -> Result<Published> {
        if payload.len() > self.options.payload_limit {
            return Err(Error::PayloadTooLarge {
                size: payload.len(),
                limit: self.options.payload_limit,
            });
        }
        let topic = self.name.to_string();
        let retention_ms = millis(self.options.retention);
        let max_events = self.options.max_events;
        let core = self.core.clone();
        self.core
            .store
            .write(move |ctx| {
                let (seq, deduplicated) = ops::publish(
                    ctx,
                    &topic,
                    key.as_deref(),
                    &payload,
                    retention_ms,
                    max_events,
                )?;
                let (core, topic) = (core.clone(), topic.clone());
                let prune_at = ctx.now.saturating_add(retention_ms);
                ctx.after_commit(move || {
                    core.sender(&topic).send_replace(seq);
                    core.timer.lower(prune_at);
                });
                Ok(Published { seq, deduplicated })
            })
            .await
    }

    /// Up to `limit` events from sequence `from` on.
    ///
    /// Errors: [`Error::Lagged`] if events at or after `from` were pruned.
    pub fn read(&self, from: u64, limit: usize) -> Result<Vec<TopicEvent>> {
        let topic = self.name.to_string();
        self.core
            .store
            .read(|rtx| read_events(rtx, &topic, from, limit))
    }

    /// The sequence number of the newest event (0 if none).
    pub fn last_seq(&self) -> Result<u64> {
        let topic = self.name.to_string();
        self.core
            .store
            .read(|rtx| Ok(topic_meta(rtx, &topic)?.last_seq))
    }

    /// Every event from `start` on, then live ones as they are published (woken by the
    /// publish, not by polling). Ends with [`Error::Lagged`] if the reader falls behind
    /// retention, or [`Error::Closed`] at shutdown.
    pub fn subscribe(&self, start: StartAt) -> TopicStream {
        let topic = self.name.to_string();
        let changes = self.core.sender(&topic).subscribe();
        let first = self.core.store.read(|rtx| {
            let meta = topic_meta(rtx, &topic)?;
            Ok(match start {
                StartAt::Beginning => meta.pruned_through + 1,
                StartAt::Seq(n) => n.max(1),
                StartAt::Now => meta.last_seq + 1,
            })
        });
        let from = match first {
            Ok(from) => from,
            Err(e) => return feed::failed(e),
        };
        let core = self.core.clone();
        let source = feed::Source {
            read: move |from, limit| {
                let read = core.store.read(|rtx| read_events(rtx, &topic, from, limit));
                async move { read }
            },
            after: |e: &TopicEvent| e.seq + 1,
            last: |_: &TopicEvent| false,
        };
        feed::spawn(from, source, changes, self.core.stop.clone())
    }

    /// The consumer group `name` of this topic. A new group starts at `start` (its first
    /// receive creates it); an existing group keeps its committed cursor and `start` is ignored.
    pub fn group(&self, name: &str) -> ConsumerGroup {
        self.group_at(name, StartAt::Beginning)
    }

    /// Like [`Topic::group`], choosing where a new group starts.
    pub fn group_at(&self, name: &str, start: StartAt) -> ConsumerGroup {
        ConsumerGroup {
            topic: self.clone(),
            name: name.into(),
            start,
        }
    }
}

/// A consumer group: its members share the deliveries, and every group sees every event.
/// Cheap to clone; each clone is a member.
#[derive(Debug, Clone)]
pub struct ConsumerGroup {
    topic: Topic,
    name: Arc<str>,
    start: StartAt,
}

/// An event handed to a group member; commit it when done, or it is delivered again after the
/// topic's reclaim time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDelivery {
    /// The event.
    pub event: TopicEvent,
    /// How many times it has been handed to this group.
    pub deliveries: u32,
    /// When it is delivered again if not committed (ms since the epoch).
    pub reclaim_at_ms: u64,
}

impl ConsumerGroup {
    /// Takes up to `max` events (at least one), waiting until there is one: first deliveries
    /// not committed within the reclaim time, then new events. Woken by publishes and by the
    /// clock, not by polling.
    ///
    /// Errors: [`Error::Lagged`] if the group's next event was pruned ([`ConsumerGroup::seek`]
    /// moves it on); [`Error::InvalidArgument`] for a bad group name.
    pub async fn receive(&self, max: usize) -> Result<Vec<GroupDelivery>> {
        check_name("group name", &self.name)?;
        let core = &self.topic.core;
        let clock = core.store.clock().clone();
        let mut published = core.sender(&self.topic.name).subscribe();
        let mut stop = core.stop.clone();
        loop {
            if *stop.borrow_and_update() {
                return Err(Error::Closed);
            }
            published.borrow_and_update();
            let (got, next_reclaim) = self.try_take(max.max(1)).await?;
            if !got.is_empty() {
                return Ok(got);
            }
            let reclaim = async {
                match next_reclaim {
                    Some(at) => clock.sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = published.changed() => if r.is_err() { return Err(Error::Closed) },
                _ = reclaim => {}
                _ = stop.changed() => return Err(Error::Closed),
            }
        }
    }

    /// Takes what is ready now, without waiting (maybe nothing).
    pub async fn try_receive(&self, max: usize) -> Result<Vec<GroupDelivery>> {
        check_name("group name", &self.name)?;
        Ok(self.try_take(max).await?.0)
    }

    async fn try_take(&self, max: usize) -> Result<(Vec<GroupDelivery>, Option<u64>)> {
        let topic = self.topic.name.to_string();
        let name = self.name.to_string();
        let reclaim_ms = millis(self.topic.options.reclaim);
        let start = self.start;
        let taken = self
            .topic
            .core
            .store
            .write(move |ctx| {
                let start_after = match start {
                    StartAt::Beginning => ops::read_topic(ctx, &topic)?.pruned_through,
                    StartAt::Seq(n) => n.saturating_sub(1),
                    StartAt::Now => ops::read_topic(ctx, &topic)?.last_seq,
                };
                ops::take(ctx, &topic, &name, start_after, max, reclaim_ms)
            })
            .await?;
        match taken {
            Take::Got(events, next) => Ok((
                events
                    .into_iter()
                    .map(|t| GroupDelivery {
                        event: TopicEvent {
                            seq: t.seq,
                            at_ms: t.at,
                            key: t.key,
                            payload: t.payload,
                        },
                        deliveries: t.deliveries,
                        reclaim_at_ms: t.deadline,
                    })
                    .collect(),
                next,
            )),
            Take::Lagged {
                requested,
                next_available,
            } => Err(Error::Lagged {
                set: self.topic.name.to_string(),
                requested,
                next_available,
            }),
        }
    }

    /// Commits a delivered event. Returns false if it was already committed. The group's
    /// durable cursor moves over every committed event in a row.
    ///
    /// Errors: [`Error::InvalidArgument`] for an event never delivered to this group.
    pub async fn commit(&self, seq: u64) -> Result<bool> {
        let topic = self.topic.name.to_string();
        let name = self.name.to_string();
        self.topic
            .core
            .store
            .write(move |ctx| ops::commit(ctx, &topic, &name, seq))
            .await
    }

    /// Commits several delivered events in one durable write (one fsync for all). Returns how
    /// many were newly committed.
    ///
    /// Errors: [`Error::InvalidArgument`] if any was never delivered to this group; then none
    /// is committed.
    pub async fn commit_many(&self, seqs: &[u64]) -> Result<usize> {
        let topic = self.topic.name.to_string();
        let name = self.name.to_string();
        let seqs = seqs.to_vec();
        self.topic
            .core
            .store
            .write(move |ctx| {
                let mut n = 0;
                for seq in &seqs {
                    n += usize::from(ops::commit(ctx, &topic, &name, *seq)?);
                }
                Ok(n)
            })
            .await
    }

    /// The group's durable cursor: every event up to it is committed.
    pub fn committed_through(&self) -> Result<u64> {
        let topic = self.topic.name.to_string();
        let name = self.name.to_string();
        self.topic.core.store.read(|rtx| {
            let table = rtx.open_table(tables::TOPIC_GROUPS)?;
            Ok(match table.get((topic.as_str(), name.as_str()))? {
                Some(b) => {
                    let ops::StoredGroup::V1(g) = decode("topic_groups", b.value())?;
                    g.committed_through
                }
                None => 0,
            })
        })
    }

    /// Moves the group so that its next event is `seq` (after a [`Error::Lagged`], say),
    /// dropping its uncommitted deliveries.
    pub async fn seek(&self, seq: u64) -> Result<()> {
        let topic = self.topic.name.to_string();
        let name = self.name.to_string();
        self.topic
            .core
            .store
            .write(move |ctx| ops::seek(ctx, &topic, &name, seq.saturating_sub(1)))
            .await
    }
}

/// A live feed of a topic; see [`Topic::subscribe`].
pub type TopicStream = Feed<TopicEvent>;

fn topic_meta(rtx: &ReadTransaction, topic: &str) -> Result<ops::TopicV1> {
    let table = rtx.open_table(TOPICS)?;
    let stored = match table.get(topic)? {
        Some(b) => decode("topics", b.value())?,
        None => StoredTopic::Empty,
    };
    Ok(match stored {
        StoredTopic::Empty => ops::TopicV1::default(),
        StoredTopic::V1(t) => t,
    })
}

fn read_events(
    rtx: &ReadTransaction,
    topic: &str,
    from: u64,
    limit: usize,
) -> Result<Vec<TopicEvent>> {
    let meta = topic_meta(rtx, topic)?;
    if meta.pruned_through > 0 && from <= meta.pruned_through {
        return Err(Error::Lagged {
            set: topic.to_string(),
            requested: from,
            next_available: meta.pruned_through + 1,
        });
    }
    let table = rtx.open_table(TOPIC_EVENTS)?;
    let mut out = Vec::new();
    for item in table.range((topic, from)..=(topic, u64::MAX))?.take(limit) {
        let (k, v) = item?;
        let StoredEvent::V1(e) = decode("topic_events", v.value())?;
        out.push(TopicEvent {
            seq: k.value().1,
            at_ms: e.at,
            key: e.key,
            payload: e.payload,
        });
    }
    Ok(out)
}
