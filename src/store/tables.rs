//! Every table of the file, in one place. Keys are redb tuples (ordered element by element);
//! values are versioned records encoded by [`super::codec`].

use redb::{Table, TableDefinition, TableHandle, WriteTransaction};

use crate::error::Result;

/// Engine metadata: format version, leadership epoch, id counters.
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("jobfile_meta");

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

/// Jobs by id.
pub(crate) const JOBS: TableDefinition<u64, &[u8]> = TableDefinition::new("jobs");
/// Jobs ready to run: (definition name, priority key, sequence) -> job id. The first key of a
/// name's range is the next job to claim: highest priority, then oldest.
pub(crate) const JOB_READY: TableDefinition<(&str, u32, u64), u64> =
    TableDefinition::new("job_ready");
/// Queued jobs waiting for a delay or a backoff: (run at ms, job id).
pub(crate) const JOB_DELAYED: TableDefinition<(u64, u64), ()> = TableDefinition::new("job_delayed");
/// Running attempts: (the earlier of lease and attempt deadline in ms, job id).
pub(crate) const JOB_LEASES: TableDefinition<(u64, u64), ()> = TableDefinition::new("job_leases");
/// Idempotency keys: (definition name, key) -> job id, kept while the job is retained.
pub(crate) const JOB_KEYS: TableDefinition<(&str, &str), u64> = TableDefinition::new("job_keys");
/// Inputs over the inline limit, stored apart from their job's record: job id -> input.
pub(crate) const JOB_INPUTS: TableDefinition<u64, &[u8]> = TableDefinition::new("job_inputs");
/// Each job's event stream: (job id, sequence) -> event.
pub(crate) const JOB_EVENTS: TableDefinition<(u64, u32), &[u8]> =
    TableDefinition::new("job_events");
/// Memoized step results: (job id, step id) -> the step's output.
pub(crate) const JOB_STEPS: TableDefinition<(u64, &str), &[u8]> = TableDefinition::new("job_steps");
/// Jobs failed, cancelled or timed out: (state code, job id), for listing by state. Completed
/// jobs, the common end, are not indexed here (listing them walks the jobs by id): one write
/// less per job. Files written before may still hold completed entries; they are removed
/// with their job.
pub(crate) const JOB_FINISHED: TableDefinition<(u8, u64), ()> =
    TableDefinition::new("job_finished");
/// Terminal jobs by the instant their retention ends: (purge at ms, job id).
pub(crate) const JOB_RETENTION: TableDefinition<(u64, u64), ()> =
    TableDefinition::new("job_retention");

/// Named mutex leases: name -> the current (or last) holder's lease.
pub(crate) const MUTEXES: TableDefinition<&str, &[u8]> = TableDefinition::new("mutexes");

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

/// Names of every table jobfile creates; a redb file holding other tables is not ours.
pub(crate) const ALL_TABLE_NAMES: &[&str] = &[
    "jobfile_meta",
    "queue_messages",
    "queue_ready",
    "queue_delayed",
    "queue_leases",
    "queue_dead",
    "queue_dead_expiry",
    "queue_keys",
    "queue_age",
    "queue_payloads",
    "jobs",
    "job_ready",
    "job_delayed",
    "job_leases",
    "job_keys",
    "job_inputs",
    "job_events",
    "job_steps",
    "job_finished",
    "job_retention",
    "mutexes",
    "ephemeral_entries",
    "ephemeral_expiry",
    "ephemeral_changes",
    "ephemeral_sets",
    "topic_events",
    "topic_keys",
    "topics",
    "topic_groups",
    "topic_pending",
    "schedules",
    "schedule_due",
    "schedule_failures",
    "schedule_dead",
];

/// Creates every table, so readers never meet a missing one.
pub(crate) fn create_all(tx: &WriteTransaction) -> Result<()> {
    tx.open_table(META)?;
    tx.open_table(QUEUE_MESSAGES)?;
    tx.open_table(QUEUE_READY)?;
    tx.open_table(QUEUE_DELAYED)?;
    tx.open_table(QUEUE_LEASES)?;
    tx.open_table(QUEUE_DEAD)?;
    tx.open_table(QUEUE_DEAD_EXPIRY)?;
    tx.open_table(QUEUE_KEYS)?;
    tx.open_table(QUEUE_AGE)?;
    tx.open_table(QUEUE_PAYLOADS)?;
    tx.open_table(JOBS)?;
    tx.open_table(JOB_READY)?;
    tx.open_table(JOB_DELAYED)?;
    tx.open_table(JOB_LEASES)?;
    tx.open_table(JOB_KEYS)?;
    tx.open_table(JOB_INPUTS)?;
    tx.open_table(JOB_EVENTS)?;
    tx.open_table(JOB_STEPS)?;
    tx.open_table(JOB_FINISHED)?;
    tx.open_table(JOB_RETENTION)?;
    tx.open_table(MUTEXES)?;
    tx.open_table(EPH_ENTRIES)?;
    tx.open_table(EPH_EXPIRY)?;
    tx.open_table(EPH_CHANGES)?;
    tx.open_table(EPH_SETS)?;
    tx.open_table(TOPIC_EVENTS)?;
    tx.open_table(TOPIC_KEYS)?;
    tx.open_table(TOPICS)?;
    tx.open_table(TOPIC_GROUPS)?;
    tx.open_table(TOPIC_PENDING)?;
    tx.open_table(SCHEDULES)?;
    tx.open_table(SCHEDULE_DUE)?;
    tx.open_table(SCHEDULE_FAILURES)?;
    tx.open_table(SCHEDULE_DEAD)?;
    debug_assert_eq!(META.name(), ALL_TABLE_NAMES[0]);
    Ok(())
}

