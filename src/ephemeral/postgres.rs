//! Ephemeral sets on PostgreSQL (feature `postgres`). Each set has a row holding its entry
//! count and its change position; every change locks that row first, so a set's changes are
//! numbered 1, 2, 3, … without gaps, in commit order, whichever node makes them. Entries past
//! their TTL are not live to any read; the pass of any node expires them (one `expire` change
//! each). Other nodes' followers are woken by `NOTIFY`.

use std::sync::Arc;

use deadpool_postgres::Transaction;

use super::info::{Change, Entry, SetSummary, Snapshot};
use super::record::{ChangeKindV1, ChangeV1, StoredChange};
use super::storage::{EphemeralStorage, EphemeralUpsert};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::postgres::{
    Cached, DB_NOW_MS, Postgres, begin, commit, notify, pg_error, pg_limit, pg_ms,
};
use crate::store::codec::{decode, encode};
use crate::timer::Timer;
use crate::wakeups::Followers;

/// The channel that says which sets changed (names, one per line).
pub(crate) const EPHEMERAL_CHANNEL: &str = "jobfile_ephemeral";

/// Entries expired, and changes pruned per set, in one pass.
const PASS_LIMIT: i64 = 1_000;

/// How often the pass runs at the latest, to expire what other nodes wrote.
const POLL_MS: u64 = 1_000;

/// The ephemeral sets' storage in a PostgreSQL schema.
pub(crate) struct PgEphemeral {
    pg: Postgres,
    /// This node, which signs its notifications.
    node: i64,
    /// The engine's clock when it was given one (tests); the database clock otherwise.
    clock: Option<Arc<dyn Clock>>,
    followers: Arc<Followers<String>>,
    pub(crate) timer: Arc<Timer>,
    change_retention_ms: u64,
}

impl std::fmt::Debug for PgEphemeral {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgEphemeral")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

/// An entry as stored.
struct Stored {
    expires_at: u64,
}

/// One set's changes in a write transaction, its row locked.
struct SetTx<'t, 'a> {
    tx: &'t Transaction<'a>,
    now: u64,
    set: &'t str,
    entries: u64,
    position: u64,
}

impl<'t, 'a> SetTx<'t, 'a> {
    /// Locks `set`'s row (creating it if new).
    async fn lock(tx: &'t Transaction<'a>, now: u64, set: &'t str) -> Result<SetTx<'t, 'a>> {
        tx.execute_cached(
            "INSERT INTO ephemeral_sets (name) VALUES ($1) ON CONFLICT DO NOTHING",
            &[&set],
        )
        .await
        .map_err(|e| pg_error("creating an ephemeral set", e))?;
        let row = tx
            .query_one_cached(
                "SELECT entries, position FROM ephemeral_sets WHERE name = $1 FOR UPDATE",
                &[&set],
            )
            .await
            .map_err(|e| pg_error("locking an ephemeral set", e))?;
        Ok(SetTx {
            tx,
            now,
            set,
            entries: row.get::<_, i64>(0) as u64,
            position: row.get::<_, i64>(1) as u64,
        })
    }

    async fn load(&self, key: &str) -> Result<Option<Stored>> {
        let row = self
            .tx
            .query_opt_cached(
                "SELECT expires_at FROM ephemeral_entries WHERE set_name = $1 AND key = $2",
                &[&self.set, &key],
            )
            .await
            .map_err(|e| pg_error("reading an entry", e))?;
        Ok(row.map(|r| Stored {
            expires_at: r.get::<_, i64>(0) as u64,
        }))
    }

    /// The entry if it exists and is live; one past its TTL expires now, first.
    async fn live(&mut self, key: &str) -> Result<Option<Stored>> {
        match self.load(key).await? {
            Some(e) if e.expires_at <= self.now => {
                self.drop_entry(key).await?;
                self.append(key, ChangeKindV1::Expire).await?;
                Ok(None)
            }
            other => Ok(other),
        }
    }

    async fn drop_entry(&mut self, key: &str) -> Result<()> {
        self.tx
            .execute_cached(
                "DELETE FROM ephemeral_entries WHERE set_name = $1 AND key = $2",
                &[&self.set, &key],
            )
            .await
            .map_err(|e| pg_error("removing an entry", e))?;
        self.entries = self.entries.saturating_sub(1);
        Ok(())
    }

