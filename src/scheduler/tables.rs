//! Scheduler tables: the schedules, their due index, failures and dead letters.

use redb::TableDefinition;

use crate::store::tables::SchemaTable;

/// Cron schedules by id.
pub(crate) const SCHEDULES: TableDefinition<&str, &[u8]> = TableDefinition::new("schedules");
/// Schedules by their next slot: (slot ms, schedule id).
pub(crate) const SCHEDULE_DUE: TableDefinition<(u64, &str), ()> =
    TableDefinition::new("schedule_due");
/// Schedules whose last dispatch failed: id -> failures in a row and when to retry.
pub(crate) const SCHEDULE_FAILURES: TableDefinition<&str, &[u8]> =
    TableDefinition::new("schedule_failures");
/// The scheduler's dead-letter list: (schedule id, slot ms) -> the last error.
pub(crate) const SCHEDULE_DEAD: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("schedule_dead");

/// Every table above, for the store to create and to recognise at open.
pub(crate) const TABLES: &[&dyn SchemaTable] = &[
    &SCHEDULES,
    &SCHEDULE_DUE,
    &SCHEDULE_FAILURES,
    &SCHEDULE_DEAD,
];
