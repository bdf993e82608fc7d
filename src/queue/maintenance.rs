//! The queue's part in the engine: at open, redeliver what the previous process had leased;
//! then its timed work (expired leases, delayed messages coming due, messages past their age,
//! dead letters past retention), one op per pass on the queue's [`Timer`](crate::timer::Timer).
//! Receivers of queues that gained ready messages are woken after the commit.

use std::sync::Arc;

use super::{QueueCore, ops, tables};
use crate::error::Result;
use crate::primitive::{Primitive, Work};
use crate::store::{SchemaTable, TxCtx};
use crate::timer::Timer;

/// Maintenance messages handled per op; more remaining makes the next pass run at once.
const PASS_LIMIT: usize = 1_000;

impl Primitive for QueueCore {
    fn name(&self) -> &'static str {
        "queue"
    }

    fn tables(&self) -> &'static [&'static dyn SchemaTable] {
        tables::TABLES
    }

    fn recover(self: Arc<Self>, ctx: &mut TxCtx<'_>, epoch: u64) -> Result<()> {
        let redelivered = ops::recover(ctx)?;
        if redelivered > 0 {
            tracing::info!(
                epoch,
                redelivered,
                "redelivered messages leased by the previous process"
            );
        }
        // Timed work that came due while no process held the file is done at once.
        if let Some(at) = ops::maintain(ctx, usize::MAX)?.next_deadline {
            self.timer.lower(at);
        }
        Ok(())
    }

    fn timer(&self) -> Option<&Timer> {
        Some(&self.timer)
    }

    fn pass(self: Arc<Self>) -> Work<Result<Option<u64>>> {
        Box::pin(async move { pass(&self).await })
    }
}

/// One maintenance op: does what is due and wakes receivers after the commit. Returns the next
/// deadline.
async fn pass(core: &Arc<QueueCore>) -> Result<Option<u64>> {
    let core2 = core.clone();
    core.store
        .write(move |ctx| {
            let done = ops::maintain(ctx, PASS_LIMIT)?;
            let core = core2.clone();
            let ready = done.ready.clone();
            ctx.after_commit(move || {
                for (queue, n) in ready {
                    core.wake(&queue, n);
                }
            });
            Ok(done.next_deadline)
        })
        .await
}