    /// Appends a change to the set's stream; its position.
    async fn append(&mut self, key: &str, kind: ChangeKindV1) -> Result<u64> {
        self.position += 1;
        let change = StoredChange::V1(ChangeV1 {
            at: self.now,
            key: key.to_string(),
            kind,
        });
        self.tx
            .execute_cached(
                "INSERT INTO ephemeral_changes (set_name, position, at_ms, record)
                 VALUES ($1, $2, $3, $4)",
                &[
                    &self.set,
                    &(self.position as i64),
                    &(self.now as i64),
                    &encode(&change),
                ],
            )
            .await
            .map_err(|e| pg_error("appending a change", e))?;
        Ok(self.position)
    }

    /// Writes the set's count and position back.
    async fn save(&self) -> Result<()> {
        self.tx
            .execute_cached(
                "UPDATE ephemeral_sets SET entries = $2, position = $3 WHERE name = $1",
                &[&self.set, &(self.entries as i64), &(self.position as i64)],
            )
            .await
            .map_err(|e| pg_error("saving an ephemeral set", e))?;
        Ok(())
    }
}

fn change(position: i64, record: &[u8]) -> Result<Change> {
    let StoredChange::V1(c) = decode("ephemeral_changes", record)?;
    Ok(c.into_change(position as u64))
}

impl PgEphemeral {
    pub(crate) fn new(
        pg: Postgres,
        node: i64,
        clock: Option<Arc<dyn Clock>>,
        followers: Arc<Followers<String>>,
        change_retention_ms: u64,
    ) -> Self {
        PgEphemeral {
            pg,
            node,
            clock,
            followers,
            timer: Arc::new(Timer::new(Some(0))),
            change_retention_ms,
        }
    }

    /// The manual clock's time, if the engine has one; `None` stands for the database clock.
    fn now(&self) -> Option<u64> {
        self.clock.as_ref().map(|c| c.now_ms())
    }

    /// Runs `f` on `set` with its row locked, then saves the set and commits; after the
    /// commit the set's followers (here and, by `NOTIFY`, on other nodes) are told, and the
    /// timer lowered to `expires_at` if the change set one.
    async fn change<T>(
        &self,
        set: &str,
        f: impl AsyncFnOnce(&mut SetTx<'_, '_>) -> Result<(T, Option<u64>)>,
    ) -> Result<T> {
        let mut client = self.pg.client().await?;
        let (tx, now) = begin(&mut client, self.now(), "an ephemeral write").await?;
        let mut s = SetTx::lock(&tx, now, set).await?;
        let before = s.position;
        let (out, expires_at) = f(&mut s).await?;
        let changed = s.position != before;
        if changed {
            s.save().await?;
        }
        self.commit(tx, changed.then_some(set)).await?;
        if let Some(at) = expires_at {
            self.timer.lower(at);
        }
        Ok(out)
    }

    /// Commits `tx`; the followers of the sets it changed are told.
    async fn commit<'s>(
        &self,
        tx: Transaction<'_>,
        changed: impl IntoIterator<Item = &'s str> + Clone,
    ) -> Result<()> {
        let names: Vec<&str> = changed.clone().into_iter().collect();
        if !names.is_empty() && self.pg.others_live() {
            notify(&tx, EPHEMERAL_CHANNEL, self.node, &names).await?;
        }
        commit(tx, "an ephemeral write").await?;
        for set in names {
            self.followers.bump(set);
        }
        Ok(())
    }
}

impl EphemeralStorage for PgEphemeral {
    async fn upsert(&self, u: EphemeralUpsert) -> Result<u64> {
        self.change(&u.set, async |s| {
            if s.live(&u.key).await?.is_none() {
                if s.entries >= u.capacity as u64 {
                    return Err(Error::CapacityExceeded {
                        set: u.set.clone(),
                        capacity: u.capacity,
                    });
                }
                s.entries += 1;
            }
            let expires_at = s.now.saturating_add(u.ttl_ms);
            s.tx.execute_cached(
                "INSERT INTO ephemeral_entries (set_name, key, value, expires_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (set_name, key) DO UPDATE
                 SET value = $3, expires_at = $4, updated_at = $5",
                &[
                    &u.set,
                    &u.key,
                    &u.value,
                    &pg_ms(expires_at),
                    &(s.now as i64),
                ],
            )
            .await
            .map_err(|e| pg_error("storing an entry", e))?;
            let kind = ChangeKindV1::Upsert {
                value: u.value.clone(),
                expires_at,
            };
            Ok((s.append(&u.key, kind).await?, Some(expires_at)))
        })
        .await
    }

