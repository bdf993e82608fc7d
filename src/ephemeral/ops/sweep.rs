//! The timed pass: entries past their TTL expire, changes past retention are pruned.

use redb::ReadableTable;

use crate::ephemeral::record::StoredChange;
use crate::ephemeral::rows::{expire, load, read_set, write_set};
use crate::ephemeral::tables::{EPH_CHANGES, EPH_EXPIRY, EPH_SETS};
use crate::error::Result;
use crate::store::TxCtx;
use crate::store::codec::decode;

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
