//! Schedule rows: a schedule's record and its entry in the due index move together.

use redb::ReadableTable;

use super::record::{ScheduleV1, StoredSchedule};
use super::tables::{SCHEDULE_DUE, SCHEDULES};
use crate::error::{Error, Result};
use crate::store::TxCtx;
use crate::store::codec::{decode, encode};

pub(crate) fn load(ctx: &TxCtx<'_>, id: &str) -> Result<Option<ScheduleV1>> {
    let table = ctx.tx.open_table(SCHEDULES)?;
    let Some(b) = table.get(id)? else {
        return Ok(None);
    };
    let StoredSchedule::V1(s) = decode("schedules", b.value())?;
    Ok(Some(s))
}

/// Stores the schedule and moves its due-index entry from `old_next` to its `next_run`.
pub(crate) fn save(ctx: &TxCtx<'_>, id: &str, s: &ScheduleV1, old_next: Option<u64>) -> Result<()> {
    let bytes = encode(&StoredSchedule::V1(s.clone()));
    ctx.tx.open_table(SCHEDULES)?.insert(id, bytes.as_slice())?;
    let mut due = ctx.tx.open_table(SCHEDULE_DUE)?;
    if let Some(old) = old_next {
        due.remove((old, id))?;
    }
    if let Some(next) = s.next_run {
        due.insert((next, id), ())?;
    }
    Ok(())
}

pub(crate) fn unknown(id: &str) -> Error {
    Error::UnknownSchedule { id: id.to_string() }
}