    async fn touch(&self, set: &str, key: &str, ttl_ms: u64) -> Result<Option<u64>> {
        self.change(set, async |s| {
            if s.live(key).await?.is_none() {
                return Ok((None, None));
            }
            let expires_at = s.now.saturating_add(ttl_ms);
            s.tx.execute_cached(
                "UPDATE ephemeral_entries SET expires_at = $3, updated_at = $4
                 WHERE set_name = $1 AND key = $2",
                &[&set, &key, &pg_ms(expires_at), &(s.now as i64)],
            )
            .await
            .map_err(|e| pg_error("touching an entry", e))?;
            let position = s.append(key, ChangeKindV1::Touch { expires_at }).await?;
            Ok((Some(position), Some(expires_at)))
        })
        .await
    }

    async fn remove(&self, set: &str, key: &str) -> Result<Option<u64>> {
        self.change(set, async |s| {
            if s.live(key).await?.is_none() {
                return Ok((None, None));
            }
            s.drop_entry(key).await?;
            Ok((Some(s.append(key, ChangeKindV1::Delete).await?), None))
        })
        .await
    }

    /// Live at `now` (the engine's manual clock), or at the database clock when the engine
    /// runs on it: the clock the entries' expiry was written with.
    async fn get(&self, set: &str, key: &str, now: u64) -> Result<Option<Entry>> {
        let at = self.clock.as_ref().map(|_| now as i64);
        let client = self.pg.client().await?;
        let row = client
            .query_opt_cached(
                &format!(
                    "SELECT value, expires_at, updated_at FROM ephemeral_entries
                     WHERE set_name = $1 AND key = $2 AND expires_at > coalesce($3::bigint, {DB_NOW_MS})"
                ),
                &[&set, &key, &at],
            )
            .await
            .map_err(|e| pg_error("reading an entry", e))?;
        Ok(row.map(|r| Entry {
            key: key.to_string(),
            value: r.get(0),
            expires_at_ms: r.get::<_, i64>(1) as u64,
            updated_at_ms: r.get::<_, i64>(2) as u64,
        }))
    }

    async fn snapshot(&self, set: &str, now: u64) -> Result<Snapshot> {
        let at = self.clock.as_ref().map(|_| now as i64);
        let client = self.pg.client().await?;
        // One statement, one snapshot: the entries and the position agree.
        let rows = client
            .query_cached(
                &format!(
                    "SELECT s.position, e.key, e.value, e.expires_at, e.updated_at
                     FROM (SELECT coalesce((SELECT position FROM ephemeral_sets WHERE name = $1), 0)
                              AS position) s
                     LEFT JOIN ephemeral_entries e
                       ON e.set_name = $1 AND e.expires_at > coalesce($2::bigint, {DB_NOW_MS})
                     ORDER BY e.key COLLATE \"C\""
                ),
                &[&set, &at],
            )
            .await
            .map_err(|e| pg_error("reading a set", e))?;
        let position = rows.first().map_or(0, |r| r.get::<_, i64>(0) as u64);
        let entries = rows
            .iter()
            .filter_map(|r| {
                Some(Entry {
                    key: r.get::<_, Option<String>>(1)?,
                    value: r.get(2),
                    expires_at_ms: r.get::<_, i64>(3) as u64,
                    updated_at_ms: r.get::<_, i64>(4) as u64,
                })
            })
            .collect();
        Ok(Snapshot { entries, position })
    }

    async fn read_changes(&self, set: &str, from: u64, limit: usize) -> Result<Vec<Change>> {
        let client = self.pg.client().await?;
        // One statement, one snapshot: the pruned position and the changes agree.
        let rows = client
            .query_cached(
                "SELECT s.pruned_through, c.position, c.record
                 FROM (SELECT coalesce((SELECT pruned_through FROM ephemeral_sets WHERE name = $1), 0)
                          AS pruned_through) s
                 LEFT JOIN LATERAL (
                     SELECT position, record FROM ephemeral_changes
                     WHERE set_name = $1 AND position >= $2 ORDER BY position LIMIT $3) c ON true",
                &[&set, &(from.min(i64::MAX as u64) as i64), &pg_limit(limit)],
            )
            .await
            .map_err(|e| pg_error("reading a set's changes", e))?;
        let pruned_through = rows.first().map_or(0, |r| r.get::<_, i64>(0) as u64);
        if pruned_through > 0 && from <= pruned_through {
            return Err(Error::Lagged {
                set: set.to_string(),
                requested: from,
                next_available: pruned_through + 1,
            });
        }
        rows.iter()
            .filter_map(|r| Some((r.get::<_, Option<i64>>(1)?, r.get::<_, Vec<u8>>(2))))
            .map(|(position, record)| change(position, &record))
            .collect()
    }

