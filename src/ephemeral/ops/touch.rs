//! Touch: extend a live entry's TTL.

use crate::ephemeral::record::ChangeKindV1;
use crate::ephemeral::rows::{append, drop_entry, live, store_entry};
use crate::error::Result;
use crate::store::TxCtx;

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
