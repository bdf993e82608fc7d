//! Mutex tables: each named lease's current (or last) holder.

use redb::TableDefinition;

use crate::store::tables::SchemaTable;

/// Named mutex leases: name -> the current (or last) holder's lease.
pub(crate) const MUTEXES: TableDefinition<&str, &[u8]> = TableDefinition::new("mutexes");

/// Every table above, for the store to create and to recognise at open.
pub(crate) const TABLES: &[&dyn SchemaTable] = &[&MUTEXES];
