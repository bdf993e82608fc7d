//! The storage backends an ephemeral set can use, dispatched by enum.

use super::info::{Change, Entry, SetSummary, Snapshot};
use super::redb::RedbEphemeral;
use super::storage::{EphemeralStorage, EphemeralUpsert};
use crate::error::Result;

/// The storage an engine's ephemeral sets use.
#[derive(Debug)]
pub(crate) enum EphemeralBackend {
    /// The embedded file.
    Redb(RedbEphemeral),
    /// A PostgreSQL schema shared by many nodes.
    #[cfg(feature = "postgres")]
    Postgres(Box<super::postgres::PgEphemeral>),
}

impl EphemeralStorage for EphemeralBackend {
    async fn upsert(&self, upsert: EphemeralUpsert) -> Result<u64> {
        match self {
            EphemeralBackend::Redb(b) => b.upsert(upsert).await,
            #[cfg(feature = "postgres")]
            EphemeralBackend::Postgres(b) => b.upsert(upsert).await,
        }
    }

    async fn touch(&self, set: &str, key: &str, ttl_ms: u64) -> Result<Option<u64>> {
        match self {
            EphemeralBackend::Redb(b) => b.touch(set, key, ttl_ms).await,
            #[cfg(feature = "postgres")]
            EphemeralBackend::Postgres(b) => b.touch(set, key, ttl_ms).await,
        }
    }

    async fn remove(&self, set: &str, key: &str) -> Result<Option<u64>> {
        match self {
            EphemeralBackend::Redb(b) => b.remove(set, key).await,
            #[cfg(feature = "postgres")]
            EphemeralBackend::Postgres(b) => b.remove(set, key).await,
        }
    }

    async fn get(&self, set: &str, key: &str, now: u64) -> Result<Option<Entry>> {
        match self {
            EphemeralBackend::Redb(b) => b.get(set, key, now).await,
            #[cfg(feature = "postgres")]
            EphemeralBackend::Postgres(b) => b.get(set, key, now).await,
        }
    }

    async fn snapshot(&self, set: &str, now: u64) -> Result<Snapshot> {
        match self {
            EphemeralBackend::Redb(b) => b.snapshot(set, now).await,
            #[cfg(feature = "postgres")]
            EphemeralBackend::Postgres(b) => b.snapshot(set, now).await,
        }
    }

    async fn read_changes(&self, set: &str, from: u64, limit: usize) -> Result<Vec<Change>> {
        match self {
            EphemeralBackend::Redb(b) => b.read_changes(set, from, limit).await,
            #[cfg(feature = "postgres")]
            EphemeralBackend::Postgres(b) => b.read_changes(set, from, limit).await,
        }
    }

    async fn sets(&self) -> Result<Vec<SetSummary>> {
        match self {
            EphemeralBackend::Redb(b) => b.sets().await,
            #[cfg(feature = "postgres")]
            EphemeralBackend::Postgres(b) => b.sets().await,
        }
    }

    async fn sweep(&self) -> Result<Option<u64>> {
        match self {
            EphemeralBackend::Redb(b) => b.sweep().await,
            #[cfg(feature = "postgres")]
            EphemeralBackend::Postgres(b) => b.sweep().await,
        }
    }
}
