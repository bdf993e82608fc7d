//! Ephemeral tables: the entries, their expiry index and each set's change stream.

use redb::TableDefinition;

use crate::store::tables::SchemaTable;

/// Ephemeral entries: (set, key) -> the entry.
pub(crate) const EPH_ENTRIES: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("ephemeral_entries");
/// Ephemeral expiry: (expires at ms, set, key).
pub(crate) const EPH_EXPIRY: TableDefinition<(u64, &str, &str), ()> =
    TableDefinition::new("ephemeral_expiry");
/// Each set's change stream: (set, position) -> the change.
pub(crate) const EPH_CHANGES: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("ephemeral_changes");
/// Per-set bookkeeping: set -> entry count and pruned position.
pub(crate) const EPH_SETS: TableDefinition<&str, &[u8]> = TableDefinition::new("ephemeral_sets");

/// Every table above, for the store to create and to recognise at open.
pub(crate) const TABLES: &[&dyn SchemaTable] =
    &[&EPH_ENTRIES, &EPH_EXPIRY, &EPH_CHANGES, &EPH_SETS];
