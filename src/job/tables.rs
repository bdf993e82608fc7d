//! Job tables: the jobs, their indexes, inputs, events and memoized steps.

use redb::TableDefinition;

use crate::store::tables::{GroupedIndex, SchemaTable};

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
/// Terminal jobs by the instant their retention ends, grouped by the batch that ended them:
/// (earliest purge at ms, group number) -> (purge at ms, job id) entries. An entry whose job
/// has since been re-run or deleted stays until it comes due, and is then skipped.
pub(crate) const JOB_PURGES: GroupedIndex = TableDefinition::new("job_purges");
/// Terminal jobs by the instant their retention ends, one row each: (purge at ms, job id).
/// Files written before [`JOB_PURGES`] hold entries here; the sweep empties it as they come
/// due, and nothing adds to it.
pub(crate) const JOB_RETENTION: TableDefinition<(u64, u64), ()> =
    TableDefinition::new("job_retention");
/// Jobs waiting for others: (the job waited for, the waiting job). An entry is removed when
/// the job waited for ends, and the waiting job is queued once none of its entries is left.
pub(crate) const JOB_DEPENDENTS: TableDefinition<(u64, u64), ()> =
    TableDefinition::new("job_dependents");
/// Batches of jobs: batch id -> the batch (members counted by how they ended, callbacks).
pub(crate) const JOB_BATCHES: TableDefinition<u64, &[u8]> = TableDefinition::new("job_batches");
/// The members of each batch: (batch id, job id).
pub(crate) const JOB_BATCH_MEMBERS: TableDefinition<(u64, u64), ()> =
    TableDefinition::new("job_batch_members");
/// Each definition's flow control: name -> whether it is paused, and the counts of its start
/// limit's window.
pub(crate) const JOB_FLOW: TableDefinition<&str, &[u8]> = TableDefinition::new("job_flow");

/// Every table above, for the store to create and to recognise at open.
pub(crate) const TABLES: &[&dyn SchemaTable] = &[
    &JOBS,
    &JOB_READY,
    &JOB_DELAYED,
    &JOB_LEASES,
    &JOB_KEYS,
    &JOB_INPUTS,
    &JOB_EVENTS,
    &JOB_STEPS,
    &JOB_FINISHED,
    &JOB_RETENTION,
    &JOB_PURGES,
    &JOB_FLOW,
    &JOB_DEPENDENTS,
    &JOB_BATCHES,
    &JOB_BATCH_MEMBERS,
];
