//! Test support for jobs, behind the `testing` feature: record decoders for the fuzz targets
//! and a rewrite of a job into the first file format.

use redb::ReadableTable;

use super::record::{JobStateV1, StoredEvent, StoredJob, StoredJobRef};
use super::tables::{JOB_EVENTS, JOB_FINISHED, JOBS};
use crate::error::{Error, Result};
use crate::store::codec::decode;

/// Rewrites job `id` in the file at `path` (held by no engine) the way the first file format
/// stored it: a `V1` record with every event a row of the events table, and a completed job in
/// the finished index. Returns whether the job existed. For testing files written by earlier
/// versions.
pub(crate) fn rewrite_as_v1(path: &std::path::Path, id: u64) -> Result<bool> {
    use crate::store::codec::encode;
    let db = redb::Database::open(path).map_err(|e| Error::Storage(e.to_string()))?;
    let tx = db.begin_write()?;
    let found = {
        let mut jobs = tx.open_table(JOBS)?;
        let stored = match jobs.get(id)? {
            Some(bytes) => Some(decode::<StoredJob>("jobs", bytes.value())?.into_job()),
            None => None,
        };
        match stored {
            Some(mut job) => {
                let mut events = tx.open_table(JOB_EVENTS)?;
                for (event, seq) in std::mem::take(&mut job.inline_events)
                    .into_iter()
                    .zip(0u32..)
                {
                    events.insert((id, seq), encode(&StoredEvent::V1(event)).as_slice())?;
                }
                if let (JobStateV1::Completed { .. }, Some(code)) =
                    (&job.state, job.state.finished_code())
                {
                    tx.open_table(JOB_FINISHED)?.insert((code, id), ())?;
                }
                jobs.insert(id, encode(&StoredJobRef::V1(&job)).as_slice())?;
                true
            }
            None => false,
        }
    };
    tx.commit()?;
    Ok(found)
}

/// Decodes a stored job record (for the fuzz targets).
pub(crate) fn decode_job_record(bytes: &[u8]) -> Result<()> {
    let _: StoredJob = decode("jobs", bytes)?;
    Ok(())
}

/// Decodes a stored job event record (for the fuzz targets).
pub(crate) fn decode_event_record(bytes: &[u8]) -> Result<()> {
    let StoredEvent::V1(_) = decode("job_events", bytes)?;
    Ok(())
}
