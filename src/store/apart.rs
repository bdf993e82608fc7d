//! Values stored apart from their record. A record is rewritten at every change of what it
//! describes (a job's heartbeat, a message's `extend`); a large value inside it would be
//! rewritten with it. So a value over [`INLINE_MAX`] bytes is written once, to a table of its
//! own keyed by the record's id, and the record keeps a flag instead.

use redb::ReadableTable;

use crate::error::{Error, Result};

/// The largest value kept inside its record.
pub(crate) const INLINE_MAX: usize = 1024;

/// Whether a value of `len` bytes is stored apart.
pub(crate) fn goes_apart(len: usize) -> bool {
    len > INLINE_MAX
}

/// The value stored apart for record `id` in `table` (named `table_name` in errors). A record
/// flagged as having one, with none there, is a damaged file.
pub(crate) fn read(
    table: &impl ReadableTable<u64, &'static [u8]>,
    table_name: &'static str,
    id: u64,
) -> Result<Vec<u8>> {
    match table.get(id)? {
        Some(bytes) => Ok(bytes.value().to_vec()),
        None => Err(Error::Corrupt {
            table: table_name,
            detail: format!("record {id} has its value stored apart, but there is none"),
        }),
    }
}
