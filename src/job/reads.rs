//! Reading jobs from a read transaction of the file.

use super::core::JobCore;
use super::record::{JobV1, StoredJob};
use super::tables::{JOB_INPUTS, JOBS};
use crate::error::{Error, Result};
use crate::store::codec::decode;

pub(crate) fn load_job(core: &JobCore, id: u64) -> Result<JobV1> {
    core.store.read(|rtx| read_job(&rtx.open_table(JOBS)?, id))
}

/// The job `id` with its input in place (also one stored apart), for a view of it.
pub(crate) fn load_job_with_input(core: &JobCore, id: u64) -> Result<JobV1> {
    core.store.read(|rtx| {
        let job = read_job(&rtx.open_table(JOBS)?, id)?;
        with_input(rtx, id, job)
    })
}

/// Puts an input stored apart into `job`.
pub(crate) fn with_input(rtx: &redb::ReadTransaction, id: u64, mut job: JobV1) -> Result<JobV1> {
    if job.input_apart {
        job.input = crate::store::apart::read(&rtx.open_table(JOB_INPUTS)?, "job_inputs", id)?;
    }
    Ok(job)
}

/// The job `id` from an open jobs table of a read transaction.
pub(crate) fn read_job(jobs: &redb::ReadOnlyTable<u64, &[u8]>, id: u64) -> Result<JobV1> {
    let bytes = jobs.get(id)?.ok_or(Error::UnknownJob { id })?;
    let job = decode::<StoredJob>("jobs", bytes.value())?.into_job();
    Ok(job)
}