macro_rules! open_tables {
    ($($field:ident: $def:ident => $k:ty, $v:ty;)*) => {
        /// The job tables of one write transaction, each opened on first use and kept open until
        /// the batch ends: opening a table costs more than most single inserts into it.
        pub(crate) struct OpenTables<'a> {
            tx: &'a WriteTransaction,
            /// Lease entries to remove, applied in one pass; see [`OpenTables::remove_lease`].
            lease_removals: Vec<(u64, u64)>,
            $($field: Option<Table<'a, $k, $v>>,)*
        }

        impl<'a> OpenTables<'a> {
            pub(crate) fn new(tx: &'a WriteTransaction) -> Self {
                OpenTables { tx, lease_removals: Vec::new(), $($field: None,)* }
            }

            $(
                pub(crate) fn $field(&mut self) -> Result<&mut Table<'a, $k, $v>> {
                    let table = match self.$field.take() {
                        Some(table) => table,
                        None => self.tx.open_table($def)?,
                    };
                    Ok(self.$field.insert(table))
                }
            )*
        }
    };
}

open_tables! {
    jobs: JOBS => u64, &'static [u8];
    job_ready: JOB_READY => (&'static str, u32, u64), u64;
    job_delayed: JOB_DELAYED => (u64, u64), ();
    leases_unflushed: JOB_LEASES => (u64, u64), ();
    job_keys: JOB_KEYS => (&'static str, &'static str), u64;
    job_inputs: JOB_INPUTS => u64, &'static [u8];
    job_events: JOB_EVENTS => (u64, u32), &'static [u8];
    job_steps: JOB_STEPS => (u64, &'static str), &'static [u8];
    job_finished: JOB_FINISHED => (u8, u64), ();
    job_retention: JOB_RETENTION => (u64, u64), ();
}

impl<'a> OpenTables<'a> {
    /// The lease index, with every removal queued by [`Self::remove_lease`] applied, for
    /// reading: whoever reads it sees the batch's own changes.
    pub(crate) fn job_leases(&mut self) -> Result<&mut Table<'a, (u64, u64), ()>> {
        self.flush_lease_removals()?;
        self.leases_unflushed()
    }

    /// Adds a lease entry (cancelling a queued removal of the same key).
    pub(crate) fn insert_lease(&mut self, key: (u64, u64)) -> Result<()> {
        self.lease_removals.retain(|queued| *queued != key);
        self.leases_unflushed()?.insert(key, ())?;
        Ok(())
    }

    /// Queues the removal of a lease entry until the index is next read or the batch ends.
    ///
    /// One removal at a time costs a rebuild of the entry's leaf each time whenever the index
    /// is small (a few running jobs: the leaf is under a third full, so redb merges rather than
    /// removing in place), the most expensive write of a job's life. Removed together, each
    /// leaf is rebuilt once per batch.
    pub(crate) fn remove_lease(&mut self, key: (u64, u64)) {
        self.lease_removals.push(key);
    }

    /// Applies the queued lease removals. The writer calls it before every commit.
    pub(crate) fn flush_lease_removals(&mut self) -> Result<()> {
        if self.lease_removals.is_empty() {
            return Ok(());
        }
        let mut keys = std::mem::take(&mut self.lease_removals);
        keys.sort_unstable();
        let (first, last) = (keys[0], keys[keys.len() - 1]);
        self.leases_unflushed()?
            .retain_in(first..=last, |key, ()| keys.binary_search(&key).is_err())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::ReadableTable;

    fn keys(table: &Table<'_, (u64, u64), ()>) -> Vec<(u64, u64)> {
        table
            .iter()
            .unwrap()
            .map(|e| e.unwrap().0.value())
            .collect()
    }

    #[test]
    fn queued_lease_removals_apply_before_a_read_and_an_insert_cancels_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let db = redb::Database::create(dir.path().join("t.redb")).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let mut tables = OpenTables::new(&tx);
            for id in 1..=6 {
                tables.insert_lease((100 + id, id)).unwrap();
            }
            tables.remove_lease((102, 2));
            tables.remove_lease((105, 5));
            tables.remove_lease((103, 3));
            // Removed and put back in the same batch: it stays.
            tables.insert_lease((103, 3)).unwrap();
            // A key that is not there is no error.
            tables.remove_lease((999, 9));
            assert_eq!(
                keys(tables.job_leases().unwrap()),
                [(101, 1), (103, 3), (104, 4), (106, 6)]
            );
            tables.remove_lease((101, 1));
            tables.flush_lease_removals().unwrap();
            assert_eq!(
                keys(tables.leases_unflushed().unwrap()),
                [(103, 3), (104, 4), (106, 6)]
            );
        }
        tx.commit().unwrap();
    }
}