    async fn sets(&self) -> Result<Vec<SetSummary>> {
        let client = self.pg.client().await?;
        let rows = client
            .query_cached(
                "SELECT name, entries, position FROM ephemeral_sets ORDER BY name COLLATE \"C\"",
                &[],
            )
            .await
            .map_err(|e| pg_error("listing ephemeral sets", e))?;
        Ok(rows
            .iter()
            .map(|r| SetSummary {
                name: r.get(0),
                entries: r.get::<_, i64>(1) as u64,
                position: r.get::<_, i64>(2) as u64,
            })
            .collect())
    }

    /// Expires the entries past their TTL and prunes changes past retention, set by set in
    /// name order (so two nodes' passes never wait on each other in a cycle).
    async fn sweep(&self) -> Result<Option<u64>> {
        let retention = self.change_retention_ms;
        let mut client = self.pg.client().await?;
        let (tx, now) = begin(&mut client, self.now(), "an ephemeral pass").await?;
        let cutoff = now.saturating_sub(retention) as i64;
        let due: Vec<(String, String)> = tx
            .query_cached(
                "SELECT set_name, key FROM ephemeral_entries WHERE expires_at <= $1
                 ORDER BY expires_at LIMIT $2",
                &[&(now as i64), &PASS_LIMIT],
            )
            .await
            .map_err(|e| pg_error("finding expired entries", e))?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let old: Vec<String> = tx
            .query_cached(
                "SELECT DISTINCT set_name FROM ephemeral_changes WHERE at_ms <= $1",
                &[&cutoff],
            )
            .await
            .map_err(|e| pg_error("finding changes to prune", e))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut sets: Vec<&str> = due
            .iter()
            .map(|(s, _)| s.as_str())
            .chain(old.iter().map(String::as_str))
            .collect();
        sets.sort_unstable();
        sets.dedup();
        let mut expired_in = Vec::new();
        for set in sets {
            let mut s = SetTx::lock(&tx, now, set).await?;
            let keys: Vec<&str> = due
                .iter()
                .filter(|(name, _)| name == set)
                .map(|(_, key)| key.as_str())
                .collect();
            // Under the set's lock, so a concurrent upsert's new expiry is respected and
            // another node's pass does not expire the same entry twice.
            let gone: Vec<String> = tx
                .query_cached(
                    "DELETE FROM ephemeral_entries
                     WHERE set_name = $1 AND key = ANY($2) AND expires_at <= $3 RETURNING key",
                    &[&set, &keys, &(now as i64)],
                )
                .await
                .map_err(|e| pg_error("expiring entries", e))?
                .iter()
                .map(|r| r.get(0))
                .collect();
            for key in &gone {
                s.entries = s.entries.saturating_sub(1);
                s.append(key, ChangeKindV1::Expire).await?;
            }
            // Old changes go from the front, up to the first one still within retention.
            let pruned: Option<i64> = tx
                .query_one_cached(
                    "WITH front AS (
                         SELECT position, at_ms FROM ephemeral_changes
                         WHERE set_name = $1 ORDER BY position LIMIT $3),
                     kept AS (SELECT min(position) AS first FROM front WHERE at_ms > $2)
                     SELECT max(position) FROM front, kept
                     WHERE kept.first IS NULL OR position < kept.first",
                    &[&set, &cutoff, &PASS_LIMIT],
                )
                .await
                .map_err(|e| pg_error("finding changes to prune", e))?
                .get(0);
            if let Some(through) = pruned {
                tx.execute_cached(
                    "DELETE FROM ephemeral_changes WHERE set_name = $1 AND position <= $2",
                    &[&set, &through],
                )
                .await
                .map_err(|e| pg_error("pruning changes", e))?;
                tx.execute_cached(
                    "UPDATE ephemeral_sets SET pruned_through = greatest(pruned_through, $2)
                     WHERE name = $1",
                    &[&set, &through],
                )
                .await
                .map_err(|e| pg_error("pruning changes", e))?;
            }
            if !gone.is_empty() {
                s.save().await?;
                expired_in.push(set);
            }
        }
        let next: Option<i64> = tx
            .query_one_cached(
                "SELECT least((SELECT min(expires_at) FROM ephemeral_entries),
                              (SELECT min(at_ms) FROM ephemeral_changes) + $1 + 1)",
                &[&pg_ms(retention)],
            )
            .await
            .map_err(|e| pg_error("finding the next expiry", e))?
            .get(0);
        self.commit(tx, expired_in.iter().copied()).await?;
        let poll_at = now.saturating_add(POLL_MS);
        Ok(Some(
            next.map_or(poll_at, |n| (n.max(0) as u64).min(poll_at)),
        ))
    }
}
