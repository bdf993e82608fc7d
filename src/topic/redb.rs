//! Topics over the embedded file: each operation one op sent to the writer, each read one read
//! transaction. Subscribers and the retention timer are told after the commit.

use std::sync::Arc;

use redb::{ReadTransaction, ReadableTable};

use super::info::{GroupDelivery, GroupSummary, Published, StartAt, TopicEvent, TopicSummary};
use super::ops;
use super::ops::take::Take;
use super::record::{StoredEvent, StoredGroup, StoredTopic, TopicV1};
use super::rows::read_topic;
use super::storage::{GroupTake, TopicBounds, TopicPublish, TopicStorage};
use super::tables::{TOPIC_EVENTS, TOPIC_GROUPS, TOPICS};
use crate::error::{Error, Result};
use crate::store::codec::decode;
use crate::store::{Store, TxCtx};
use crate::timer::Timer;
use crate::wakeups::Followers;

/// Topic events pruned per topic in one timer pass.
const SWEEP_LIMIT: usize = 1_000;

/// Topics' storage in the file.
#[derive(Debug)]
pub(crate) struct RedbTopic {
    store: Arc<Store>,
    /// Each topic's subscribers and group members, told after the commit of a publish.
    followers: Arc<Followers<String>>,
    /// When the next retention pass is due.
    pub(crate) timer: Arc<Timer>,
}

impl RedbTopic {
    pub(crate) fn new(store: Arc<Store>, followers: Arc<Followers<String>>) -> Self {
        RedbTopic {
            store,
            followers,
            timer: Arc::new(Timer::new(None)),
        }
    }

    /// Events past retention while no process held the file are pruned now.
    pub(crate) fn recover(&self, ctx: &mut TxCtx<'_>) -> Result<()> {
        if let Some(at) = ops::sweep::sweep(ctx, usize::MAX)? {
            self.timer.lower(at);
        }
        Ok(())
    }
}

impl TopicStorage for RedbTopic {
    async fn publish(&self, p: TopicPublish) -> Result<Published> {
        let (followers, timer) = (self.followers.clone(), self.timer.clone());
        self.store
            .write(move |ctx| {
                let (seq, deduplicated) = ops::publish::publish(
                    ctx,
                    &p.topic,
                    p.key.as_deref(),
                    &p.payload,
                    p.retention_ms,
                    p.max_events,
                )?;
                let (followers, timer, topic) = (followers.clone(), timer.clone(), p.topic.clone());
                let prune_at = ctx.now.saturating_add(p.retention_ms);
                ctx.after_commit(move || {
                    followers.bump(topic.as_str());
                    timer.lower(prune_at);
                });
                Ok(Published { seq, deduplicated })
            })
            .await
    }

    async fn read(&self, topic: &str, from: u64, limit: usize) -> Result<Vec<TopicEvent>> {
        self.store.read(|rtx| read_events(rtx, topic, from, limit))
    }

    async fn bounds(&self, topic: &str) -> Result<TopicBounds> {
        self.store.read(|rtx| {
            let meta = topic_meta(rtx, topic)?;
            Ok(TopicBounds {
                pruned_through: meta.pruned_through,
                last_seq: meta.last_seq,
            })
        })
    }

    async fn take(&self, t: GroupTake) -> Result<(Vec<GroupDelivery>, Option<u64>)> {
        let topic = t.topic.clone();
        let taken = self
            .store
            .write(move |ctx| {
                let start_after = match t.start {
                    StartAt::Beginning => read_topic(ctx, &t.topic)?.pruned_through,
                    StartAt::Seq(n) => n.saturating_sub(1),
                    StartAt::Now => read_topic(ctx, &t.topic)?.last_seq,
                };
                ops::take::take(ctx, &t.topic, &t.group, start_after, t.max, t.reclaim_ms)
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
                set: topic,
                requested,
                next_available,
            }),
        }
    }

    async fn commit(&self, topic: &str, group: &str, seqs: Vec<u64>) -> Result<usize> {
        let (topic, group) = (topic.to_string(), group.to_string());
        self.store
            .write(move |ctx| {
                let mut n = 0;
                for seq in &seqs {
                    n += usize::from(ops::commit::commit(ctx, &topic, &group, *seq)?);
                }
                Ok(n)
            })
            .await
    }

    async fn committed_through(&self, topic: &str, group: &str) -> Result<u64> {
        self.store.read(|rtx| {
            let table = rtx.open_table(TOPIC_GROUPS)?;
            Ok(match table.get((topic, group))? {
                Some(b) => {
                    let StoredGroup::V1(g) = decode("topic_groups", b.value())?;
                    g.committed_through
                }
                None => 0,
            })
        })
    }

    async fn seek(&self, topic: &str, group: &str, after: u64) -> Result<()> {
        let (topic, group) = (topic.to_string(), group.to_string());
        self.store
            .write(move |ctx| ops::seek::seek(ctx, &topic, &group, after))
            .await
    }

    /// Prunes events past their topic's retention.
    async fn topics(&self) -> Result<Vec<TopicSummary>> {
        self.store.read(|rtx| {
            let groups = rtx.open_table(TOPIC_GROUPS)?;
            let mut out = Vec::new();
            for entry in rtx.open_table(TOPICS)?.iter()? {
                let (name, bytes) = entry?;
                let name = name.value().to_string();
                let t = match decode("topics", bytes.value())? {
                    StoredTopic::Empty => TopicV1::default(),
                    StoredTopic::V1(t) => t,
                };
                let mut summary = TopicSummary {
                    name: name.clone(),
                    last_seq: t.last_seq,
                    pruned_through: t.pruned_through,
                    groups: Vec::new(),
                };
                for g in groups.range((name.as_str(), "")..)? {
                    let (key, bytes) = g?;
                    let (topic, group) = key.value();
                    if topic != name {
                        break;
                    }
                    let StoredGroup::V1(g) = decode("topic_groups", bytes.value())?;
                    summary.groups.push(GroupSummary {
                        name: group.to_string(),
                        committed_through: g.committed_through,
                        delivered_through: g.delivered_through,
                    });
                }
                out.push(summary);
            }
            Ok(out)
        })
    }

    async fn sweep(&self) -> Result<Option<u64>> {
        self.store
            .write(|ctx| ops::sweep::sweep(ctx, SWEEP_LIMIT))
            .await
    }
}

fn topic_meta(rtx: &ReadTransaction, topic: &str) -> Result<TopicV1> {
    let table = rtx.open_table(TOPICS)?;
    let stored = match table.get(topic)? {
        Some(b) => decode("topics", b.value())?,
        None => StoredTopic::Empty,
    };
    Ok(match stored {
        StoredTopic::Empty => TopicV1::default(),
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
