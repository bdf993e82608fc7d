//! The ephemeral set's write ops, one file per write, applied inside the writer's transaction.
//! An op may run again after an abandoned batch, so it acts only on its transaction; followers
//! and the timer are told after the commit. Every change to an entry appends one change to the
//! set's stream in the same transaction.

pub(crate) mod remove;
pub(crate) mod sweep;
pub(crate) mod touch;
pub(crate) mod upsert;
