//! The scheduler's write ops, one file per write, applied inside the writer's transaction.
//!
//! The replay contract: an op may run more than once (an abandoned batch is replayed one op
//! per transaction), so an op acts only on its transaction; what reaches beyond it (metrics,
//! the timer) happens after the commit.

pub(crate) mod clear_dead;
pub(crate) mod dispatch;
pub(crate) mod register;
pub(crate) mod remove;
pub(crate) mod trigger;
