//! Topic tables: the events, their keys, per-topic bookkeeping and consumer groups.

use redb::TableDefinition;

use crate::store::tables::SchemaTable;

/// Topic events: (topic, sequence) -> the event.
pub(crate) const TOPIC_EVENTS: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("topic_events");
/// Topic idempotency keys: (topic, key) -> sequence, kept while the event is retained.
pub(crate) const TOPIC_KEYS: TableDefinition<(&str, &str), u64> =
    TableDefinition::new("topic_keys");
/// Per-topic bookkeeping: topic -> last sequence and pruned position.
pub(crate) const TOPICS: TableDefinition<&str, &[u8]> = TableDefinition::new("topics");
/// Consumer groups: (topic, group) -> cursors.
pub(crate) const TOPIC_GROUPS: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("topic_groups");
/// Deliveries to a group not yet committed: (topic, group, sequence) -> lease.
pub(crate) const TOPIC_PENDING: TableDefinition<(&str, &str, u64), &[u8]> =
    TableDefinition::new("topic_pending");

/// Every table above, for the store to create and to recognise at open.
pub(crate) const TABLES: &[&dyn SchemaTable] = &[
    &TOPIC_EVENTS,
    &TOPIC_KEYS,
    &TOPICS,
    &TOPIC_GROUPS,
    &TOPIC_PENDING,
];
