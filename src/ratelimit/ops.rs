//! The rate limiter's write ops, applied inside the writer's transaction. An op may run again
//! after an abandoned batch, so it acts only on its transaction; the timer is lowered after
//! the commit.

use redb::ReadableTable;

use super::record::StoredCounts;
use super::tables::{RATE_COUNTS, RATE_EXPIRY};
use super::window::{Counts, RateLimitCheck, Window};
use crate::error::Result;
use crate::store::TxCtx;
use crate::store::codec::{decode, encode};

/// The stored counts of `key` under `name`.
fn load(ctx: &TxCtx<'_>, name: &str, key: &[u8]) -> Result<Option<Counts>> {
    let table = ctx.tx.open_table(RATE_COUNTS)?;
    let stored = match table.get((name, key))? {
        Some(bytes) => Some(decode::<StoredCounts>("rate_limits", bytes.value())?.into()),
        None => None,
    };
    Ok(stored)
}

/// Counts one check at the batch's time. Returns the check and when the stored counts stop
/// mattering (for the timer).
pub(crate) fn check(
    ctx: &mut TxCtx<'_>,
    name: &str,
    key: &[u8],
    window: Window,
) -> Result<(RateLimitCheck, u64)> {
    let before = load(ctx, name, key)?;
    let (counts, check) = window.check(before, ctx.now);
    let expires_at = counts.expires_at();
    let bytes = encode(&StoredCounts::from(counts));
    ctx.tx
        .open_table(RATE_COUNTS)?
        .insert((name, key), bytes.as_slice())?;
    let old_expiry = before.map(|c| c.expires_at());
    if old_expiry != Some(expires_at) {
        let mut expiry = ctx.tx.open_table(RATE_EXPIRY)?;
        if let Some(old) = old_expiry {
            expiry.remove((old, name, key))?;
        }
        expiry.insert((expires_at, name, key), ())?;
    }
    Ok((check, expires_at))
}

/// Forgets the counts of `key` under `name`.
pub(crate) fn reset(ctx: &mut TxCtx<'_>, name: &str, key: &[u8]) -> Result<bool> {
    let Some(before) = load(ctx, name, key)? else {
        return Ok(false);
    };
    ctx.tx.open_table(RATE_COUNTS)?.remove((name, key))?;
    ctx.tx
        .open_table(RATE_EXPIRY)?
        .remove((before.expires_at(), name, key))?;
    Ok(true)
}

/// Drops up to `limit` identifiers' counts that stopped mattering by the batch's time.
/// Returns when the next ones do.
pub(crate) fn sweep(ctx: &mut TxCtx<'_>, limit: usize) -> Result<Option<u64>> {
    let due: Vec<(u64, String, Vec<u8>)> = ctx
        .tx
        .open_table(RATE_EXPIRY)?
        .range(..(ctx.now.saturating_add(1), "", &[][..]))?
        .take(limit)
        .map(|e| {
            e.map(|(k, _)| {
                let (at, name, key) = k.value();
                (at, name.to_string(), key.to_vec())
            })
        })
        .collect::<Result<_, _>>()?;
    for (at, name, key) in &due {
        ctx.tx
            .open_table(RATE_COUNTS)?
            .remove((name.as_str(), key.as_slice()))?;
        ctx.tx
            .open_table(RATE_EXPIRY)?
            .remove((*at, name.as_str(), key.as_slice()))?;
    }
    let next = ctx
        .tx
        .open_table(RATE_EXPIRY)?
        .first()?
        .map(|(k, _)| k.value().0);
    Ok(next)
}
