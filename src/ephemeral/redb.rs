//! Ephemeral sets over the embedded file: each operation one op sent to the writer, each read
//! one read transaction. Followers and the expiry timer are told after the commit.

use std::sync::Arc;

use redb::{ReadTransaction, ReadableTable};

use super::info::{Change, Entry, SetSummary, Snapshot};
use super::ops;
use super::record::{StoredChange, StoredEntry, StoredSet};
use super::storage::{EphemeralStorage, EphemeralUpsert};
use super::tables::{EPH_CHANGES, EPH_ENTRIES, EPH_SETS};
use crate::error::{Error, Result};
use crate::store::codec::decode;
use crate::store::{Store, TxCtx};
use crate::timer::Timer;
use crate::wakeups::Followers;

/// Entries expired (and changes pruned per set) in one timer pass.
const SWEEP_LIMIT: usize = 1_000;

/// Ephemeral sets' storage in the file.
#[derive(Debug)]
pub(crate) struct RedbEphemeral {
    store: Arc<Store>,
    /// Each set's followers, told after the commit of a change.
    followers: Arc<Followers<String>>,
    /// When the next expiry or pruning is due.
    pub(crate) timer: Arc<Timer>,
    change_retention_ms: u64,
}

impl RedbEphemeral {
    pub(crate) fn new(
        store: Arc<Store>,
        followers: Arc<Followers<String>>,
        change_retention_ms: u64,
    ) -> Self {
        RedbEphemeral {
            store,
            followers,
            timer: Arc::new(Timer::new(None)),
            change_retention_ms,
        }
    }

    /// Entries that expired while no process held the file expire now.
    pub(crate) fn recover(&self, ctx: &mut TxCtx<'_>) -> Result<()> {
        if let Some(at) = ops::sweep::sweep(ctx, usize::MAX, self.change_retention_ms)?.next {
            self.timer.lower(at);
        }
        Ok(())
    }

    /// After the commit: the set's followers are told, and the timer lowered to `expires_at`.
    fn changed(&self, ctx: &mut TxCtx<'_>, set: &str, expires_at: Option<u64>) {
        let (followers, timer, set) = (self.followers.clone(), self.timer.clone(), set.to_string());
        ctx.after_commit(move || {
            if let Some(at) = expires_at {
                timer.lower(at);
            }
            followers.bump(set.as_str());
        });
    }

    fn handle(&self) -> RedbEphemeral {
        RedbEphemeral {
            store: self.store.clone(),
            followers: self.followers.clone(),
            timer: self.timer.clone(),
            change_retention_ms: self.change_retention_ms,
        }
    }
}

impl EphemeralStorage for RedbEphemeral {
    async fn upsert(&self, u: EphemeralUpsert) -> Result<u64> {
        let this = self.handle();
        self.store
            .write(move |ctx| {
                let position =
                    ops::upsert::upsert(ctx, &u.set, &u.key, &u.value, u.ttl_ms, u.capacity)?;
                let at = ctx.now.saturating_add(u.ttl_ms);
                this.changed(ctx, &u.set, Some(at));
                Ok(position)
            })
            .await
    }

    async fn touch(&self, set: &str, key: &str, ttl_ms: u64) -> Result<Option<u64>> {
        let (this, set, key) = (self.handle(), set.to_string(), key.to_string());
        self.store
            .write(move |ctx| {
                let position = ops::touch::touch(ctx, &set, &key, ttl_ms)?;
                let at = ctx.now.saturating_add(ttl_ms);
                this.changed(ctx, &set, Some(at));
                Ok(position)
            })
            .await
    }

    async fn remove(&self, set: &str, key: &str) -> Result<Option<u64>> {
        let (this, set, key) = (self.handle(), set.to_string(), key.to_string());
        self.store
            .write(move |ctx| {
                let position = ops::remove::remove(ctx, &set, &key)?;
                this.changed(ctx, &set, None);
                Ok(position)
            })
            .await
    }

