//! The storage backends a topic can use, dispatched by enum.

use super::info::{GroupDelivery, Published, TopicEvent, TopicSummary};
use super::redb::RedbTopic;
use super::storage::{GroupTake, TopicBounds, TopicPublish, TopicStorage};
use crate::error::Result;

/// The storage an engine's topics use.
#[derive(Debug)]
pub(crate) enum TopicBackend {
    /// The embedded file.
    Redb(RedbTopic),
    /// A PostgreSQL schema shared by many nodes.
    #[cfg(feature = "postgres")]
    Postgres(Box<super::postgres::PgTopic>),
}

impl TopicStorage for TopicBackend {
    async fn publish(&self, publish: TopicPublish) -> Result<Published> {
        match self {
            TopicBackend::Redb(b) => b.publish(publish).await,
            #[cfg(feature = "postgres")]
            TopicBackend::Postgres(b) => b.publish(publish).await,
        }
    }

    async fn read(&self, topic: &str, from: u64, limit: usize) -> Result<Vec<TopicEvent>> {
        match self {
            TopicBackend::Redb(b) => b.read(topic, from, limit).await,
            #[cfg(feature = "postgres")]
            TopicBackend::Postgres(b) => b.read(topic, from, limit).await,
        }
    }

    async fn bounds(&self, topic: &str) -> Result<TopicBounds> {
        match self {
            TopicBackend::Redb(b) => b.bounds(topic).await,
            #[cfg(feature = "postgres")]
            TopicBackend::Postgres(b) => b.bounds(topic).await,
        }
    }

    async fn take(&self, take: GroupTake) -> Result<(Vec<GroupDelivery>, Option<u64>)> {
        match self {
            TopicBackend::Redb(b) => b.take(take).await,
            #[cfg(feature = "postgres")]
            TopicBackend::Postgres(b) => b.take(take).await,
        }
    }

    async fn commit(&self, topic: &str, group: &str, seqs: Vec<u64>) -> Result<usize> {
        match self {
            TopicBackend::Redb(b) => b.commit(topic, group, seqs).await,
            #[cfg(feature = "postgres")]
            TopicBackend::Postgres(b) => b.commit(topic, group, seqs).await,
        }
    }

    async fn committed_through(&self, topic: &str, group: &str) -> Result<u64> {
        match self {
            TopicBackend::Redb(b) => b.committed_through(topic, group).await,
            #[cfg(feature = "postgres")]
            TopicBackend::Postgres(b) => b.committed_through(topic, group).await,
        }
    }

    async fn seek(&self, topic: &str, group: &str, after: u64) -> Result<()> {
        match self {
            TopicBackend::Redb(b) => b.seek(topic, group, after).await,
            #[cfg(feature = "postgres")]
            TopicBackend::Postgres(b) => b.seek(topic, group, after).await,
        }
    }

    async fn topics(&self) -> Result<Vec<TopicSummary>> {
        match self {
            TopicBackend::Redb(b) => b.topics().await,
            #[cfg(feature = "postgres")]
            TopicBackend::Postgres(b) => b.topics().await,
        }
    }

    async fn sweep(&self) -> Result<Option<u64>> {
        match self {
            TopicBackend::Redb(b) => b.sweep().await,
            #[cfg(feature = "postgres")]
            TopicBackend::Postgres(b) => b.sweep().await,
        }
    }
}
