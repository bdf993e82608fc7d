//! State shared by every rate-limit handle of one engine, and the rate limiter's part in the
//! engine: a timer that drops counts once they no longer matter, so identifiers seen once do
//! not stay in the file.

use std::sync::Arc;

use super::backend::RateLimitBackend;
use super::redb::RedbRateLimits;
use super::storage::RateLimitStorage;
use super::tables;
use crate::error::Result;
use crate::primitive::{Primitive, Work};
use crate::store::{SchemaTable, Store, TxCtx};
use crate::timer::Timer;

#[derive(Debug)]
pub(crate) struct RateLimitCore {
    pub(crate) backend: RateLimitBackend,
}

impl RateLimitCore {
    pub(crate) fn new(store: Arc<Store>) -> Self {
        RateLimitCore {
            backend: RateLimitBackend::Redb(RedbRateLimits::new(store)),
        }
    }

    /// Rate limiters in a PostgreSQL schema; `now`: the engine's clock when the options gave
    /// one (tests), else the database's.
    #[cfg(feature = "postgres")]
    pub(crate) fn postgres(
        pg: crate::postgres::Postgres,
        clock: Option<Arc<dyn crate::clock::Clock>>,
    ) -> Self {
        RateLimitCore {
            backend: RateLimitBackend::Postgres(Box::new(super::postgres::PgRateLimits::new(
                pg, clock,
            ))),
        }
    }
}

impl Primitive for RateLimitCore {
    fn name(&self) -> &'static str {
        "rate_limit"
    }

    fn tables(&self) -> &'static [&'static dyn SchemaTable] {
        tables::TABLES
    }

    fn recover(self: Arc<Self>, ctx: &mut TxCtx<'_>, _epoch: u64) -> Result<()> {
        match &self.backend {
            RateLimitBackend::Redb(b) => b.recover(ctx),
            #[cfg(feature = "postgres")]
            RateLimitBackend::Postgres(_) => Ok(()),
        }
    }

    fn timer(&self) -> Option<&Timer> {
        match &self.backend {
            RateLimitBackend::Redb(b) => Some(&b.timer),
            #[cfg(feature = "postgres")]
            RateLimitBackend::Postgres(b) => Some(&b.timer),
        }
    }

    fn pass(self: Arc<Self>) -> Work<Result<Option<u64>>> {
        Box::pin(async move { self.backend.sweep().await })
    }
}
