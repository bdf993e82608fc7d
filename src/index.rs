//! Index helpers shared by the primitives that keep the same kinds of index (jobs and the
//! queue): a ready index, `(name, priority key, sequence) -> id`, whose first entry in a
//! name's range is the next item to hand out; and time indexes, `(instant ms, id)`, whose
//! first entry is the next instant with work.

use std::ops::RangeInclusive;

use redb::ReadableTable;

use crate::store::change::LoggedTable;

use crate::error::{Error, Result};

/// A ready index: (name, priority key, sequence) -> id.
pub(crate) type ReadyKey<'n> = (&'n str, u32, u64);

/// The range of `name`'s entries in a ready index, highest priority and then oldest first.
pub(crate) fn ready_range(name: &str) -> RangeInclusive<ReadyKey<'_>> {
    (name, 0u32, 0u64)..=(name, u32::MAX, u64::MAX)
}

/// Takes up to `max` of `name`'s first entries off a ready index in one pass (one descent and
/// one rewrite per leaf) and returns their ids in order.
pub(crate) fn take_ready(
    ready: &mut LoggedTable<'_, ReadyKey<'static>, u64>,
    name: &str,
    max: usize,
) -> Result<Vec<u64>> {
    let mut ids = Vec::with_capacity(max.min(1_024));
    ready.take_first_in(ready_range(name), max, |_, id| ids.push(id))?;
    Ok(ids)
}

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