    async fn get(&self, set: &str, key: &str, now: u64) -> Result<Option<Entry>> {
        self.store.read(|rtx| {
            let table = rtx.open_table(EPH_ENTRIES)?;
            let Some(bytes) = table.get((set, key))? else {
                return Ok(None);
            };
            let StoredEntry::V1(e) = decode("ephemeral_entries", bytes.value())?;
            Ok((e.expires_at > now).then(|| Entry {
                key: key.to_string(),
                value: e.value,
                expires_at_ms: e.expires_at,
                updated_at_ms: e.updated_at,
            }))
        })
    }

    async fn snapshot(&self, set: &str, now: u64) -> Result<Snapshot> {
        self.store.read(|rtx| {
            let table = rtx.open_table(EPH_ENTRIES)?;
            let mut entries = Vec::new();
            for item in table.range((set, "")..)? {
                let (k, v) = item?;
                let (s, key) = k.value();
                if s != set {
                    break;
                }
                let StoredEntry::V1(e) = decode("ephemeral_entries", v.value())?;
                if e.expires_at > now {
                    entries.push(Entry {
                        key: key.to_string(),
                        value: e.value,
                        expires_at_ms: e.expires_at,
                        updated_at_ms: e.updated_at,
                    });
                }
            }
            let changes = rtx.open_table(EPH_CHANGES)?;
            let position = changes
                .range((set, 0)..=(set, u64::MAX))?
                .next_back()
                .transpose()?
                .map(|(k, _)| k.value().1)
                .unwrap_or(0);
            Ok(Snapshot { entries, position })
        })
    }

    async fn read_changes(&self, set: &str, from: u64, limit: usize) -> Result<Vec<Change>> {
        self.store.read(|rtx| read_changes(rtx, set, from, limit))
    }

    /// Expires what is due and prunes old changes.
    async fn sets(&self) -> Result<Vec<SetSummary>> {
        self.store.read(|rtx| {
            let changes = rtx.open_table(EPH_CHANGES)?;
            let mut out = Vec::new();
            for entry in rtx.open_table(EPH_SETS)?.iter()? {
                let (name, bytes) = entry?;
                let name = name.value();
                if let StoredSet::V1(set) = decode("ephemeral_sets", bytes.value())? {
                    let last = changes
                        .range((name, 0)..=(name, u64::MAX))?
                        .next_back()
                        .transpose()?
                        .map(|(k, _)| k.value().1);
                    out.push(SetSummary {
                        name: name.to_string(),
                        entries: set.entries,
                        position: last.unwrap_or(set.pruned_through),
                    });
                }
            }
            Ok(out)
        })
    }

    async fn sweep(&self) -> Result<Option<u64>> {
        let (followers, retention) = (self.followers.clone(), self.change_retention_ms);
        self.store
            .write(move |ctx| {
                let swept = ops::sweep::sweep(ctx, SWEEP_LIMIT, retention)?;
                let (followers, changed) = (followers.clone(), swept.changed.clone());
                ctx.after_commit(move || changed.iter().for_each(|s| followers.bump(s.as_str())));
                Ok(swept.next)
            })
            .await
    }
}

fn read_changes(rtx: &ReadTransaction, set: &str, from: u64, limit: usize) -> Result<Vec<Change>> {
    let sets = rtx.open_table(EPH_SETS)?;
    if let Some(bytes) = sets.get(set)?
        && let StoredSet::V1(meta) = decode("ephemeral_sets", bytes.value())?
        && meta.pruned_through > 0
        && from <= meta.pruned_through
    {
        return Err(Error::Lagged {
            set: set.to_string(),
            requested: from,
            next_available: meta.pruned_through + 1,
        });
    }
    let changes = rtx.open_table(EPH_CHANGES)?;
    let mut out = Vec::new();
    for item in changes.range((set, from)..=(set, u64::MAX))?.take(limit) {
        let (k, v) = item?;
        let StoredChange::V1(c) = decode("ephemeral_changes", v.value())?;
        out.push(c.into_change(k.value().1));
    }
    Ok(out)
}
