//! The rate limiter on PostgreSQL (feature `postgres`): one row per (limiter, identifier),
//! locked for the check, so checks from every node count against the same window. The
//! arithmetic is the file's ([`super::window`]).

use std::sync::Arc;

use super::storage::RateLimitStorage;
use super::window::{Counts, RateLimitCheck, Window};
use crate::clock::Clock;
use crate::error::Result;
use crate::postgres::{Cached, DB_NOW_MS, Postgres, begin, commit, pg_error, pg_ms};
use crate::timer::Timer;

/// Identifiers' counts dropped in one pass.
const SWEEP_LIMIT: i64 = 1_000;

/// How long a pass waits at most, to drop counts other nodes wrote.
const POLL_MS: u64 = 60_000;

/// The rate limiter's storage in a PostgreSQL schema.
pub(crate) struct PgRateLimits {
    pg: Postgres,
    /// The engine's clock when it was given one (tests); the database clock otherwise.
    clock: Option<Arc<dyn Clock>>,
    pub(crate) timer: Arc<Timer>,
}

impl std::fmt::Debug for PgRateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgRateLimits").finish_non_exhaustive()
    }
}

impl PgRateLimits {
    pub(crate) fn new(pg: Postgres, clock: Option<Arc<dyn Clock>>) -> Self {
        PgRateLimits {
            pg,
            clock,
            timer: Arc::new(Timer::new(Some(0))),
        }
    }

    /// The manual clock's time, if the engine has one; `None` stands for the database clock.
    fn now(&self) -> Option<u64> {
        self.clock.as_ref().map(|c| c.now_ms())
    }
}

impl RateLimitStorage for PgRateLimits {
    async fn check(&self, name: &str, key: &[u8], window: Window) -> Result<RateLimitCheck> {
        let failed = |e| pg_error("checking a rate limit", e);
        let mut client = self.pg.client().await?;
        let (tx, now) = begin(&mut client, self.now(), "a rate-limit check").await?;
        // One statement makes the row (empty counts if new) and locks it: a reset or expiry
        // that deletes the row between a separate insert and lock cannot leave nothing to lock.
        let row = tx
            .query_one_cached(
                "INSERT INTO rate_limits (name, key, window_ms, start_ms, current, previous, expires_at)
                 VALUES ($1, $2, 0, 0, 0, 0, 0)
                 ON CONFLICT (name, key) DO UPDATE SET name = EXCLUDED.name
                 RETURNING window_ms, start_ms, current, previous",
                &[&name, &key],
            )
            .await
            .map_err(failed)?;
        let stored = Counts {
            window_ms: row.get::<_, i64>(0) as u64,
            start: row.get::<_, i64>(1) as u64,
            current: row.get::<_, i64>(2) as u64,
            previous: row.get::<_, i64>(3) as u64,
        };
        let (counts, check) = window.check(Some(stored), now);
        let expires_at = counts.expires_at();
        tx.execute_cached(
            "UPDATE rate_limits SET window_ms = $3, start_ms = $4, current = $5, previous = $6,
                 expires_at = $7
             WHERE name = $1 AND key = $2",
            &[
                &name,
                &key,
                &pg_ms(counts.window_ms),
                &pg_ms(counts.start),
                &pg_ms(counts.current),
                &pg_ms(counts.previous),
                &pg_ms(expires_at),
            ],
        )
        .await
        .map_err(failed)?;
        commit(tx, "a rate-limit check").await?;
        self.timer.lower(expires_at);
        Ok(check)
    }

    async fn reset(&self, name: &str, key: &[u8]) -> Result<bool> {
        let client = self.pg.client().await?;
        let n = client
            .execute_cached(
                "DELETE FROM rate_limits WHERE name = $1 AND key = $2",
                &[&name, &key],
            )
            .await
            .map_err(|e| pg_error("resetting a rate limit", e))?;
        Ok(n > 0)
    }

    async fn sweep(&self) -> Result<Option<u64>> {
        let failed = |e| pg_error("dropping expired rate-limit counts", e);
        let client = self.pg.client().await?;
        let now = self.now().map(pg_ms);
        let row = client
            .query_one_cached(
                &format!(
                    "WITH now AS (SELECT coalesce($1::bigint, {DB_NOW_MS}) AS at),
                     gone AS (
                         DELETE FROM rate_limits WHERE ctid IN (
                             SELECT ctid FROM rate_limits, now WHERE expires_at <= now.at
                             ORDER BY expires_at LIMIT $2))
                     SELECT now.at, (SELECT min(expires_at) FROM rate_limits) FROM now"
                ),
                &[&now, &SWEEP_LIMIT],
            )
            .await
            .map_err(failed)?;
        let now = row.get::<_, i64>(0) as u64;
        let next = row.get::<_, Option<i64>>(1).map(|at| at as u64);
        // The statement's snapshot still holds what it deleted: if anything was due, the next
        // pass comes at once and finds what the bound left. Other nodes' counts are found by
        // the poll.
        let poll = now.saturating_add(POLL_MS);
        Ok(Some(next.map_or(poll, |n| n.min(poll))))
    }
}
