//! A job write on PostgreSQL: one transaction that loads job rows `FOR UPDATE`, applies the
//! same state changes as the file backend to their `JobV1` records, and saves each record with
//! the columns derived from it (so the indexes never disagree with the record). Events,
//! steps and per-node counters are rows beside them. What the change means for this process
//! (wake workers, signal attempts, notify watchers) is collected in [`Effects`] and applied
//! after the commit; other nodes learn of it by `NOTIFY`, delivered at the commit.

use deadpool_postgres::Transaction;

use crate::error::{Error, Result};
use crate::job::effects::Effects;
use crate::job::metrics::JobMetric;
use crate::job::record::{EventKindV1, EventV1, JobStateV1, JobV1, StoredEvent, StoredJob};
use crate::postgres::{Cached, begin, commit, pg_error};
use crate::store::codec::{decode, encode};

/// The channel that says which definitions gained ready jobs (names, one per line).
pub(crate) const READY_CHANNEL: &str = "jobfile_ready";
/// The channel that says which jobs changed (ids, one per line).
pub(crate) const JOBS_CHANNEL: &str = "jobfile_jobs";

/// State codes of the `state` column. Delayed jobs are apart from ready ones, so that the
/// ready index holds only what a claim may take.
pub(crate) const DELAYED: i16 = 0;
pub(crate) const READY: i16 = 1;
pub(crate) const RUNNING: i16 = 2;
pub(crate) const COMPLETED: i16 = 3;
pub(crate) const FAILED: i16 = 4;
pub(crate) const CANCELLED: i16 = 5;
pub(crate) const TIMED_OUT: i16 = 6;
/// Waiting for the jobs it runs after. Below the others, so that `state >= COMPLETED` stays
/// the finished states.
pub(crate) const WAITING: i16 = -1;

/// Progress events are coalesced per second of the clock, as in the file.
const PROGRESS_WINDOW_MS: u64 = 1_000;

/// Counter rows per node and counter: concurrent writes of one node spread over them.
const COUNTER_SHARDS: i16 = 16;

/// The counter shard for the next write, in turn.
fn next_shard() -> i16 {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    (NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % COUNTER_SHARDS as u16) as i16
}

/// One write transaction on jobs.
pub(crate) struct JobTx<'a> {
    pub(crate) tx: Transaction<'a>,
    /// The instant of this write: the database clock, or the engine's manual clock.
    pub(crate) now: u64,
    /// This node: the epoch attempts start under.
    pub(crate) node: i64,
    pub(crate) fx: Effects,
    /// Whether to notify other nodes at the commit (none is live: no one would hear).
    pub(crate) notify: bool,
}

