//! The job write ops, one file per write, applied inside the writer's transaction.
//!
//! The replay contract: an op may run more than once. When another op of its batch fails, the
//! batch is abandoned and each op runs again in a transaction of its own. So an op validates
//! before it mutates, acts only on its transaction, and leaves everything that reaches beyond
//! it (wake-ups, signals, metrics callbacks) to [`Effects`](super::effects::Effects), applied
//! once, after the commit. State changes go through [`transition`](super::transition).

pub(crate) mod admin;
pub(crate) mod batch;
pub(crate) mod cancel;
pub(crate) mod claim;
pub(crate) mod depend;
pub(crate) mod finish;
pub(crate) mod flow;
pub(crate) mod recover;
pub(crate) mod step;
pub(crate) mod submit;
pub(crate) mod sweep;
