//! The scheduler's stored records. Versioned: only ever add variants.

use serde::{Deserialize, Serialize};

pub(crate) use crate::job::record::JobTemplateV1;

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

impl JobTemplateV1 {
    /// The job of a schedule's run: the template's input, under the run's `key`.
    pub(crate) fn job_with_key(&self, key: String) -> crate::job::ops::submit::NewJob {
        self.job(self.input.clone(), Some(key))
    }
}
