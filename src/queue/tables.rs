//! Queue tables: the messages, their indexes, payloads stored apart and idempotency keys.

use redb::TableDefinition;

use crate::store::tables::SchemaTable;

/// Queue messages by id.
pub(crate) const QUEUE_MESSAGES: TableDefinition<u64, &[u8]> =
    TableDefinition::new("queue_messages");
/// Ready messages: (queue, priority key, sequence) -> message id. The first key of a queue's
/// range is the next message to deliver: highest priority, then oldest.
pub(crate) const QUEUE_READY: TableDefinition<(&str, u32, u64), u64> =
    TableDefinition::new("queue_ready");
/// Delayed messages: (available at ms, message id).
pub(crate) const QUEUE_DELAYED: TableDefinition<(u64, u64), ()> =
    TableDefinition::new("queue_delayed");
/// Leased messages: (lease deadline ms, message id).
pub(crate) const QUEUE_LEASES: TableDefinition<(u64, u64), ()> =
    TableDefinition::new("queue_leases");
/// Dead-lettered messages: (queue, message id).
pub(crate) const QUEUE_DEAD: TableDefinition<(&str, u64), ()> = TableDefinition::new("queue_dead");
/// Dead-letter retention: (purge at ms, message id).
pub(crate) const QUEUE_DEAD_EXPIRY: TableDefinition<(u64, u64), ()> =
    TableDefinition::new("queue_dead_expiry");
/// Payloads over the inline limit, stored apart from their message's record: id -> payload.
pub(crate) const QUEUE_PAYLOADS: TableDefinition<u64, &[u8]> =
    TableDefinition::new("queue_payloads");
/// Live messages by the instant they pass their maximum age: (expires at ms, message id).
/// Ready and delayed messages are dead-lettered then; a leased one when its delivery ends.
pub(crate) const QUEUE_AGE: TableDefinition<(u64, u64), ()> = TableDefinition::new("queue_age");
/// Idempotency keys: (queue, key) -> message id.
pub(crate) const QUEUE_KEYS: TableDefinition<(&str, &str), u64> =
    TableDefinition::new("queue_keys");

/// Paused queues: name -> the instant it was paused (ms).
pub(crate) const QUEUE_PAUSED: TableDefinition<&str, u64> = TableDefinition::new("queue_paused");

/// Every table above, for the store to create and to recognise at open.
pub(crate) const TABLES: &[&dyn SchemaTable] = &[
    &QUEUE_PAUSED,
    &QUEUE_MESSAGES,
    &QUEUE_READY,
    &QUEUE_DELAYED,
    &QUEUE_LEASES,
    &QUEUE_DEAD,
    &QUEUE_DEAD_EXPIRY,
    &QUEUE_PAYLOADS,
    &QUEUE_AGE,
    &QUEUE_KEYS,
];
