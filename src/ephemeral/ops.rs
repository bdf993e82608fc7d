//! The ephemeral set's write ops and its expiry sweep. Every change to an entry appends one
//! change to the set's stream in the same transaction.

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::tables::{EPH_CHANGES, EPH_ENTRIES, EPH_EXPIRY, EPH_SETS};
use crate::error::{Error, Result};
use crate::store::TxCtx;
use crate::store::codec::{decode, encode};

const POSITION_COUNTER: &str = "next:ephemeral_change";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum StoredEntry {
    V1(EntryV1),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EntryV1 {
    pub(crate) value: Vec<u8>,
    pub(crate) expires_at: u64,
    pub(crate) updated_at: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum StoredChange {
    V1(ChangeV1),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ChangeV1 {
    pub(crate) at: u64,
    pub(crate) key: String,
    pub(crate) kind: ChangeKindV1,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum ChangeKindV1 {
    Upsert { value: Vec<u8>, expires_at: u64 },
    Touch { expires_at: u64 },
    Delete,
    Expire,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) enum StoredSet {
    #[default]
    Empty,
    V1(SetV1),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct SetV1 {
    pub(crate) entries: u64,
    /// Every change at or below this position was pruned.
    pub(crate) pruned_through: u64,
}

pub(crate) fn read_set(ctx: &TxCtx<'_>, set: &str) -> Result<SetV1> {
    let table = ctx.tx.open_table(EPH_SETS)?;
    let stored = match table.get(set)? {
        Some(bytes) => decode("ephemeral_sets", bytes.value())?,
        None => StoredSet::Empty,
    };
    Ok(match stored {
        StoredSet::Empty => SetV1::default(),
        StoredSet::V1(s) => s,
    })
}

fn write_set(ctx: &TxCtx<'_>, set: &str, s: &SetV1) -> Result<()> {
    let bytes = encode(&StoredSet::V1(s.clone()));
    ctx.tx.open_table(EPH_SETS)?.insert(set, bytes.as_slice())?;
    Ok(())
}

fn load(ctx: &TxCtx<'_>, set: &str, key: &str) -> Result<Option<EntryV1>> {
    let table = ctx.tx.open_table(EPH_ENTRIES)?;
    let Some(bytes) = table.get((set, key))? else {
        return Ok(None);
    };
    let StoredEntry::V1(e) = decode("ephemeral_entries", bytes.value())?;
    Ok(Some(e))
}

fn store_entry(ctx: &TxCtx<'_>, set: &str, key: &str, e: &EntryV1) -> Result<()> {
    let bytes = encode(&StoredEntry::V1(e.clone()));
    ctx.tx
        .open_table(EPH_ENTRIES)?
        .insert((set, key), bytes.as_slice())?;
    ctx.tx
        .open_table(EPH_EXPIRY)?
        .insert((e.expires_at, set, key), ())?;
    Ok(())
}

fn drop_entry(ctx: &TxCtx<'_>, set: &str, key: &str, e: &EntryV1) -> Result<()> {
    ctx.tx.open_table(EPH_ENTRIES)?.remove((set, key))?;
    ctx.tx
        .open_table(EPH_EXPIRY)?
        .remove((e.expires_at, set, key))?;
    Ok(())
}

fn append(ctx: &mut TxCtx<'_>, set: &str, key: &str, kind: ChangeKindV1) -> Result<u64> {
    let position = ctx.next_id(POSITION_COUNTER)?;
    let change = ChangeV1 {
        at: ctx.now,
        key: key.to_string(),
        kind,
    };
    let bytes = encode(&StoredChange::V1(change));
    ctx.tx
        .open_table(EPH_CHANGES)?
        .insert((set, position), bytes.as_slice())?;
    Ok(position)
}

/// Inserts or replaces an entry. Returns the change's position.
pub(crate) fn upsert(
    ctx: &mut TxCtx<'_>,
    set: &str,
    key: &str,
    value: &[u8],
    ttl_ms: u64,
    capacity: usize,
) -> Result<u64> {
    let existing = live(ctx, set, key)?;
    let mut meta = read_set(ctx, set)?;
    match &existing {
        Some(old) => drop_entry(ctx, set, key, old)?,
        None => {
            if meta.entries >= capacity as u64 {
                return Err(Error::CapacityExceeded {
                    set: set.to_string(),
                    capacity,
                });
            }
            meta.entries += 1;
            write_set(ctx, set, &meta)?;
        }
    }
    let expires_at = ctx.now.saturating_add(ttl_ms);
    let entry = EntryV1 {
        value: value.to_vec(),
        expires_at,
        updated_at: ctx.now,
    };
    store_entry(ctx, set, key, &entry)?;
    let kind = ChangeKindV1::Upsert {
        value: value.to_vec(),
        expires_at,
    };
    append(ctx, set, key, kind)
}

/// Extends a live entry's TTL from now. Returns the change's position, or `None` if absent.
pub(crate) fn touch(ctx: &mut TxCtx<'_>, set: &str, key: &str, ttl_ms: u64) -> Result<Option<u64>> {
    let Some(mut entry) = live(ctx, set, key)? else {
        return Ok(None);
    };
    drop_entry(ctx, set, key, &entry)?;
    entry.expires_at = ctx.now.saturating_add(ttl_ms);
    entry.updated_at = ctx.now;
    store_entry(ctx, set, key, &entry)?;
    let kind = ChangeKindV1::Touch {
        expires_at: entry.expires_at,
    };
    append(ctx, set, key, kind).map(Some)
}

/// Removes a live entry. Returns the change's position, or `None` if absent.
pub(crate) fn remove(ctx: &mut TxCtx<'_>, set: &str, key: &str) -> Result<Option<u64>> {
    let Some(entry) = live(ctx, set, key)? else {
        return Ok(None);
    };
    drop_entry(ctx, set, key, &entry)?;
    let mut meta = read_set(ctx, set)?;
    meta.entries = meta.entries.saturating_sub(1);
    write_set(ctx, set, &meta)?;
    append(ctx, set, key, ChangeKindV1::Delete).map(Some)
}

/// The entry if it exists and has not expired; an expired one is expired now, first.
fn live(ctx: &mut TxCtx<'_>, set: &str, key: &str) -> Result<Option<EntryV1>> {
    match load(ctx, set, key)? {
        Some(e) if e.expires_at <= ctx.now => {
            expire(ctx, set, key, &e)?;
            Ok(None)
        }
        other => Ok(other),
    }
}

fn expire(ctx: &mut TxCtx<'_>, set: &str, key: &str, e: &EntryV1) -> Result<()> {
    drop_entry(ctx, set, key, e)?;
    let mut meta = read_set(ctx, set)?;
    meta.entries = meta.entries.saturating_sub(1);
    write_set(ctx, set, &meta)?;
    append(ctx, set, key, ChangeKindV1::Expire)?;
    Ok(())
}

/// What a sweep did.
#[derive(Debug, Default)]
pub(crate) struct Swept {
    /// Sets that got new changes.
    pub(crate) changed: Vec<String>,
    /// When the next sweep has work.
    pub(crate) next: Option<u64>,
}

/// Expires up to `limit` entries that are due, and prunes changes older than
/// `change_retention_ms` (up to `limit` per set).
pub(crate) fn sweep(ctx: &mut TxCtx<'_>, limit: usize, change_retention_ms: u64) -> Result<Swept> {
    let now = ctx.now;
    let due: Vec<(String, String)> = ctx
        .tx
        .open_table(EPH_EXPIRY)?
        .range(..(now.saturating_add(1), "", ""))?
        .take(limit)
        .map(|e| e.map(|(k, _)| (k.value().1.to_string(), k.value().2.to_string())))
        .collect::<Result<_, _>>()?;
    let mut out = Swept::default();
    for (set, key) in due {
        if let Some(entry) = load(ctx, &set, &key)? {
            expire(ctx, &set, &key, &entry)?;
        }
        if !out.changed.contains(&set) {
            out.changed.push(set);
        }
    }
    // Prune old changes, set by set.
    let sets: Vec<String> = ctx
        .tx
        .open_table(EPH_SETS)?
        .iter()?
        .map(|e| e.map(|(k, _)| k.value().to_string()))
        .collect::<Result<_, _>>()?;
    let cutoff = now.saturating_sub(change_retention_ms);
    let mut next_prune: Option<u64> = None;
    for set in sets {
        let old: Vec<(u64, u64)> = {
            let changes = ctx.tx.open_table(EPH_CHANGES)?;
            let mut old = Vec::new();
            for entry in changes.range((set.as_str(), 0)..=(set.as_str(), u64::MAX))? {
                let (k, v) = entry?;
                let StoredChange::V1(c) = decode("ephemeral_changes", v.value())?;
                if c.at > cutoff || old.len() >= limit {
                    let at = c.at.saturating_add(change_retention_ms).saturating_add(1);
                    next_prune = Some(next_prune.map_or(at, |n| n.min(at)));
                    break;
                }
                old.push((k.value().1, c.at));
            }
            old
        };
        if let Some((last, _)) = old.last().copied() {
            let mut changes = ctx.tx.open_table(EPH_CHANGES)?;
            for (pos, _) in &old {
                changes.remove((set.as_str(), *pos))?;
            }
            drop(changes);
            let mut meta = read_set(ctx, &set)?;
            meta.pruned_through = meta.pruned_through.max(last);
            write_set(ctx, &set, &meta)?;
        }
    }
    let next_expiry = ctx
        .tx
        .open_table(EPH_EXPIRY)?
        .first()?
        .map(|(k, _)| k.value().0);
    out.next = [next_expiry, next_prune].into_iter().flatten().min();
    Ok(out)
}

/// Decodes a stored entry record (for the fuzz targets).
#[cfg(feature = "testing")]
pub(crate) fn decode_entry_record(bytes: &[u8]) -> Result<()> {
    let StoredEntry::V1(_) = decode("ephemeral_entries", bytes)?;
    Ok(())
}

/// Decodes a stored change record (for the fuzz targets).
#[cfg(feature = "testing")]
pub(crate) fn decode_change_record(bytes: &[u8]) -> Result<()> {
    let StoredChange::V1(_) = decode("ephemeral_changes", bytes)?;
    Ok(())
}

/// Decodes a stored set record (for the fuzz targets).
#[cfg(feature = "testing")]
pub(crate) fn decode_set_record(bytes: &[u8]) -> Result<()> {
    let _: StoredSet = decode("ephemeral_sets", bytes)?;
    Ok(())
}
