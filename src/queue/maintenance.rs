//! The queue's timed work: expired leases, delayed messages coming due and dead letters past
//! retention, handled by one op per pass on the queue's [`Timer`](crate::timer::Timer); receivers
//! of queues that gained ready messages are woken after the commit.

use std::sync::Arc;

use tokio::sync::watch;

use super::QueueCore;
use super::ops;

/// Maintenance messages handled per op; more remaining makes the next pass run at once.
const PASS_LIMIT: usize = 1_000;

pub(crate) async fn run(core: Arc<QueueCore>, stop: watch::Receiver<bool>) {
    let clock = core.store.clock().clone();
    crate::timer::run("queue", &core.timer, clock, stop, || pass(&core)).await;
}

/// One maintenance op: does what is due and wakes receivers after the commit. Returns the next
/// deadline.
pub(crate) async fn pass(core: &Arc<QueueCore>) -> crate::Result<Option<u64>> {
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
