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
        let stored = match table.get(id)? {
            Some(b) => Some(decode::<StoredSchedule>("schedules", b.value())?),
            None => None,
        };
        match stored {
            Some(StoredSchedule::V1(mut s)) => {
                s.cron = cron.to_string();
                s.zone = zone.to_string();
                table.insert(id, encode(&StoredSchedule::V1(s)).as_slice())?;
                true
            }
            None => false,
        }
    };
    tx.commit()?;
    Ok(found)
}
