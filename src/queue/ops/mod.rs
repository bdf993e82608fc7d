//! The queue's write ops, one file per write, applied inside the writer's transaction.
//!
//! The replay contract: an op may run more than once. When another op of its batch fails, the
//! batch is abandoned and each op runs again in a transaction of its own. So an op validates
//! before it mutates and acts only on its transaction; wake-ups and timer changes are left to
//! after-commit hooks (see `queue/redb.rs`). State changes go through [`rows`](super::rows).

pub(crate) mod ack;
pub(crate) mod dead;
pub(crate) mod dead_letter;
pub(crate) mod extend;
pub(crate) mod maintain;
pub(crate) mod nack;
pub(crate) mod pause;
pub(crate) mod recover;
pub(crate) mod send;
pub(crate) mod take;
