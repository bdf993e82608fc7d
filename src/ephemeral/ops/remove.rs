//! Remove: delete a live entry.

use crate::ephemeral::record::ChangeKindV1;
use crate::ephemeral::rows::{append, drop_entry, live, read_set, write_set};
use crate::error::Result;
use crate::store::TxCtx;

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
