//! What the engine knows of a primitive (jobs, the queue, topics, ...): its tables, what it
//! does when a process takes the file over, its timed work, and its part in a shutdown. The
//! engine keeps one list of them and loops over it; adding a primitive adds one line there.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::error::Result;
use crate::store::{SchemaTable, TxCtx};
use crate::timer::Timer;

/// A boxed future, as the engine runs a primitive's work without knowing its type.
pub(crate) type Work<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// One primitive, as the engine drives it.
pub(crate) trait Primitive: std::fmt::Debug + Send + Sync + 'static {
    /// Its name in logs: "job", "queue", ...
    fn name(&self) -> &'static str;

    /// Its tables: created in a new file, and known (not foreign) in an existing one.
    fn tables(&self) -> &'static [&'static dyn SchemaTable];

    /// Runs at open, inside the transaction that starts leadership `epoch`: puts back what the
    /// previous process left mid-way, does the timed work that came due while no process held
    /// the file, and lowers its timer to the next. Like every write op it must not act outside
    /// the transaction before the commit (see [`TxCtx::after_commit`]).
    fn recover(self: Arc<Self>, ctx: &mut TxCtx<'_>, epoch: u64) -> Result<()>;

    /// The timer its timed work waits on; `None` for a primitive without timed work.
    fn timer(&self) -> Option<&Timer>;

    /// One pass of its timed work (one commit at most per kind of work, bounded); returns the
    /// next instant it has work at. Never called for a primitive without a timer.
    fn pass(self: Arc<Self>) -> Work<Result<Option<u64>>>;

    /// At shutdown, first: stops or hands back what it runs, by `until` at the latest.
    fn drain(self: Arc<Self>, _until: tokio::time::Instant) -> Work<()> {
        Box::pin(async {})
    }

    /// At shutdown, once the background tasks have stopped and before the file closes.
    fn stopped(&self) {}
}
