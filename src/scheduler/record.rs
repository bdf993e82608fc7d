//! The scheduler's stored records. Versioned: only ever add variants.

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::tables::SCHEDULES;
use crate::error::{Error, Result};
use crate::job::ops::submit::NewJob;
use crate::job::record::BackoffV1;
use crate::store::codec::{decode, encode};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum StoredSchedule {
    V1(ScheduleV1),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ScheduleV1 {
    pub(crate) cron: String,
    pub(crate) zone: String,
    pub(crate) job: JobTemplateV1,
    pub(crate) misfire: MisfireV1,
    pub(crate) max_catch_up: u32,
    pub(crate) strict: bool,
    pub(crate) next_run: Option<u64>,
    pub(crate) dispatched: u64,
    pub(crate) dropped: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum MisfireV1 {
    Skip,
    CatchUpOne,
    CatchUpAll,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct JobTemplateV1 {
    pub(crate) name: String,
    pub(crate) input: Vec<u8>,
    pub(crate) priority: i32,
    pub(crate) meta: Vec<(String, String)>,
    pub(crate) max_attempts: u32,
    pub(crate) backoff: BackoffV1,
    pub(crate) lease_ms: u64,
    pub(crate) timeout_ms: Option<u64>,
    pub(crate) retention_ms: u64,
    pub(crate) crash_budget: u32,
}

impl JobTemplateV1 {
    pub(crate) fn from_new_job(j: NewJob) -> Self {
        JobTemplateV1 {
            name: j.name,
            input: j.input,
            priority: j.priority,
            meta: j.meta,
            max_attempts: j.max_attempts,
            backoff: j.backoff,
            lease_ms: j.lease_ms,
            timeout_ms: j.timeout_ms,
            retention_ms: j.retention_ms,
            crash_budget: j.crash_budget,
        }
    }

    pub(crate) fn job_with_key(&self, key: String) -> NewJob {
        NewJob {
            name: self.name.clone(),
            input: self.input.clone(),
            priority: self.priority,
            key: Some(key),
            meta: self.meta.clone(),
            max_attempts: self.max_attempts,
            backoff: self.backoff,
            lease_ms: self.lease_ms,
            timeout_ms: self.timeout_ms,
            retention_ms: self.retention_ms,
            crash_budget: self.crash_budget,
            run_at: None,
        }
    }
}

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
