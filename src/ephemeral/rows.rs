//! Entry changes: every change to an entry goes through these helpers, which keep the entry,
//! its expiry entry, the set's count and the set's change stream in step.

use redb::ReadableTable;

use super::record::{ChangeKindV1, ChangeV1, EntryV1, SetV1, StoredChange, StoredEntry, StoredSet};
use super::tables::{EPH_CHANGES, EPH_ENTRIES, EPH_EXPIRY, EPH_SETS};
use crate::error::Result;
use crate::store::TxCtx;
use crate::store::codec::{decode, encode};

const POSITION_COUNTER: &str = "next:ephemeral_change";

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

pub(crate) fn write_set(ctx: &TxCtx<'_>, set: &str, s: &SetV1) -> Result<()> {
    let bytes = encode(&StoredSet::V1(s.clone()));
    ctx.tx.open_table(EPH_SETS)?.insert(set, bytes.as_slice())?;
    Ok(())
}

pub(crate) fn load(ctx: &TxCtx<'_>, set: &str, key: &str) -> Result<Option<EntryV1>> {
    let table = ctx.tx.open_table(EPH_ENTRIES)?;
    let Some(bytes) = table.get((set, key))? else {
        return Ok(None);
    };
    let StoredEntry::V1(e) = decode("ephemeral_entries", bytes.value())?;
    Ok(Some(e))
}

pub(crate) fn store_entry(ctx: &TxCtx<'_>, set: &str, key: &str, e: &EntryV1) -> Result<()> {
    let bytes = encode(&StoredEntry::V1(e.clone()));
    ctx.tx
        .open_table(EPH_ENTRIES)?
        .insert((set, key), bytes.as_slice())?;
    ctx.tx
        .open_table(EPH_EXPIRY)?
        .insert((e.expires_at, set, key), ())?;
    Ok(())
}

pub(crate) fn drop_entry(ctx: &TxCtx<'_>, set: &str, key: &str, e: &EntryV1) -> Result<()> {
    ctx.tx.open_table(EPH_ENTRIES)?.remove((set, key))?;
    ctx.tx
        .open_table(EPH_EXPIRY)?
        .remove((e.expires_at, set, key))?;
    Ok(())
}

pub(crate) fn append(ctx: &mut TxCtx<'_>, set: &str, key: &str, kind: ChangeKindV1) -> Result<u64> {
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

/// The entry if it exists and has not expired; an expired one is expired now, first.
pub(crate) fn live(ctx: &mut TxCtx<'_>, set: &str, key: &str) -> Result<Option<EntryV1>> {
    match load(ctx, set, key)? {
        Some(e) if e.expires_at <= ctx.now => {
            expire(ctx, set, key, &e)?;
            Ok(None)
        }
        other => Ok(other),
    }
}

pub(crate) fn expire(ctx: &mut TxCtx<'_>, set: &str, key: &str, e: &EntryV1) -> Result<()> {
    drop_entry(ctx, set, key, e)?;
    let mut meta = read_set(ctx, set)?;
    meta.entries = meta.entries.saturating_sub(1);
    write_set(ctx, set, &meta)?;
    append(ctx, set, key, ChangeKindV1::Expire)?;
    Ok(())
}
