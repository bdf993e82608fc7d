//! The storage backends a rate limiter can use, dispatched by enum.

use super::redb::RedbRateLimits;
use super::storage::RateLimitStorage;
use super::window::{RateLimitCheck, Window};
use crate::error::Result;

/// The storage an engine's rate limiters use.
#[derive(Debug)]
pub(crate) enum RateLimitBackend {
    /// The embedded file.
    Redb(RedbRateLimits),
    /// A PostgreSQL schema shared by many nodes.
    #[cfg(feature = "postgres")]
    Postgres(Box<super::postgres::PgRateLimits>),
}

impl RateLimitStorage for RateLimitBackend {
    async fn check(&self, name: &str, key: &[u8], window: Window) -> Result<RateLimitCheck> {
        match self {
            RateLimitBackend::Redb(b) => b.check(name, key, window).await,
            #[cfg(feature = "postgres")]
            RateLimitBackend::Postgres(b) => b.check(name, key, window).await,
        }
    }

    async fn reset(&self, name: &str, key: &[u8]) -> Result<bool> {
        match self {
            RateLimitBackend::Redb(b) => b.reset(name, key).await,
            #[cfg(feature = "postgres")]
            RateLimitBackend::Postgres(b) => b.reset(name, key).await,
        }
    }

    async fn sweep(&self) -> Result<Option<u64>> {
        match self {
            RateLimitBackend::Redb(b) => b.sweep().await,
            #[cfg(feature = "postgres")]
            RateLimitBackend::Postgres(b) => b.sweep().await,
        }
    }
}
