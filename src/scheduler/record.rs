//! The scheduler's stored records. Versioned: only ever add variants.

use serde::{Deserialize, Serialize};

use crate::job::ops::submit::NewJob;
use crate::job::record::BackoffV1;

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
            after: Vec::new(),
            batch: None,
        }
    }
}