impl<'a> JobTx<'a> {
    /// Starts a write at `now` (the database clock when `None`).
    pub(crate) async fn begin(
        client: &'a mut deadpool_postgres::Object,
        now: Option<u64>,
        node: i64,
    ) -> Result<JobTx<'a>> {
        let (tx, now) = begin(client, now, "a job write").await?;
        Ok(JobTx {
            tx,
            now,
            node,
            fx: Effects::default(),
            notify: true,
        })
    }

    /// The job `id`, locked for this transaction; `None` if there is none.
    pub(crate) async fn load(&self, id: u64) -> Result<Option<JobV1>> {
        let row = self
            .tx
            .query_opt_cached(
                "SELECT record FROM jobs WHERE id = $1 FOR UPDATE",
                &[&(id as i64)],
            )
            .await
            .map_err(|e| pg_error("loading a job", e))?;
        row.map(|r| decode::<StoredJob>("jobs", r.get(0)).map(StoredJob::into_job))
            .transpose()
    }

    /// [`load`](Self::load), or [`Error::UnknownJob`].
    pub(crate) async fn load_known(&self, id: u64) -> Result<JobV1> {
        self.load(id).await?.ok_or(Error::UnknownJob { id })
    }

    /// Writes `job`'s record and the columns derived from it. `ready_again`: it (re)entered
    /// the ready state in this write and goes to the back of its priority's line.
    pub(crate) async fn save(&mut self, id: u64, job: &JobV1, ready_again: bool) -> Result<()> {
        let cols = Columns::of(job);
        if cols.state == READY && ready_again {
            self.fx.ready.push(job.name.clone());
        }
        self.tx
            .execute_cached(
                "UPDATE jobs SET record = $2, state = $3, node = $4, due_at = $5, updated_at = $6,
                        ready_seq = CASE WHEN $7 THEN nextval('job_ready_seq') ELSE ready_seq END
                 WHERE id = $1",
                &[
                    &(id as i64),
                    &crate::job::record::encode_job(job),
                    &cols.state,
                    &cols.node,
                    &cols.due_at,
                    &(job.updated_at as i64),
                    &ready_again,
                ],
            )
            .await
            .map_err(|e| pg_error("saving a job", e))?;
        Ok(())
    }

    /// Appends an event to the job's stream. The caller saves the job afterwards.
    pub(crate) async fn push_event(
        &mut self,
        id: u64,
        job: &mut JobV1,
        kind: EventKindV1,
    ) -> Result<()> {
        let seq = job.next_event;
        let event = encode(&StoredEvent::V1(EventV1 { at: self.now, kind }));
        self.tx
            .execute_cached(
                "INSERT INTO job_events (job_id, seq, event) VALUES ($1, $2, $3)",
                &[&(id as i64), &(seq as i32), &event],
            )
            .await
            .map_err(|e| pg_error("appending a job event", e))?;
        job.next_event = seq.saturating_add(1);
        job.updated_at = self.now;
        self.fx.touched.push(id);
        Ok(())
    }

    /// The jobs `ids` that exist, locked for this transaction (in id order, so that two
    /// transactions locking several jobs never wait on each other in a cycle).
    pub(crate) async fn load_many(
        &self,
        ids: &[u64],
    ) -> Result<std::collections::HashMap<u64, JobV1>> {
        let ids: Vec<i64> = ids.iter().map(|id| *id as i64).collect();
        let rows = self
            .tx
            .query_cached(
                "SELECT id, record FROM jobs WHERE id = ANY($1) ORDER BY id FOR UPDATE",
                &[&ids],
            )
            .await
            .map_err(|e| pg_error("loading jobs", e))?;
        rows.iter()
            .map(|r| {
                let job = decode::<StoredJob>("jobs", r.get(1))?.into_job();
                Ok((r.get::<_, i64>(0) as u64, job))
            })
            .collect()
    }

    /// Appends an event to a job's stream in the next [`write_batch`](Self::write_batch), as
    /// [`push_event`](Self::push_event) does at once.
    pub(crate) fn stage_event(
        &mut self,
        batch: &mut Batch,
        id: u64,
        job: &mut JobV1,
        kind: EventKindV1,
    ) {
        let seq = job.next_event;
        batch.event_ids.push(id as i64);
        batch.event_seqs.push(seq as i32);
        batch
            .events
            .push(encode(&StoredEvent::V1(EventV1 { at: self.now, kind })));
        job.next_event = seq.saturating_add(1);
        job.updated_at = self.now;
        self.fx.touched.push(id);
    }

    /// Saves `job` in the next [`write_batch`](Self::write_batch), as [`save`](Self::save)
    /// does at once (for a job that does not re-enter the ready state).
    pub(crate) fn stage_save(&mut self, batch: &mut Batch, id: u64, job: &JobV1) {
        let cols = Columns::of(job);
        batch.ids.push(id as i64);
        batch.records.push(crate::job::record::encode_job(job));
        batch.states.push(cols.state);
        batch.nodes.push(cols.node);
        batch.due.push(cols.due_at);
        batch.updated.push(job.updated_at as i64);
    }

    /// Writes the staged saves and events: two statements, whatever their number.
    pub(crate) async fn write_batch(&mut self, batch: Batch) -> Result<()> {
        if !batch.ids.is_empty() {
            self.tx
                .execute_cached(
                    "UPDATE jobs SET record = u.r, state = u.s, node = u.n, due_at = u.d,
                            updated_at = u.t
                     FROM unnest($1::bigint[], $2::bytea[], $3::smallint[], $4::bigint[],
                                 $5::bigint[], $6::bigint[]) AS u(i, r, s, n, d, t)
                     WHERE jobs.id = u.i",
                    &[
                        &batch.ids,
                        &batch.records,
                        &batch.states,
                        &batch.nodes,
                        &batch.due,
                        &batch.updated,
                    ],
                )
                .await
                .map_err(|e| pg_error("saving jobs", e))?;
        }
        if !batch.event_ids.is_empty() {
            self.tx
                .execute_cached(
                    "INSERT INTO job_events (job_id, seq, event)
                     SELECT * FROM unnest($1::bigint[], $2::int[], $3::bytea[])",
                    &[&batch.event_ids, &batch.event_seqs, &batch.events],
                )
                .await
                .map_err(|e| pg_error("appending job events", e))?;
        }
        Ok(())
    }

    /// A progress event, or the job's last event overwritten when it is a progress event of
    /// the same second of the clock.
    pub(crate) async fn push_progress(
        &mut self,
        id: u64,
        job: &mut JobV1,
        kind: EventKindV1,
    ) -> Result<()> {
        if let Some(last) = job.next_event.checked_sub(1) {
            let row = self
                .tx
                .query_opt_cached(
                    "SELECT event FROM job_events WHERE job_id = $1 AND seq = $2",
                    &[&(id as i64), &(last as i32)],
                )
                .await
                .map_err(|e| pg_error("reading a job event", e))?;
            if let Some(row) = row {
                let StoredEvent::V1(previous) = decode("job_events", row.get(0))?;
                let progress = matches!(
                    previous.kind,
                    EventKindV1::Progress { .. } | EventKindV1::ProgressItems { .. }
                );
                if progress && previous.at / PROGRESS_WINDOW_MS == self.now / PROGRESS_WINDOW_MS {
                    let event = encode(&StoredEvent::V1(EventV1 { at: self.now, kind }));
                    self.tx
                        .execute_cached(
                            "UPDATE job_events SET event = $3 WHERE job_id = $1 AND seq = $2",
                            &[&(id as i64), &(last as i32), &event],
                        )
                        .await
                        .map_err(|e| pg_error("replacing a progress event", e))?;
                    job.updated_at = self.now;
                    self.fx.touched.push(id);
                    return Ok(());
                }
            }
        }
        self.push_event(id, job, kind).await
    }

    /// Counts `metric` on this node's counter row, and queues it for the callback.
    pub(crate) fn count(&mut self, metric: JobMetric) {
        self.fx.metrics.push(metric);
    }

    /// Writes the counters, queues the notifications for other nodes, commits, and returns
    /// what must happen here now that it is durable.
    pub(crate) async fn commit(self) -> Result<Effects> {
        let JobTx {
            tx,
            node,
            fx,
            notify,
            ..
        } = self;
        let mut counters: Vec<(&str, i64)> = Vec::new();
        for metric in &fx.metrics {
            let name = metric.counter_name();
            match counters.iter_mut().find(|(n, _)| *n == name) {
                Some((_, v)) => *v += 1,
                None => counters.push((name, 1)),
            }
        }
        if !counters.is_empty() {
            let names: Vec<&str> = counters.iter().map(|(n, _)| *n).collect();
            let deltas: Vec<i64> = counters.iter().map(|(_, v)| *v).collect();
            tx.execute_cached(
                "INSERT INTO job_counters (node, counter, shard, value)
                 SELECT $1, c, $4, v FROM unnest($2::text[], $3::bigint[]) AS t(c, v)
                 ON CONFLICT (node, counter, shard)
                 DO UPDATE SET value = job_counters.value + EXCLUDED.value",
                &[&node, &names, &deltas, &next_shard()],
            )
            .await
            .map_err(|e| pg_error("counting job events", e))?;
        }
        // One notification per channel and transaction, delivered at the commit.
        if notify && !fx.ready.is_empty() {
            let mut names = fx.ready.clone();
            names.sort();
            names.dedup();
            crate::postgres::notify(&tx, READY_CHANNEL, node, &names).await?;
        }
        if notify && !fx.touched.is_empty() {
            let mut ids = fx.touched.clone();
            ids.sort_unstable();
            ids.dedup();
            let text: Vec<String> = ids.iter().map(u64::to_string).collect();
            crate::postgres::notify(&tx, JOBS_CHANNEL, node, &text).await?;
        }
        commit(tx, "a job write").await?;
        Ok(fx)
    }
}

