//! [`ListJobs`]: a page request of [`Jobs::list`](crate::Jobs::list), read when awaited.

use std::future::{Future, IntoFuture};
use std::pin::Pin;

use super::core::JobCore;
use super::info::{JobPage, JobState};
use super::storage::{JobQuery, JobStorage};
use crate::error::Result;

/// The page size when none is given.
const DEFAULT_LIMIT: usize = 100;

/// A page of jobs being asked for; `.await` it for a [`JobPage`]. Filters combine (all must
/// match). Jobs come newest first by id unless [`oldest_first`](ListJobs::oldest_first); pass
/// a page's [`next`](JobPage::next) to [`after`](ListJobs::after) for the page after it.
/// Paging walks ids, so no job is listed twice, even while jobs change state between pages
/// (a job that moves into the filter behind the cursor is not listed on this walk).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> jobfile::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// use jobfile::{Engine, JobSpec, JobState};
/// let engine = Engine::open(dir.path().join("app.jobfile")).await?;
/// let mail = engine.job::<String, ()>(JobSpec::new("mail"))?;
/// for to in ["ann", "bob", "cy"] {
///     mail.submit(to.to_string()).meta("tenant", "acme").await?;
/// }
/// let jobs = engine.jobs();
/// let first = jobs.list().name("mail").meta("tenant", "acme").limit(2).await?;
/// assert_eq!(first.jobs.len(), 2);
/// let rest = jobs.list().name("mail").state(JobState::Queued).after(first.next.unwrap()).await?;
/// assert_eq!(rest.jobs.len(), 1);
/// assert_eq!(rest.next, None);
/// # Ok(()) }
/// ```
#[must_use = "a list does nothing until it is awaited"]
#[derive(Debug)]
pub struct ListJobs<'j> {
    core: &'j JobCore,
    query: JobQuery,
}

impl<'j> ListJobs<'j> {
    pub(crate) fn new(core: &'j JobCore) -> Self {
        ListJobs {
            core,
            query: JobQuery {
                name: None,
                state: None,
                meta: None,
                after: None,
                oldest_first: false,
                limit: DEFAULT_LIMIT,
                scan_limit: None,
            },
        }
    }

    /// Only jobs of the definition named `name`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.query.name = Some(name.into());
        self
    }

    /// Only jobs in `state`. `state(JobState::Failed)` is the dead-letter view.
    pub fn state(mut self, state: JobState) -> Self {
        self.query.state = Some(state);
        self
    }

    /// Only jobs submitted with meta `key` set to `value` (a correlation id, a tenant).
    pub fn meta(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.meta = Some((key.into(), value.into()));
        self
    }

    /// Starts after job `id` in the page's order: pass the previous page's
    /// [`next`](JobPage::next).
    pub fn after(mut self, id: u64) -> Self {
        self.query.after = Some(id);
        self
    }

    /// Ascending ids (oldest first) instead of newest first.
    pub fn oldest_first(mut self) -> Self {
        self.query.oldest_first = true;
        self
    }

    /// At most `n` jobs in the page. Default 100.
    pub fn limit(mut self, n: usize) -> Self {
        self.query.limit = n;
        self
    }

    /// Examines at most `n` jobs for the page, matching or not, so that a selective filter
    /// costs a bounded read: the page may then hold fewer than `limit` jobs while
    /// [`next`](JobPage::next) says where to go on. Default: as many as it takes.
    ///
    /// Failed, cancelled and timed-out jobs are walked through their state's index, queued and
    /// running ones through theirs; other pages walk all jobs by id. On PostgreSQL the
    /// database answers the filters from its indexes, so a page is always complete and this
    /// does not apply.
    pub fn scan_limit(mut self, n: usize) -> Self {
        self.query.scan_limit = Some(n.max(1));
        self
    }
}

impl<'j> IntoFuture for ListJobs<'j> {
    type Output = Result<JobPage>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<JobPage>> + Send + 'j>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.core.backend.list(self.query))
    }
}
