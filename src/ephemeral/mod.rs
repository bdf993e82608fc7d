//! Ephemeral entries: TTL key-value sets (presence, device heartbeats) with a change stream.
//!
//! Each set holds up to `capacity` live entries of at most `payload_limit` bytes. Every change
//! (`upsert`, `touch`, `delete`, `expire`) gets a position in the set's stream, committed with
//! the change. Entries expire on time, driven by a timer, and survive a restart until their
//! TTL ends. Old changes are pruned after the engine's change retention; a reader asking for a
//! pruned position gets [`Error::Lagged`].

mod backend;
pub(crate) mod core;
mod handle;
mod info;
mod ops;
mod options;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
pub(crate) mod record;
mod redb;
mod rows;
mod storage;
pub(crate) mod tables;
mod upsert;

pub use handle::{ChangeStream, Ephemeral};
pub use info::{Change, ChangeKind, Entry, SetSummary, Snapshot};
pub use options::EphemeralOptions;
pub use upsert::UpsertEntry;