/// Job saves and events staged for one set-based write.
#[derive(Default)]
pub(crate) struct Batch {
    ids: Vec<i64>,
    records: Vec<Vec<u8>>,
    states: Vec<i16>,
    nodes: Vec<Option<i64>>,
    due: Vec<Option<i64>>,
    updated: Vec<i64>,
    event_ids: Vec<i64>,
    event_seqs: Vec<i32>,
    events: Vec<Vec<u8>>,
}

/// The columns derived from a job's record.
pub(crate) struct Columns {
    pub(crate) state: i16,
    pub(crate) node: Option<i64>,
    /// Delayed: when it may run; running: its lease or timeout deadline; finished: when its
    /// retention ends.
    pub(crate) due_at: Option<i64>,
}

impl Columns {
    pub(crate) fn of(job: &JobV1) -> Columns {
        let finished = |state, at: u64| Columns {
            state,
            node: None,
            due_at: Some(at.saturating_add(job.retention_ms) as i64),
        };
        match &job.state {
            JobStateV1::Queued {
                ready_seq: None,
                run_at,
            } => Columns {
                state: DELAYED,
                node: None,
                due_at: Some(*run_at as i64),
            },
            JobStateV1::Queued { .. } => Columns {
                state: READY,
                node: None,
                due_at: None,
            },
            JobStateV1::Running { epoch, .. } => Columns {
                state: RUNNING,
                node: Some(*epoch as i64),
                due_at: job.state.lease_key().map(|k| k as i64),
            },
            JobStateV1::Completed { at, .. } => finished(COMPLETED, *at),
            JobStateV1::Failed { at } => finished(FAILED, *at),
            JobStateV1::Cancelled { at, .. } => finished(CANCELLED, *at),
            JobStateV1::TimedOut { at } => finished(TIMED_OUT, *at),
            JobStateV1::Waiting { .. } => Columns {
                state: WAITING,
                node: None,
                due_at: None,
            },
        }
    }
}

/// The state code of a public state: the codes a listing of it covers.
pub(crate) fn codes_of(state: crate::job::JobState) -> &'static [i16] {
    use crate::job::JobState;
    match state {
        JobState::Waiting => &[WAITING],
        JobState::Queued => &[DELAYED, READY],
        JobState::Running => &[RUNNING],
        JobState::Completed => &[COMPLETED],
        JobState::Failed => &[FAILED],
        JobState::Cancelled => &[CANCELLED],
        JobState::TimedOut => &[TIMED_OUT],
    }
}
