//! The storage backends a mutex can use, dispatched by enum.

use super::lease::MutexLease;
use super::redb::RedbMutex;
use super::storage::{Acquired, MutexStorage};
use crate::error::Result;

/// The storage an engine's mutexes use.
#[derive(Debug)]
pub(crate) enum MutexBackend {
    /// The embedded file.
    Redb(RedbMutex),
    /// A PostgreSQL schema shared by many nodes.
    #[cfg(feature = "postgres")]
    Postgres(Box<super::postgres::PgMutex>),
}

impl MutexStorage for MutexBackend {
    async fn acquire(&self, name: &str, owner: &str, ttl_ms: u64) -> Result<Acquired> {
        match self {
            MutexBackend::Redb(b) => b.acquire(name, owner, ttl_ms).await,
            #[cfg(feature = "postgres")]
            MutexBackend::Postgres(b) => b.acquire(name, owner, ttl_ms).await,
        }
    }

    async fn extend(&self, lease: &MutexLease, ttl_ms: u64) -> Result<Option<MutexLease>> {
        match self {
            MutexBackend::Redb(b) => b.extend(lease, ttl_ms).await,
            #[cfg(feature = "postgres")]
            MutexBackend::Postgres(b) => b.extend(lease, ttl_ms).await,
        }
    }

    async fn release(&self, lease: &MutexLease) -> Result<bool> {
        match self {
            MutexBackend::Redb(b) => b.release(lease).await,
            #[cfg(feature = "postgres")]
            MutexBackend::Postgres(b) => b.release(lease).await,
        }
    }

    async fn holders(&self, now: u64) -> Result<Vec<MutexLease>> {
        match self {
            MutexBackend::Redb(b) => b.holders(now).await,
            #[cfg(feature = "postgres")]
            MutexBackend::Postgres(b) => b.holders(now).await,
        }
    }

    async fn holder(&self, name: &str, now: u64) -> Result<Option<MutexLease>> {
        match self {
            MutexBackend::Redb(b) => b.holder(name, now).await,
            #[cfg(feature = "postgres")]
            MutexBackend::Postgres(b) => b.holder(name, now).await,
        }
    }
}
