//! Index helpers shared by the primitives that keep the same kinds of index (jobs and the
//! queue): a ready index, `(name, priority key, sequence) -> id`, whose first entry in a
//! name's range is the next item to hand out; and time indexes, `(instant ms, id)`, whose
//! first entry is the next instant with work.

use redb::ReadableTable;

use crate::error::{Error, Result};

/// A ready index's key: (name, priority key, sequence).
pub(crate) type ReadyKey<'n> = (&'n str, u32, u64);

/// The range of a name's entries in a ready index (the store takes entries off one in batches).
pub(crate) use crate::store::tables::ready_range;

/// Whether `name` has an entry in a ready index.
pub(crate) fn has_ready(
    ready: &impl ReadableTable<ReadyKey<'static>, u64>,
    name: &str,
) -> Result<bool> {
    Ok(ready.range(ready_range(name))?.next().is_some())
}

/// The keys of a time index due at `now` (instant ≤ `now`), earliest first, at most `limit`.
pub(crate) fn due(
    index: &impl ReadableTable<(u64, u64), ()>,
    now: u64,
    limit: usize,
) -> Result<Vec<(u64, u64)>> {
    index
        .range(..=(now, u64::MAX))?
        .take(limit)
        .map(|e| e.map(|(k, _)| k.value()).map_err(Error::from))
        .collect()
}

/// The earliest instant in a time index (or a grouped one), if any.
pub(crate) fn next_at<V: redb::Value + 'static>(
    index: &impl ReadableTable<(u64, u64), V>,
) -> Result<Option<u64>> {
    Ok(index.first()?.map(|(k, _)| k.value().0))
}
