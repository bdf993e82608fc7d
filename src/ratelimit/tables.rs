//! Rate-limit tables: each identifier's counts, and the index that expires them.

use redb::TableDefinition;

use crate::store::tables::SchemaTable;

/// Counts: (limiter, identifier key) -> the identifier's window counts.
pub(crate) const RATE_COUNTS: TableDefinition<(&str, &[u8]), &[u8]> =
    TableDefinition::new("rate_limits");
/// Expiry: (instant the counts stop mattering, limiter, identifier key).
pub(crate) const RATE_EXPIRY: TableDefinition<(u64, &str, &[u8]), ()> =
    TableDefinition::new("rate_limit_expiry");

/// Every table above, for the store to create and to recognise at open.
pub(crate) const TABLES: &[&dyn SchemaTable] = &[&RATE_COUNTS, &RATE_EXPIRY];
