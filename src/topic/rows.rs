//! Topic, group and delivery rows, read and written by the ops.

use redb::ReadableTable;

use super::record::{
    EventV1, GroupV1, PendingV1, StoredEvent, StoredGroup, StoredPending, StoredTopic, TopicV1,
};
use super::tables::{TOPIC_EVENTS, TOPIC_GROUPS, TOPIC_KEYS, TOPIC_PENDING, TOPICS};
use crate::error::Result;
use crate::store::TxCtx;
use crate::store::codec::{decode, encode};

pub(crate) fn read_topic(ctx: &TxCtx<'_>, topic: &str) -> Result<TopicV1> {
    let table = ctx.tx.open_table(TOPICS)?;
    let stored = match table.get(topic)? {
        Some(b) => decode("topics", b.value())?,
        None => StoredTopic::Empty,
    };
    Ok(match stored {
        StoredTopic::Empty => TopicV1::default(),
        StoredTopic::V1(t) => t,
    })
}

pub(crate) fn write_topic(ctx: &TxCtx<'_>, topic: &str, t: &TopicV1) -> Result<()> {
    let bytes = encode(&StoredTopic::V1(t.clone()));
    ctx.tx.open_table(TOPICS)?.insert(topic, bytes.as_slice())?;
    Ok(())
}

pub(crate) fn read_event(ctx: &TxCtx<'_>, topic: &str, seq: u64) -> Result<Option<EventV1>> {
    let table = ctx.tx.open_table(TOPIC_EVENTS)?;
    let Some(b) = table.get((topic, seq))? else {
        return Ok(None);
    };
    let StoredEvent::V1(e) = decode("topic_events", b.value())?;
    Ok(Some(e))
}

pub(crate) fn prune_one(ctx: &TxCtx<'_>, topic: &str, seq: u64) -> Result<()> {
    if let Some(e) = read_event(ctx, topic, seq)? {
        if let Some(key) = &e.key {
            ctx.tx
                .open_table(TOPIC_KEYS)?
                .remove((topic, key.as_str()))?;
        }
        ctx.tx.open_table(TOPIC_EVENTS)?.remove((topic, seq))?;
    }
    Ok(())
}

/// A group's view: creates it positioned after `start_after` if new.
pub(crate) fn group(
    ctx: &TxCtx<'_>,
    topic: &str,
    group: &str,
    start_after: u64,
) -> Result<GroupV1> {
    let table = ctx.tx.open_table(TOPIC_GROUPS)?;
    Ok(match table.get((topic, group))? {
        Some(b) => {
            let StoredGroup::V1(g) = decode("topic_groups", b.value())?;
            g
        }
        None => GroupV1 {
            delivered_through: start_after,
            committed_through: start_after,
        },
    })
}

pub(crate) fn write_group(ctx: &TxCtx<'_>, topic: &str, name: &str, g: &GroupV1) -> Result<()> {
    let bytes = encode(&StoredGroup::V1(g.clone()));
    ctx.tx
        .open_table(TOPIC_GROUPS)?
        .insert((topic, name), bytes.as_slice())?;
    Ok(())
}

pub(crate) fn write_pending(
    ctx: &TxCtx<'_>,
    topic: &str,
    group: &str,
    seq: u64,
    p: &PendingV1,
) -> Result<()> {
    let bytes = encode(&StoredPending::V1(p.clone()));
    ctx.tx
        .open_table(TOPIC_PENDING)?
        .insert((topic, group, seq), bytes.as_slice())?;
    Ok(())
}
