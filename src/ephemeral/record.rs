//! The ephemeral set's stored records. Versioned: only ever add variants.

use serde::{Deserialize, Serialize};

use super::info::{Change, ChangeKind};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum StoredEntry {
    V1(EntryV1),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EntryV1 {
    pub(crate) value: Vec<u8>,
    pub(crate) expires_at: u64,
    pub(crate) updated_at: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum StoredChange {
    V1(ChangeV1),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ChangeV1 {
    pub(crate) at: u64,
    pub(crate) key: String,
    pub(crate) kind: ChangeKindV1,
}

impl ChangeV1 {
    /// The change as a caller sees it, at `position` of its set's stream.
    pub(crate) fn into_change(self, position: u64) -> Change {
        Change {
            position,
            at_ms: self.at,
            key: self.key,
            kind: match self.kind {
                ChangeKindV1::Upsert { value, expires_at } => ChangeKind::Upsert {
                    value,
                    expires_at_ms: expires_at,
                },
                ChangeKindV1::Touch { expires_at } => ChangeKind::Touch {
                    expires_at_ms: expires_at,
                },
                ChangeKindV1::Delete => ChangeKind::Delete,
                ChangeKindV1::Expire => ChangeKind::Expire,
            },
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum ChangeKindV1 {
    Upsert { value: Vec<u8>, expires_at: u64 },
    Touch { expires_at: u64 },
    Delete,
    Expire,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) enum StoredSet {
    #[default]
    Empty,
    V1(SetV1),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct SetV1 {
    pub(crate) entries: u64,
    /// Every change at or below this position was pruned.
    pub(crate) pruned_through: u64,
}

/// Decodes a stored entry record (for the fuzz targets).
#[cfg(feature = "testing")]
#[cfg(feature = "testing")]
pub(crate) fn decode_entry_record(bytes: &[u8]) -> crate::Result<()> {
    let StoredEntry::V1(_) = crate::store::codec::decode("ephemeral_entries", bytes)?;
    Ok(())
}

/// Decodes a stored change record (for the fuzz targets).
#[cfg(feature = "testing")]
#[cfg(feature = "testing")]
pub(crate) fn decode_change_record(bytes: &[u8]) -> crate::Result<()> {
    let StoredChange::V1(_) = crate::store::codec::decode("ephemeral_changes", bytes)?;
    Ok(())
}

/// Decodes a stored set record (for the fuzz targets).
#[cfg(feature = "testing")]
#[cfg(feature = "testing")]
pub(crate) fn decode_set_record(bytes: &[u8]) -> crate::Result<()> {
    let _: StoredSet = crate::store::codec::decode("ephemeral_sets", bytes)?;
    Ok(())
}
