//! A page of jobs from the file: the walk by id behind [`Jobs::list`](crate::Jobs::list).
//!
//! Failed, cancelled and timed-out jobs are walked through their index, queued and running
//! ones through the ready, delayed and lease indexes while those hold at most 10,000 jobs.
//! Completed jobs are not indexed (it saves a write per job), so a page of them, a page of a
//! large queue, and a page of any state walk the jobs by id and also examine the jobs of
//! other states between them: `scan_limit` bounds that work.

use redb::{ReadTransaction, ReadableTable, ReadableTableMetadata};

use super::{find_job, with_input_of};
use crate::error::Result;
use crate::job::info::{JobInfo, JobPage, JobState, info};
use crate::job::record::{JobV1, StoredJob};
use crate::job::storage::JobQuery;
use crate::job::tables::{JOB_DELAYED, JOB_FINISHED, JOB_LEASES, JOB_READY, JOBS};
use crate::store::codec::decode;

/// The page of jobs that match `query`.
pub(super) fn page(rtx: &ReadTransaction, query: &JobQuery) -> Result<JobPage> {
    let (low, high) = match id_bounds(query) {
        Some(bounds) => bounds,
        None => return Ok(JobPage::default()),
    };
    let jobs = rtx.open_table(JOBS)?;
    let mut walk = Walk {
        rtx,
        query,
        jobs: Vec::new(),
        examined: 0,
    };
    match query.state.and_then(JobState::finished_code) {
        // Completed jobs are not indexed: walk the records.
        Some(code) if query.state != Some(JobState::Completed) => {
            let index = rtx.open_table(JOB_FINISHED)?;
            let range = index.range((code, low)..=(code, high))?;
            let ids: Box<dyn Iterator<Item = _>> = if query.oldest_first {
                Box::new(range)
            } else {
                Box::new(range.rev())
            };
            for entry in ids {
                let id = entry?.0.value().1;
                if let Some(next) = walk.visit(id, find_job(&jobs, id)?)? {
                    return Ok(walk.finish(Some(next)));
                }
            }
        }
        None if matches!(query.state, Some(JobState::Queued | JobState::Running))
            && !large(rtx, query.state)? =>
        {
            // Queued or running: their indexes are ordered by time, not id; while the sets
            // are small they are read whole and sorted (a large one is walked by id below).
            let mut ids = Vec::new();
            if query.state == Some(JobState::Running) {
                for entry in rtx.open_table(JOB_LEASES)?.iter()? {
                    ids.push(entry?.0.value().1);
                }
            } else {
                for entry in rtx.open_table(JOB_READY)?.iter()? {
                    ids.push(entry?.1.value());
                }
                for entry in rtx.open_table(JOB_DELAYED)?.iter()? {
                    ids.push(entry?.0.value().1);
                }
            }
            ids.retain(|id| (low..=high).contains(id));
            ids.sort_unstable();
            if !query.oldest_first {
                ids.reverse();
            }
            for id in ids {
                if let Some(next) = walk.visit(id, find_job(&jobs, id)?)? {
                    return Ok(walk.finish(Some(next)));
                }
            }
        }
        _ => {
            let range = jobs.range(low..=high)?;
            let records: Box<dyn Iterator<Item = _>> = if query.oldest_first {
                Box::new(range)
            } else {
                Box::new(range.rev())
            };
            for entry in records {
                let (id, bytes) = entry?;
                let job = decode::<StoredJob>("jobs", bytes.value())?.into_job();
                if let Some(next) = walk.visit(id.value(), Some(job))? {
                    return Ok(walk.finish(Some(next)));
                }
            }
        }
    }
    Ok(walk.finish(None))
}

/// Queued or running jobs beyond this many are listed by walking all jobs by id (bounded by
/// `scan_limit`), not by reading their time-ordered indexes whole.
const COLLECT_LIMIT: u64 = 10_000;

/// Whether the index of queued (ready and delayed) or running jobs is too large to read whole
/// for one page.
fn large(rtx: &ReadTransaction, state: Option<JobState>) -> Result<bool> {
    let n = if state == Some(JobState::Running) {
        rtx.open_table(JOB_LEASES)?.len()?
    } else {
        rtx.open_table(JOB_READY)?.len()? + rtx.open_table(JOB_DELAYED)?.len()?
    };
    Ok(n > COLLECT_LIMIT)
}

/// The ids a page may hold, `low..=high`; `None` if none.
fn id_bounds(query: &JobQuery) -> Option<(u64, u64)> {
    if query.limit == 0 {
        return None;
    }
    match (query.after, query.oldest_first) {
        (None, _) => Some((0, u64::MAX)),
        (Some(after), true) => after.checked_add(1).map(|low| (low, u64::MAX)),
        (Some(after), false) => after.checked_sub(1).map(|high| (0, high)),
    }
}

/// A page being filled.
struct Walk<'a> {
    rtx: &'a ReadTransaction,
    query: &'a JobQuery,
    jobs: Vec<JobInfo>,
    examined: usize,
}

impl Walk<'_> {
    /// Looks at job `id`; `Some(id)` when the page is full or its scan budget spent, so the
    /// next page starts after `id`.
    fn visit(&mut self, id: u64, job: Option<JobV1>) -> Result<Option<u64>> {
        self.examined += 1;
        if let Some(job) = job.filter(|job| self.matches(job)) {
            self.jobs.push(info(id, with_input_of(self.rtx, id, job)?));
        }
        let full = self.jobs.len() >= self.query.limit;
        let spent = self.query.scan_limit.is_some_and(|n| self.examined >= n);
        Ok((full || spent).then_some(id))
    }

    fn matches(&self, job: &JobV1) -> bool {
        let q = self.query;
        q.name.as_ref().is_none_or(|name| *name == job.name)
            && q.state
                .is_none_or(|state| state == JobState::of(&job.state))
            && q.meta
                .as_ref()
                .is_none_or(|(k, v)| job.meta.iter().any(|(mk, mv)| mk == k && mv == v))
    }

    fn finish(self, next: Option<u64>) -> JobPage {
        JobPage {
            jobs: self.jobs,
            next,
        }
    }
}
