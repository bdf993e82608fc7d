//! Test support for the scheduler, behind the `testing` feature.

use redb::ReadableTable;

use super::record::StoredSchedule;
use super::tables::SCHEDULES;
use crate::error::{Error, Result};
use crate::store::codec::{decode, encode};

/// Checks that `bytes` decode as a stored schedule, for the fuzz targets.
pub(crate) fn decode_schedule_record(bytes: &[u8]) -> Result<()> {
    decode::<StoredSchedule>("schedules", bytes).map(|_| ())
}

/// Rewrites the stored expression and zone of schedule `id` in the closed file at `path`,
/// without checking them, the way a build with other cron or time-zone rules may have left
/// them. Returns whether the schedule existed.
pub(crate) fn rewrite_expression(
    path: &std::path::Path,
    id: &str,
    cron: &str,
    zone: &str,
) -> Result<bool> {
    let db = redb::Database::open(path).map_err(|e| Error::Storage(e.to_string()))?;
    let tx = db.begin_write()?;
    let found = {
        let mut table = tx.open_table(SCHEDULES)?;
        let rewritten = match table.get(id)? {
            Some(b) => Some(rewrite_expression_in(b.value(), cron, zone)?),
            None => None,
        };
        match rewritten {
            Some(bytes) => {
                table.insert(id, bytes.as_slice())?;
                true
            }
            None => false,
        }
    };
    tx.commit()?;
    Ok(found)
}

/// The stored schedule `record` with its expression and zone replaced, unchecked.
pub(crate) fn rewrite_expression_in(record: &[u8], cron: &str, zone: &str) -> Result<Vec<u8>> {
    let StoredSchedule::V1(mut s) = decode("schedules", record)?;
    s.cron = cron.to_string();
    s.zone = zone.to_string();
    Ok(encode(&StoredSchedule::V1(s)))
}
