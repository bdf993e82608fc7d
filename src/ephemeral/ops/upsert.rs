//! Upsert: insert or replace an entry, appending one change to its set's stream.

use crate::ephemeral::record::{ChangeKindV1, EntryV1};
use crate::ephemeral::rows::{append, drop_entry, live, read_set, store_entry, write_set};
use crate::error::{Error, Result};
use crate::store::TxCtx;

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
