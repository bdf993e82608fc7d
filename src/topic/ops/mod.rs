//! The topic's write ops, one file per write, applied inside the writer's transaction. An op
//! may run again after an abandoned batch, so it acts only on its transaction; subscribers
//! and the timer are told after the commit.

pub(crate) mod commit;
pub(crate) mod publish;
pub(crate) mod seek;
pub(crate) mod sweep;
pub(crate) mod take;
