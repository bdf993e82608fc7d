//! What a caller sees of a set: entries, snapshots, changes.

use serde::{Deserialize, Serialize};

/// A live entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Entry {
    /// Its key.
    pub key: String,
    /// Its value.
    pub value: Vec<u8>,
    /// When it expires unless touched (ms since the epoch).
    pub expires_at_ms: u64,
    /// When it was last upserted or touched.
    pub updated_at_ms: u64,
}

/// Every live entry of a set, sorted by key, and the stream position it reflects: follow the
/// changes from `position + 1` to stay in sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Snapshot {
    /// The live entries, sorted by key.
    pub entries: Vec<Entry>,
    /// The position of the last change included (0 if none).
    pub position: u64,
}

/// One change of a set's stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Change {
    /// Its position: increasing within the set. On a file, positions are shared by all sets,
    /// so they may skip numbers; on PostgreSQL each set counts 1, 2, 3, …
    pub position: u64,
    /// When it happened (ms since the epoch).
    pub at_ms: u64,
    /// The key it concerns.
    pub key: String,
    /// What happened.
    pub kind: ChangeKind,
}

/// What happened to an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChangeKind {
    /// Inserted or replaced.
    Upsert {
        /// The new value.
        value: Vec<u8>,
        /// Its expiry.
        expires_at_ms: u64,
    },
    /// Its TTL was extended.
    Touch {
        /// The new expiry.
        expires_at_ms: u64,
    },
    /// Removed by a caller.
    Delete,
    /// Its TTL ran out.
    Expire,
}

impl ChangeKind {
    /// The change's name: `upsert`, `touch`, `delete` or `expire`.
    pub fn name(&self) -> &'static str {
        match self {
            ChangeKind::Upsert { .. } => "upsert",
            ChangeKind::Touch { .. } => "touch",
            ChangeKind::Delete => "delete",
            ChangeKind::Expire => "expire",
        }
    }
}

/// An ephemeral set and how many entries it holds; see
/// [`Engine::ephemeral_sets`](crate::Engine::ephemeral_sets).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SetSummary {
    /// The set's name.
    pub name: String,
    /// Entries stored (an expired one counts until the timer removes it, within a second).
    pub entries: u64,
    /// The last position of its change stream (0: no change yet).
    pub position: u64,
}
