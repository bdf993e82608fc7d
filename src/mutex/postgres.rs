//! The mutex on PostgreSQL (feature `postgres`): one row per mutex name holding the live lease.
//! An acquisition locks the row, and only then takes its fencing token from a sequence: a
//! later acquisition of a mutex waits for the earlier one's commit, so its token is larger,
//! whichever node takes it. A release tells the other nodes by `NOTIFY`, so their waiting
//! acquirers try again at once.

use std::sync::Arc;

use super::lease::MutexLease;
use super::storage::{Acquired, MutexStorage};
use crate::clock::Clock;
use crate::error::Result;
use crate::postgres::{Cached, DB_NOW_MS, Postgres, commit, notify, pg_error};
use crate::wakeups::Wakeups;

/// The channel that says which mutexes were released (names, one per line).
pub(crate) const MUTEX_CHANNEL: &str = "jobfile_mutex";

/// The mutex's storage in a PostgreSQL schema.
pub(crate) struct PgMutex {
    pg: Postgres,
    /// This node, which signs its notifications.
    node: i64,
    /// The engine's clock when it was given one (tests); the database clock otherwise.
    clock: Option<Arc<dyn Clock>>,
    /// The acquirers waiting on each mutex here, woken after the commit of its release.
    released: Arc<Wakeups<String>>,
}

impl std::fmt::Debug for PgMutex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgMutex").finish_non_exhaustive()
    }
}

impl PgMutex {
    pub(crate) fn new(
        pg: Postgres,
        node: i64,
        clock: Option<Arc<dyn Clock>>,
        released: Arc<Wakeups<String>>,
    ) -> Self {
        PgMutex {
            pg,
            node,
            clock,
            released,
        }
    }

    /// The manual clock's time, if the engine has one; `None` stands for the database clock.
    fn now(&self) -> Option<i64> {
        self.clock.as_ref().map(|c| c.now_ms() as i64)
    }
}

fn lease(row: &tokio_postgres::Row) -> MutexLease {
    MutexLease {
        name: row.get(0),
        owner: row.get(1),
        token: row.get::<_, i64>(2) as u64,
        expires_at_ms: row.get::<_, i64>(3) as u64,
    }
}

impl MutexStorage for PgMutex {
    async fn acquire(&self, name: &str, owner: &str, ttl_ms: u64) -> Result<Acquired> {
        let mut client = self.pg.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(|e| pg_error("beginning a mutex acquisition", e))?;
        // One statement makes the row (an expired placeholder if new) and locks it: a release
        // that deletes the row between a separate insert and lock cannot leave nothing to lock.
        let row = tx
            .query_one_cached(
                &format!(
                    "INSERT INTO mutexes (name, owner, token, expires_at) VALUES ($1, '', 0, 0)
                     ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name
                     RETURNING expires_at, coalesce($2::bigint, {DB_NOW_MS})"
                ),
                &[&name, &self.now()],
            )
            .await
            .map_err(|e| pg_error("acquiring a mutex", e))?;
        let (expires_at, now): (i64, i64) = (row.get(0), row.get(1));
        if expires_at > now {
            return Ok(Acquired::HeldUntil(expires_at as u64));
        }
        let expires_at = now.saturating_add(ttl_ms.min(i64::MAX as u64) as i64);
        let row = tx
            .query_one_cached(
                "UPDATE mutexes SET owner = $2, token = nextval('mutex_token_seq'), expires_at = $3
                 WHERE name = $1 RETURNING name, owner, token, expires_at",
                &[&name, &owner, &expires_at],
            )
            .await
            .map_err(|e| pg_error("acquiring a mutex", e))?;
        commit(tx, "a mutex acquisition").await?;
        Ok(Acquired::Lease(lease(&row)))
    }

    async fn extend(&self, held: &MutexLease, ttl_ms: u64) -> Result<Option<MutexLease>> {
        let client = self.pg.client().await?;
        let row = client
            .query_opt_cached(
                &format!(
                    "WITH now AS (SELECT coalesce($4::bigint, {DB_NOW_MS}) AS at)
                     UPDATE mutexes SET expires_at = now.at + $5 FROM now
                     WHERE name = $1 AND owner = $2 AND token = $3 AND expires_at > now.at
                     RETURNING name, owner, token, expires_at"
                ),
                &[
                    &held.name,
                    &held.owner,
                    &(held.token as i64),
                    &self.now(),
                    &(ttl_ms.min(i64::MAX as u64 / 2) as i64),
                ],
            )
            .await
            .map_err(|e| pg_error("extending a mutex lease", e))?;
        Ok(row.as_ref().map(lease))
    }

    async fn release(&self, held: &MutexLease) -> Result<bool> {
        let mut client = self.pg.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(|e| pg_error("beginning a mutex release", e))?;
        let released = tx
            .execute_cached(
                &format!(
                    "DELETE FROM mutexes
                     WHERE name = $1 AND owner = $2 AND token = $3
                       AND expires_at > coalesce($4::bigint, {DB_NOW_MS})"
                ),
                &[&held.name, &held.owner, &(held.token as i64), &self.now()],
            )
            .await
            .map_err(|e| pg_error("releasing a mutex", e))?
            > 0;
        if released && self.pg.others_live() {
            notify(&tx, MUTEX_CHANNEL, self.node, &[&held.name]).await?;
        }
        commit(tx, "a mutex release").await?;
        if released {
            self.released.wake_all(held.name.as_str());
        }
        Ok(released)
    }

    async fn holder(&self, name: &str, _now: u64) -> Result<Option<MutexLease>> {
        let client = self.pg.client().await?;
        let row = client
            .query_opt_cached(
                &format!(
                    "SELECT name, owner, token, expires_at FROM mutexes
                     WHERE name = $1 AND expires_at > coalesce($2::bigint, {DB_NOW_MS})"
                ),
                &[&name, &self.now()],
            )
            .await
            .map_err(|e| pg_error("reading a mutex", e))?;
        Ok(row.as_ref().map(lease))
    }

    async fn holders(&self, _now: u64) -> Result<Vec<MutexLease>> {
        let client = self.pg.client().await?;
        let rows = client
            .query_cached(
                &format!(
                    "SELECT name, owner, token, expires_at FROM mutexes
                     WHERE expires_at > coalesce($1::bigint, {DB_NOW_MS}) ORDER BY name"
                ),
                &[&self.now()],
            )
            .await
            .map_err(|e| pg_error("listing mutexes", e))?;
        Ok(rows.iter().map(lease).collect())
    }
}
