//! The storage backends a queue can use, dispatched by enum: public types stay non-generic.

use super::info::{DeadLetter, MessageInfo, QueueStats, QueueSummary, SendReceipt};
use super::redb::RedbQueue;
use super::storage::{DeliveryClaim, NewMessage, QueueNack, QueueStorage, Taken};
use crate::error::Result;

/// The storage an engine's queues use.
#[derive(Debug)]
pub(crate) enum QueueBackend {
    /// The embedded file.
    Redb(RedbQueue),
    /// A PostgreSQL schema shared by many nodes.
    #[cfg(feature = "postgres")]
    Postgres(Box<super::postgres::PgQueue>),
}

impl QueueStorage for QueueBackend {
    async fn send(&self, new: NewMessage) -> Result<SendReceipt> {
        match self {
            QueueBackend::Redb(b) => b.send(new).await,
            #[cfg(feature = "postgres")]
            QueueBackend::Postgres(b) => b.send(new).await,
        }
    }

    async fn take(&self, queue: &str, max: usize, lease_ms: u64) -> Result<Vec<Taken>> {
        match self {
            QueueBackend::Redb(b) => b.take(queue, max, lease_ms).await,
            #[cfg(feature = "postgres")]
            QueueBackend::Postgres(b) => b.take(queue, max, lease_ms).await,
        }
    }

    async fn ack(&self, claim: DeliveryClaim) -> Result<bool> {
        match self {
            QueueBackend::Redb(b) => b.ack(claim).await,
            #[cfg(feature = "postgres")]
            QueueBackend::Postgres(b) => b.ack(claim).await,
        }
    }

    async fn nack(&self, nack: QueueNack) -> Result<bool> {
        match self {
            QueueBackend::Redb(b) => b.nack(nack).await,
            #[cfg(feature = "postgres")]
            QueueBackend::Postgres(b) => b.nack(nack).await,
        }
    }

    async fn extend(&self, claim: DeliveryClaim, lease_ms: u64) -> Result<Option<u64>> {
        match self {
            QueueBackend::Redb(b) => b.extend(claim, lease_ms).await,
            #[cfg(feature = "postgres")]
            QueueBackend::Postgres(b) => b.extend(claim, lease_ms).await,
        }
    }

    async fn dead_letter(&self, claim: DeliveryClaim, error: String) -> Result<bool> {
        match self {
            QueueBackend::Redb(b) => b.dead_letter(claim, error).await,
            #[cfg(feature = "postgres")]
            QueueBackend::Postgres(b) => b.dead_letter(claim, error).await,
        }
    }

    async fn set_paused(&self, queue: &str, paused: bool) -> Result<bool> {
        match self {
            QueueBackend::Redb(b) => b.set_paused(queue, paused).await,
            #[cfg(feature = "postgres")]
            QueueBackend::Postgres(b) => b.set_paused(queue, paused).await,
        }
    }

    async fn requeue_dead(&self, queue: &str, id: u64) -> Result<bool> {
        match self {
            QueueBackend::Redb(b) => b.requeue_dead(queue, id).await,
            #[cfg(feature = "postgres")]
            QueueBackend::Postgres(b) => b.requeue_dead(queue, id).await,
        }
    }

    async fn delete_dead(&self, queue: &str, id: u64) -> Result<bool> {
        match self {
            QueueBackend::Redb(b) => b.delete_dead(queue, id).await,
            #[cfg(feature = "postgres")]
            QueueBackend::Postgres(b) => b.delete_dead(queue, id).await,
        }
    }

    async fn requeue_dead_batch(&self, queue: &str, limit: usize) -> Result<usize> {
        match self {
            QueueBackend::Redb(b) => b.requeue_dead_batch(queue, limit).await,
            #[cfg(feature = "postgres")]
            QueueBackend::Postgres(b) => b.requeue_dead_batch(queue, limit).await,
        }
    }

    async fn purge_dead(&self, queue: &str, limit: usize) -> Result<usize> {
        match self {
            QueueBackend::Redb(b) => b.purge_dead(queue, limit).await,
            #[cfg(feature = "postgres")]
            QueueBackend::Postgres(b) => b.purge_dead(queue, limit).await,
        }
    }

    async fn get(&self, queue: &str, id: u64) -> Result<Option<MessageInfo>> {
        match self {
            QueueBackend::Redb(b) => b.get(queue, id).await,
            #[cfg(feature = "postgres")]
            QueueBackend::Postgres(b) => b.get(queue, id).await,
        }
    }

    async fn queues(&self) -> Result<Vec<QueueSummary>> {
        match self {
            QueueBackend::Redb(b) => b.queues().await,
            #[cfg(feature = "postgres")]
            QueueBackend::Postgres(b) => b.queues().await,
        }
    }

    async fn stats(&self, queue: &str) -> Result<QueueStats> {
        match self {
            QueueBackend::Redb(b) => b.stats(queue).await,
            #[cfg(feature = "postgres")]
            QueueBackend::Postgres(b) => b.stats(queue).await,
        }
    }

    async fn dead_letters(&self, queue: &str, limit: usize) -> Result<Vec<DeadLetter>> {
        match self {
            QueueBackend::Redb(b) => b.dead_letters(queue, limit).await,
            #[cfg(feature = "postgres")]
            QueueBackend::Postgres(b) => b.dead_letters(queue, limit).await,
        }
    }

    async fn maintain(&self) -> Result<Option<u64>> {
        match self {
            QueueBackend::Redb(b) => b.maintain().await,
            #[cfg(feature = "postgres")]
            QueueBackend::Postgres(b) => b.maintain().await,
        }
    }
}
