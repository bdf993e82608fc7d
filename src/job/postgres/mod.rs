//! Jobs on PostgreSQL: the same operations as the file backend, shared by many nodes. Each
//! write is one transaction ([`JobTx`]) that locks the job rows it changes; claims take ready
//! rows with `FOR UPDATE SKIP LOCKED`, so nodes never wait on each other's claims; every write
//! of a running attempt is fenced on (job, attempt, node).

mod rows;

use std::sync::{Arc, Weak};

use crate::postgres::Grouped;
use rows::Batch;
pub(crate) use rows::JobTx;
#[allow(unused_imports)]
pub(crate) use rows::{JOBS_CHANNEL, READY_CHANNEL};
use rows::{READY, RUNNING, codes_of};

use super::effects::{Claimed, JobHost};
use super::error::JobFailure;
use super::info::{
    CancelOutcome, JobCounts, JobEvent, JobInfo, JobPage, JobState, Submitted, info,
};
use super::metrics::{JobMetric, JobMetrics};
use super::ops::admin::{QueuedCursor, RetryCursor};
use super::ops::submit::NewJob;
use super::record::{EventKindV1, EventV1, FailureV1, JobStateV1, JobV1, StoredEvent, StoredJob};
use super::rules::{settle_claim, start_room};
use super::signal::StopReason;
use super::storage::{AttemptClaim, Claim, JobQuery, JobStorage, ProgressUpdate};
use super::transition::owns;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::postgres::{
    Cached, Liveness, NO_NODE, Postgres, find_dead, notify, pg_error, pg_limit, pg_ms,
};
use crate::ratelimit::window::{Counts, Window};
use crate::store::codec::{decode, encode};

/// Jobs handled per kind of timed work in one pass.
const SWEEP_LIMIT: i64 = 512;

/// How often the timer pass runs at the latest, to see work other nodes made due (and dead
/// nodes), whatever the notifications say.
const POLL_MS: u64 = 1_000;

/// Jobs' storage in a PostgreSQL schema.
pub(crate) struct PgJobs {
    pg: Postgres,
    /// This node's id: the epoch its attempts start under.
    node: i64,
    /// The engine's clock when it was given one (tests); the database clock otherwise.
    clock: Option<Arc<dyn Clock>>,
    liveness: Liveness,
    core: Weak<dyn JobHost>,
    /// One timed pass at a time in this process: a pass that `Engine::tick` asks for waits
    /// for the timer's, so it sees what that one did (rows a pass holds, another skips).
    passes: tokio::sync::Mutex<()>,
    /// Completed attempts waiting for the next grouped write.
    completions: Grouped<Completion, bool>,
    /// Single submits waiting for the next grouped write.
    submits: Grouped<NewJob, Submitted>,
}

impl std::fmt::Debug for PgJobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgJobs")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl PgJobs {
    /// Which of `names` have ready jobs (one statement, an index probe per name).
    pub(crate) async fn ready_among(&self, names: &[String]) -> Result<Vec<String>> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.pg.client().await?;
        let rows = client
            .query_cached(
                &format!(
                    "SELECT n FROM unnest($1::text[]) AS n
                     WHERE EXISTS (SELECT 1 FROM jobs WHERE state = {READY} AND name = n)"
                ),
                &[&names],
            )
            .await
            .map_err(|e| pg_error("looking for ready jobs", e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
    pub(crate) fn new(
        pg: Postgres,
        node: i64,
        clock: Option<Arc<dyn Clock>>,
        liveness: Liveness,
        core: Weak<dyn JobHost>,
    ) -> Self {
        PgJobs {
            pg,
            node,
            clock,
            liveness,
            core,
            passes: tokio::sync::Mutex::new(()),
            completions: Grouped::default(),
            submits: Grouped::default(),
        }
    }

    /// The engine's manual clock's time, when it was given one; `None`: the database clock.
    pub(crate) fn now(&self) -> Option<u64> {
        self.clock.as_ref().map(|c| c.now_ms())
    }

    /// The pool, for the primitives that share this schema.
    pub(crate) fn pg(&self) -> &Postgres {
        &self.pg
    }

    /// Runs one write: `f` gets the transaction; its effects are applied here after commit.
    /// Other primitives write jobs in their own writes through it (a schedule's slot and its
    /// job commit together).
    pub(crate) async fn write<T>(
        &self,
        f: impl AsyncFnOnce(&mut JobTx<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut client = self.pg.client().await?;
        let mut tx = JobTx::begin(&mut client, self.now(), self.node).await?;
        tx.notify = self.pg.others_live();
        let out = f(&mut tx).await?;
        let fx = tx.commit().await?;
        if let Some(core) = self.core.upgrade() {
            core.effects_done(fx);
        }
        Ok(out)
    }
}

/// Up to `limit` failed and timed-out jobs of `name` (every name for `None`) after
/// `cursor`, by id: their ids and records.
async fn failed_page(
    tx: &mut JobTx<'_>,
    name: &Option<String>,
    cursor: Option<RetryCursor>,
    limit: usize,
) -> Result<Vec<(i64, Vec<u8>)>> {
    let after = cursor.map_or(0, |(_, id)| id as i64);
    let rows = tx
        .tx
        .query_cached(
            "SELECT id, record FROM jobs WHERE state IN ($1, $2) AND id > $3
               AND ($4::text IS NULL OR name = $4)
             ORDER BY id LIMIT $5",
            &[
                &rows::FAILED,
                &rows::TIMED_OUT,
                &after,
                name,
                &pg_limit(limit),
            ],
        )
        .await
        .map_err(|e| pg_error("finding failed jobs", e))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Where a walk over failed jobs goes on after a page of `limit`: `None` once it was short.
fn next_failed(page: &[(i64, Vec<u8>)], limit: usize) -> Option<RetryCursor> {
    (page.len() == limit)
        .then(|| page.last().map(|(id, _)| (0, *id as u64)))
        .flatten()
}

/// Cancels job `id` with `reason` (a running attempt is told to stop).
async fn cancel_one(tx: &mut JobTx<'_>, id: u64, reason: &str) -> Result<CancelOutcome> {
    let mut job = tx.load_known(id).await?;
    if job.state.finished_code().is_some() {
        return Ok(CancelOutcome::AlreadyFinished(JobState::of(&job.state)));
    }
    if let JobStateV1::Running { attempt, .. } = job.state {
        tx.fx
            .signals
            .push((id, attempt, StopReason::Cancelled(reason.to_string())));
    }
    let state = JobStateV1::Cancelled {
        reason: reason.to_string(),
        at: tx.now,
    };
    enter_terminal(tx, &mut job, state);
    tx.push_event(
        id,
        &mut job,
        EventKindV1::Cancelled {
            reason: reason.to_string(),
        },
    )
    .await?;
    tx.save(id, &job, false).await?;
    tx.count(JobMetric::Cancelled {
        name: job.name.clone(),
    });
    Ok(CancelOutcome::Cancelled)
}

/// Locks the flow row of definition `name` (made if missing): whether it is paused, and the
/// counts of its start limit's window.
async fn lock_flow(tx: &mut JobTx<'_>, name: &str) -> Result<(bool, Counts)> {
    let failed = |e| pg_error("reading a job definition's flow control", e);
    let row = tx
        .tx
        .query_one_cached(
            "INSERT INTO job_flow (name) VALUES ($1)
             ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name
             RETURNING paused_at IS NOT NULL, window_ms, start_ms, current, previous",
            &[&name],
        )
        .await
        .map_err(failed)?;
    let counts = Counts {
        window_ms: row.get::<_, i64>(1) as u64,
        start: row.get::<_, i64>(2) as u64,
        current: row.get::<_, i64>(3) as u64,
        previous: row.get::<_, i64>(4) as u64,
    };
    Ok((row.get(0), counts))
}

/// Stores the counts of definition `name`'s start limit (its row locked by [`lock_flow`]).
async fn save_flow_counts(tx: &mut JobTx<'_>, name: &str, counts: &Counts) -> Result<()> {
    tx.tx
        .execute_cached(
            "UPDATE job_flow SET window_ms = $2, start_ms = $3, current = $4, previous = $5
             WHERE name = $1",
            &[
                &name,
                &pg_ms(counts.window_ms),
                &pg_ms(counts.start),
                &pg_ms(counts.current),
                &pg_ms(counts.previous),
            ],
        )
        .await
        .map_err(|e| pg_error("counting a job definition's starts", e))?;
    Ok(())
}

/// Queues `job`: ready at once when `run_at` has come, else delayed until then. Returns
/// whether it became ready (it goes to the back of its line when saved).
fn enter_queued(tx: &mut JobTx<'_>, job: &mut JobV1, run_at: u64) -> bool {
    let ready = run_at <= tx.now;
    job.state = JobStateV1::Queued {
        ready_seq: ready.then_some(0),
        run_at,
    };
    if !ready {
        tx.fx.deadline(run_at);
    }
    ready
}

/// Moves `job` to a terminal state; its retention starts.
fn enter_terminal(tx: &mut JobTx<'_>, job: &mut JobV1, state: JobStateV1) {
    if let Some(at) = state.finished_at() {
        tx.fx.deadline(at.saturating_add(job.retention_ms));
    }
    job.state = state;
}

/// Starts the next attempt of a queued job under this node.
fn start_attempt(tx: &mut JobTx<'_>, batch: &mut Batch, id: u64, mut job: JobV1) -> Claimed {
    job.attempts += 1;
    let attempt = job.attempts;
    let now = tx.now;
    job.state = JobStateV1::Running {
        attempt,
        epoch: tx.node as u64,
        started_at: now,
        lease_deadline: now.saturating_add(job.lease_ms),
        timeout_deadline: job.timeout_ms.map(|t| now.saturating_add(t)),
    };
    if let Some(key) = job.state.lease_key() {
        tx.fx.deadline(key);
    }
    let epoch = tx.node as u64;
    tx.stage_event(batch, id, &mut job, EventKindV1::Started { attempt, epoch });
    tx.stage_save(batch, id, &job);
    tx.count(JobMetric::Started {
        name: job.name.clone(),
        attempt,
    });
    tx.fx.started.push((id, attempt));
    Claimed {
        id,
        attempt,
        input: job.input,
        key: job.key,
        meta: job.meta,
    }
}

/// Settles a failed attempt as the file backend does: a retry after the backoff while
/// attempts remain and the failure is retryable, else `timed_out` or `failed`.
async fn settle_failure(
    tx: &mut JobTx<'_>,
    id: u64,
    job: &mut JobV1,
    failure: FailureV1,
    retryable: bool,
) -> Result<()> {
    let attempt = failure.attempt;
    let timed_out = failure.code == "TIMEOUT";
    let run_ms = match job.state {
        JobStateV1::Running { started_at, .. } => tx.now.saturating_sub(started_at),
        _ => 0,
    };
    job.last_error = Some(failure.clone());
    let name = job.name.clone();
    if retryable && job.attempts < job.max_attempts {
        let backoff: super::backoff::Backoff = job.backoff.into();
        let seed = id.rotate_left(17) ^ u64::from(attempt);
        let next_at = tx.now.saturating_add(backoff.delay_ms(attempt, seed));
        let ready = enter_queued(tx, job, next_at);
        tx.count(JobMetric::Retried {
            name,
            attempt,
            code: failure.code.clone(),
            run_ms,
        });
        let kind = EventKindV1::RetryScheduled {
            next_at,
            error: failure,
        };
        tx.push_event(id, job, kind).await?;
        return tx.save(id, job, ready).await;
    }
    let now = tx.now;
    if timed_out {
        enter_terminal(tx, job, JobStateV1::TimedOut { at: now });
        tx.count(JobMetric::TimedOut {
            name,
            attempt,
            run_ms,
        });
        tx.push_event(id, job, EventKindV1::TimedOut { error: failure })
            .await?;
    } else {
        enter_terminal(tx, job, JobStateV1::Failed { at: now });
        tx.count(JobMetric::Failed {
            name,
            attempt,
            code: failure.code.clone(),
            run_ms,
        });
        tx.push_event(id, job, EventKindV1::Failed { error: failure })
            .await?;
    }
    tx.save(id, job, false).await
}

/// Puts the jobs the `dead` nodes left running back in line (charging their crash budget,
/// not their attempts), or fails those past their budget with `CRASH_LOOP`, and hands their
/// topic deliveries out again; in `tx`, the transaction that marked the nodes dead. Returns how many were put back and failed.
async fn recover_dead(tx: &mut JobTx<'_>, dead: &[i64]) -> Result<(usize, usize)> {
    let rows = tx
        .tx
        .query_cached(
            &format!(
                "SELECT id, record FROM jobs
                 WHERE state = {RUNNING}
                   AND (node = ANY($1) OR node IN (SELECT id FROM nodes WHERE state = 'dead'))
                 ORDER BY id FOR UPDATE SKIP LOCKED"
            ),
            &[&dead],
        )
        .await
        .map_err(|e| pg_error("loading a dead node's jobs", e))?;
    // Their topic deliveries not yet committed are handed out again from now on; every
    // node's members of those topics look again (this one's too: the notice names no node).
    let topics: Vec<String> = tx
        .tx
        .query_cached(
            "UPDATE topic_pending SET deadline = least(deadline, $2), node = NULL
             WHERE NOT committed AND node = ANY($1) RETURNING topic",
            &[&dead, &(tx.now as i64)],
        )
        .await
        .map_err(|e| pg_error("handing back a dead node's topic deliveries", e))?
        .iter()
        .map(|r| r.get(0))
        .collect::<std::collections::BTreeSet<String>>()
        .into_iter()
        .collect();
    if !topics.is_empty() {
        notify(
            &tx.tx,
            crate::topic::postgres::TOPIC_CHANNEL,
            NO_NODE,
            &topics,
        )
        .await?;
    }
    let (mut requeued, mut failed) = (0, 0);
    for row in rows {
        let id = row.get::<_, i64>(0) as u64;
        let mut job = decode::<StoredJob>("jobs", row.get(1))?.into_job();
        let JobStateV1::Running { attempt, epoch, .. } = job.state else {
            continue;
        };
        job.crashes += 1;
        if job.crashes > job.crash_budget {
            let error = job.crash_loop(attempt);
            job.last_error = Some(error.clone());
            let now = tx.now;
            enter_terminal(tx, &mut job, JobStateV1::Failed { at: now });
            tx.push_event(id, &mut job, EventKindV1::Failed { error })
                .await?;
            tx.count(JobMetric::Failed {
                name: job.name.clone(),
                attempt,
                code: "CRASH_LOOP".into(),
                run_ms: 0,
            });
            tx.save(id, &job, false).await?;
            failed += 1;
        } else {
            job.attempts = job.attempts.saturating_sub(1);
            let now = tx.now;
            let ready = enter_queued(tx, &mut job, now);
            let reason = job.recovered_reason(attempt, &format!("node {epoch}"));
            tx.push_event(id, &mut job, EventKindV1::Recovered { reason })
                .await?;
            tx.count(JobMetric::Recovered {
                name: job.name.clone(),
            });
            tx.save(id, &job, ready).await?;
            requeued += 1;
        }
    }
    Ok((requeued, failed))
}

/// Hands an unfinished attempt back, charging neither an attempt nor the crash budget.
async fn release_one(tx: &mut JobTx<'_>, id: u64, attempt: u32, epoch: u64) -> Result<bool> {
    let Some(mut job) = tx.load(id).await? else {
        return Ok(false);
    };
    if !owns(&job, attempt, epoch) {
        return Ok(false);
    }
    job.attempts = job.attempts.saturating_sub(1);
    let now = tx.now;
    let ready = enter_queued(tx, &mut job, now);
    let reason = format!("attempt {attempt} was handed back unfinished at shutdown");
    tx.push_event(id, &mut job, EventKindV1::Recovered { reason })
        .await?;
    tx.save(id, &job, ready).await?;
    Ok(true)
}

/// Stores a new job (or finds the retained one with the same key); in `tx`.
pub(crate) async fn submit_one(tx: &mut JobTx<'_>, new: &NewJob) -> Result<Submitted> {
    let mut out = submit_batch(tx, std::slice::from_ref(new)).await?;
    out.pop()
        .ok_or_else(|| Error::Internal("a submit answered nothing".into()))
}

/// Stores new jobs in a few set-based statements, whatever their number: the retained jobs
/// holding their keys are looked up at once, ids are drawn at once, and the rows and their
/// first events are inserted from arrays. A job whose key an earlier job of the batch holds
/// answers with that job. Answers are in the order of `jobs`.
pub(crate) async fn submit_batch(tx: &mut JobTx<'_>, jobs: &[NewJob]) -> Result<Vec<Submitted>> {
    let now = tx.now;
    let mut answers: Vec<Option<Submitted>> = vec![None; jobs.len()];
    // Within the batch, a key's first job stands for the others.
    let mut first_of_key: std::collections::HashMap<(&str, &str), usize> = Default::default();
    let mut same_as: Vec<Option<usize>> = vec![None; jobs.len()];
    for (i, job) in jobs.iter().enumerate() {
        if let Some(key) = &job.key {
            match first_of_key.entry((job.name.as_str(), key.as_str())) {
                std::collections::hash_map::Entry::Occupied(e) => same_as[i] = Some(*e.get()),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(i);
                }
            }
        }
    }
    let mut pending: Vec<usize> = (0..jobs.len()).filter(|i| same_as[*i].is_none()).collect();
    while !pending.is_empty() {
        // A retained job with the key answers at once (and spends no id); the unique index
        // decides between submits racing with the same new key.
        let keyed: Vec<usize> = pending
            .iter()
            .copied()
            .filter(|i| jobs[*i].key.is_some())
            .collect();
        if !keyed.is_empty() {
            let names: Vec<&str> = keyed.iter().map(|i| jobs[*i].name.as_str()).collect();
            let keys: Vec<&str> = keyed
                .iter()
                .map(|i| jobs[*i].key.as_deref().unwrap_or_default())
                .collect();
            let found = tx
                .tx
                .query_cached(
                    "SELECT j.name, j.key, j.id FROM jobs j
                     JOIN unnest($1::text[], $2::text[]) AS k(name, key)
                       ON j.name = k.name AND j.key = k.key",
                    &[&names, &keys],
                )
                .await
                .map_err(|e| pg_error("finding jobs by key", e))?;
            for row in &found {
                let (name, key, id): (String, String, i64) = (row.get(0), row.get(1), row.get(2));
                if let Some(&i) = first_of_key.get(&(name.as_str(), key.as_str())) {
                    answers[i] = Some(Submitted {
                        id: id as u64,
                        deduplicated: true,
                    });
                }
            }
            pending.retain(|i| answers[*i].is_none());
            if pending.is_empty() {
                break;
            }
        }
        let ids: Vec<i64> = tx
            .tx
            .query_cached(
                "SELECT nextval('jobs_id_seq') FROM generate_series(1, $1::bigint)",
                &[&(pending.len() as i64)],
            )
            .await
            .map_err(|e| pg_error("drawing job ids", e))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut rows = Rows::default();
        for (&i, &id) in pending.iter().zip(&ids) {
            let new = &jobs[i];
            let mut job = JobV1::submitted(new, new.input.clone(), false, now);
            job.next_event = 1;
            job.updated_at = now;
            let ready = enter_queued(tx, &mut job, new.run_at.unwrap_or(now));
            let cols = rows::Columns::of(&job);
            rows.ids.push(id);
            rows.names.push(new.name.as_str());
            rows.keys.push(new.key.as_deref());
            rows.priorities.push(new.priority);
            rows.metas
                .push(serde_json::to_value(&new.meta).map_err(|e| Error::Internal(e.to_string()))?);
            rows.records.push(crate::job::record::encode_job(&job));
            rows.states.push(cols.state);
            rows.due.push(cols.due_at);
            rows.ready.push(ready);
        }
        let inserted: std::collections::HashSet<i64> = tx
            .tx
            .query_cached(
                "INSERT INTO jobs (id, name, key, priority, meta, record, state, due_at, ready_seq,
                                   updated_at)
                 SELECT i, n, k, p, m, r, s, d,
                        CASE WHEN s = 1 THEN nextval('job_ready_seq') END, $9
                 FROM unnest($1::bigint[], $2::text[], $3::text[], $4::int[], $5::jsonb[],
                             $6::bytea[], $7::smallint[], $8::bigint[])
                      AS t(i, n, k, p, m, r, s, d)
                 ON CONFLICT (name, key) WHERE key IS NOT NULL DO NOTHING
                 RETURNING id",
                &[
                    &rows.ids,
                    &rows.names,
                    &rows.keys,
                    &rows.priorities,
                    &rows.metas,
                    &rows.records,
                    &rows.states,
                    &rows.due,
                    &(now as i64),
                ],
            )
            .await
            .map_err(|e| pg_error("storing jobs", e))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let event = encode(&StoredEvent::V1(EventV1 {
            at: now,
            kind: EventKindV1::Submitted,
        }));
        let stored: Vec<i64> = rows
            .ids
            .iter()
            .copied()
            .filter(|id| inserted.contains(id))
            .collect();
        tx.tx
            .execute_cached(
                "INSERT INTO job_events (job_id, seq, event) SELECT unnest($1::bigint[]), 0, $2",
                &[&stored, &event],
            )
            .await
            .map_err(|e| pg_error("appending job events", e))?;
        for (k, &i) in pending.iter().enumerate() {
            let id = rows.ids[k];
            if !inserted.contains(&id) {
                // Another submit with the key committed in between: look again.
                continue;
            }
            answers[i] = Some(Submitted {
                id: id as u64,
                deduplicated: false,
            });
            tx.fx.touched.push(id as u64);
            tx.count(JobMetric::Submitted {
                name: jobs[i].name.clone(),
            });
            if rows.ready[k] {
                tx.fx.ready.push(jobs[i].name.clone());
            }
        }
        pending.retain(|i| answers[*i].is_none());
    }
    answers
        .iter()
        .enumerate()
        .map(|(i, a)| match (a, same_as[i]) {
            (Some(a), _) => Ok(*a),
            (None, Some(first)) => answers[first]
                .as_ref()
                .map(|a| Submitted {
                    id: a.id,
                    deduplicated: true,
                })
                .ok_or_else(|| Error::Internal("a batch's keyed job went unanswered".into())),
            (None, None) => Err(Error::Internal("a submitted job went unanswered".into())),
        })
        .collect()
}

/// The columns of the jobs a batch inserts, as arrays.
#[derive(Default)]
struct Rows<'a> {
    ids: Vec<i64>,
    names: Vec<&'a str>,
    keys: Vec<Option<&'a str>>,
    priorities: Vec<i32>,
    metas: Vec<serde_json::Value>,
    records: Vec<Vec<u8>>,
    states: Vec<i16>,
    due: Vec<Option<i64>>,
    ready: Vec<bool>,
}

/// A completed attempt waiting for the next grouped write.
#[derive(Clone)]
struct Completion {
    claim: AttemptClaim,
    output: Vec<u8>,
    cancel_requested: bool,
}

/// Completes the attempts of `group` that still own their jobs, in set-based statements;
/// for each, whether it did.
async fn complete_many(tx: &mut JobTx<'_>, group: &[Completion]) -> Result<Vec<bool>> {
    let ids: Vec<u64> = group.iter().map(|c| c.claim.id).collect();
    let mut jobs = tx.load_many(&ids).await?;
    let mut batch = Batch::default();
    let now = tx.now;
    let mut out = Vec::with_capacity(group.len());
    for item in group {
        let c = item.claim;
        let Some(job) = jobs.get_mut(&c.id) else {
            return Err(Error::UnknownJob { id: c.id });
        };
        if item.cancel_requested || !owns(job, c.attempt, c.epoch) {
            out.push(false);
            continue;
        }
        let started_at = match job.state {
            JobStateV1::Running { started_at, .. } => started_at,
            _ => now,
        };
        enter_terminal(
            tx,
            job,
            JobStateV1::Completed {
                output: item.output.clone(),
                at: now,
            },
        );
        tx.stage_event(&mut batch, c.id, job, EventKindV1::Completed);
        tx.stage_save(&mut batch, c.id, job);
        tx.count(JobMetric::Completed {
            name: job.name.clone(),
            attempt: c.attempt,
            run_ms: now.saturating_sub(started_at),
        });
        out.push(true);
    }
    tx.write_batch(batch).await?;
    Ok(out)
}

impl JobStorage for PgJobs {
    async fn submit(&self, new: NewJob) -> Result<Submitted> {
        refuse_workflows(std::slice::from_ref(&new))?;
        // Submits made together share one transaction.
        self.submits
            .run(new, |group| async move {
                self.write(async |tx| submit_batch(tx, &group).await).await
            })
            .await
    }

    async fn submit_many(&self, jobs: Vec<NewJob>) -> Result<Vec<Submitted>> {
        refuse_workflows(&jobs)?;
        self.write(async |tx| submit_batch(tx, &jobs).await).await
    }

    async fn has_ready(&self, name: &str) -> Result<bool> {
        let client = self.pg.client().await?;
        let row = client
            .query_one_cached(
                &format!("SELECT EXISTS (SELECT 1 FROM jobs WHERE state = {READY} AND name = $1)"),
                &[&name],
            )
            .await
            .map_err(|e| pg_error("looking for ready jobs", e))?;
        Ok(row.get(0))
    }

    async fn claim(
        &self,
        name: &str,
        max: usize,
        epoch: u64,
        rate: Option<Window>,
    ) -> Result<Claim> {
        let name = name.to_string();
        self.write(async |tx| {
            if epoch != tx.node as u64 {
                return Ok(Claim::default());
            }
            // A node found dead claims nothing more (its fence follows at its next
            // heartbeat). The share lock keeps it from being found dead mid-claim: the node
            // that judges it skips a locked row and looks again at its next pass.
            let live = tx
                .tx
                .query_opt_cached(
                    "SELECT 1 FROM nodes WHERE id = $1 AND state = 'live' FOR SHARE",
                    &[&tx.node],
                )
                .await
                .map_err(|e| pg_error("checking this node is live", e))?;
            if live.is_none() {
                return Ok(Claim::default());
            }
            // With a start limit, the definition's flow row is locked: claims on every node
            // count against one window.
            let stored = match rate {
                Some(_) => match lock_flow(tx, &name).await? {
                    (true, _) => return Ok(Claim::default()),
                    (false, stored) => Some(stored),
                },
                None => None,
            };
            let (room, window) = start_room(rate, stored, tx.now, max);
            // Rows another node is claiming are skipped, not waited for. A paused definition
            // claims nothing.
            let rows = tx
                .tx
                .query_cached(
                    // The state is in the text, not a parameter: a plan made for any state
                    // could not use the ready index, which holds only ready jobs.
                    &format!(
                        "SELECT id, record FROM jobs WHERE state = {READY} AND name = $1
                           AND NOT EXISTS (SELECT 1 FROM job_flow
                                           WHERE name = $1 AND paused_at IS NOT NULL)
                         ORDER BY priority DESC, ready_seq LIMIT $2 FOR UPDATE SKIP LOCKED"
                    ),
                    &[&name, &(room as i64)],
                )
                .await
                .map_err(|e| pg_error("claiming jobs", e))?;
            let mut jobs = Vec::with_capacity(rows.len());
            let mut batch = Batch::default();
            for row in &rows {
                let id = row.get::<_, i64>(0) as u64;
                let job = decode::<StoredJob>("jobs", row.get(1))?.into_job();
                jobs.push(start_attempt(tx, &mut batch, id, job));
            }
            tx.write_batch(batch).await?;
            let left = jobs.len() == room
                && tx
                    .tx
                    .query_one_cached(
                        &format!(
                            "SELECT EXISTS (SELECT 1 FROM jobs WHERE state = {READY} AND name = $1)"
                        ),
                        &[&name],
                    )
                    .await
                    .map_err(|e| pg_error("looking for ready jobs", e))?
                    .get::<_, bool>(0);
            let (claim, counts) = settle_claim(jobs, (room, max), left, window, tx.now);
            if let Some(counts) = counts {
                save_flow_counts(tx, &name, &counts).await?;
            }
            Ok(claim)
        })
        .await
    }

    async fn set_paused(&self, name: &str, paused: bool) -> Result<bool> {
        let name = name.to_string();
        self.write(async |tx| {
            let (was, _) = lock_flow(tx, &name).await?;
            if was == paused {
                return Ok(false);
            }
            tx.tx
                .execute_cached(
                    "UPDATE job_flow SET paused_at = $2 WHERE name = $1",
                    &[&name, &paused.then_some(pg_ms(tx.now))],
                )
                .await
                .map_err(|e| pg_error("pausing or resuming a job definition", e))?;
            // A resume wakes the workers of every node (the ready notice at the commit).
            let changed = true;
            if changed && !paused {
                tx.fx.ready.push(name.clone());
            }
            Ok(changed)
        })
        .await
    }

    async fn heartbeat(&self, c: AttemptClaim) -> Result<bool> {
        self.write(async |tx| {
            let mut job = tx.load_known(c.id).await?;
            if !owns(&job, c.attempt, c.epoch) {
                return Ok(false);
            }
            let now = tx.now;
            if let JobStateV1::Running {
                lease_deadline,
                timeout_deadline,
                ..
            } = &mut job.state
            {
                *lease_deadline = now.saturating_add(job.lease_ms);
                *timeout_deadline = job.timeout_ms.map(|t| now.saturating_add(t));
            }
            tx.push_event(c.id, &mut job, EventKindV1::Heartbeat)
                .await?;
            tx.save(c.id, &job, false).await?;
            Ok(true)
        })
        .await
    }

    async fn progress(&self, c: AttemptClaim, update: ProgressUpdate) -> Result<bool> {
        self.write(async |tx| {
            let mut job = tx.load_known(c.id).await?;
            if !owns(&job, c.attempt, c.epoch) {
                return Ok(false);
            }
            let kind = update.apply(&mut job);
            tx.push_progress(c.id, &mut job, kind).await?;
            tx.save(c.id, &job, false).await?;
            Ok(true)
        })
        .await
    }

    async fn step_result(&self, c: AttemptClaim, step: &str) -> Result<(bool, Option<Vec<u8>>)> {
        let client = self.pg.client().await?;
        let row = client
            .query_opt_cached(
                "SELECT j.record, s.value FROM jobs j
                 LEFT JOIN job_steps s ON s.job_id = j.id AND s.step = $2
                 WHERE j.id = $1",
                &[&(c.id as i64), &step],
            )
            .await
            .map_err(|e| pg_error("reading a step", e))?
            .ok_or(Error::UnknownJob { id: c.id })?;
        let job = decode::<StoredJob>("jobs", row.get(0))?.into_job();
        Ok((owns(&job, c.attempt, c.epoch), row.get(1)))
    }

    async fn record_step(&self, c: AttemptClaim, step: String, value: Vec<u8>) -> Result<bool> {
        self.write(async |tx| {
            let mut job = tx.load_known(c.id).await?;
            if !owns(&job, c.attempt, c.epoch) {
                return Ok(false);
            }
            tx.tx
                .execute_cached(
                    "INSERT INTO job_steps (job_id, step, value) VALUES ($1, $2, $3)
                     ON CONFLICT (job_id, step) DO UPDATE SET value = EXCLUDED.value",
                    &[&(c.id as i64), &step, &value],
                )
                .await
                .map_err(|e| pg_error("storing a step", e))?;
            tx.push_event(
                c.id,
                &mut job,
                EventKindV1::StepCompleted { step: step.clone() },
            )
            .await?;
            tx.save(c.id, &job, false).await?;
            Ok(true)
        })
        .await
    }

    async fn complete(
        &self,
        c: AttemptClaim,
        output: Vec<u8>,
        cancel_requested: bool,
    ) -> Result<bool> {
        // Attempts ending together share one transaction (and one commit's flush).
        let completion = Completion {
            claim: c,
            output,
            cancel_requested,
        };
        self.completions
            .run(completion, |group| async move {
                self.write(async |tx| complete_many(tx, &group).await).await
            })
            .await
    }

    async fn fail(&self, c: AttemptClaim, failure: JobFailure, retryable: bool) -> Result<bool> {
        let failure = FailureV1 {
            code: failure.code,
            message: failure.message,
            attempt: c.attempt,
        };
        self.write(async |tx| {
            let mut job = tx.load_known(c.id).await?;
            if !owns(&job, c.attempt, c.epoch) {
                return Ok(false);
            }
            settle_failure(tx, c.id, &mut job, failure.clone(), retryable).await?;
            Ok(true)
        })
        .await
    }

    async fn release(&self, c: AttemptClaim) -> Result<bool> {
        self.write(async |tx| release_one(tx, c.id, c.attempt, c.epoch).await)
            .await
    }

    async fn release_all(&self, attempts: Vec<(u64, u32)>, epoch: u64) -> Result<usize> {
        self.write(async |tx| {
            let mut released = 0;
            for &(id, attempt) in &attempts {
                if release_one(tx, id, attempt, epoch).await? {
                    released += 1;
                }
            }
            Ok(released)
        })
        .await
    }

    async fn cancel(&self, id: u64, reason: String) -> Result<CancelOutcome> {
        self.write(async |tx| cancel_one(tx, id, &reason).await)
            .await
    }

    async fn retry(&self, id: u64) -> Result<()> {
        self.write(async |tx| retry_one(tx, id).await).await
    }

    async fn retry_failed_batch(
        &self,
        name: Option<String>,
        cursor: Option<RetryCursor>,
        limit: usize,
    ) -> Result<(usize, Option<RetryCursor>)> {
        self.write(async |tx| {
            let rows = failed_page(tx, &name, cursor, limit).await?;
            for (id, _) in &rows {
                retry_one(tx, *id as u64).await?;
            }
            Ok((rows.len(), next_failed(&rows, limit)))
        })
        .await
    }

    async fn cancel_queued_batch(
        &self,
        name: String,
        reason: String,
        _cursor: Option<QueuedCursor>,
        limit: usize,
    ) -> Result<(usize, Option<QueuedCursor>)> {
        // Cancelled jobs leave the queued states, so every batch starts from the top; rows
        // another node is claiming are skipped.
        self.write(async |tx| {
            let rows = tx
                .tx
                .query_cached(
                    "SELECT id FROM jobs WHERE name = $1 AND state IN ($2, $3)
                     ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED",
                    &[&name, &rows::DELAYED, &READY, &pg_limit(limit)],
                )
                .await
                .map_err(|e| pg_error("finding queued jobs", e))?;
            for row in &rows {
                cancel_one(tx, row.get::<_, i64>(0) as u64, &reason).await?;
            }
            let next = (rows.len() == limit).then_some(QueuedCursor::Ready);
            Ok((rows.len(), next))
        })
        .await
    }

    async fn delete_failed_batch(
        &self,
        name: Option<String>,
        before_ms: u64,
        cursor: Option<RetryCursor>,
        limit: usize,
    ) -> Result<(usize, Option<RetryCursor>)> {
        self.write(async |tx| {
            let rows = failed_page(tx, &name, cursor, limit).await?;
            let mut old = Vec::new();
            for (id, record) in &rows {
                let job = decode::<StoredJob>("jobs", record)?.into_job();
                if job.state.finished_at().is_some_and(|at| at < before_ms) {
                    old.push(*id);
                }
            }
            erase(tx, &old).await?;
            Ok((old.len(), next_failed(&rows, limit)))
        })
        .await
    }

    async fn delete(&self, id: u64) -> Result<()> {
        self.write(async |tx| {
            let job = tx.load_known(id).await?;
            job.check_deletable(id)?;
            erase(tx, &[id as i64]).await
        })
        .await
    }

    async fn get(&self, id: u64, _with_input: bool) -> Result<Option<JobInfo>> {
        let client = self.pg.client().await?;
        let row = client
            .query_opt_cached("SELECT record FROM jobs WHERE id = $1", &[&(id as i64)])
            .await
            .map_err(|e| pg_error("reading a job", e))?;
        row.map(|r| Ok(info(id, decode::<StoredJob>("jobs", r.get(0))?.into_job())))
            .transpose()
    }

    async fn list(&self, query: JobQuery) -> Result<JobPage> {
        let client = self.pg.client().await?;
        let codes: Option<Vec<i16>> = query.state.map(|s| codes_of(s).to_vec());
        let meta = query
            .meta
            .as_ref()
            .map(|(k, v)| serde_json::json!([[k, v]]));
        let order = if query.oldest_first { "ASC" } else { "DESC" };
        let cmp = if query.oldest_first { ">" } else { "<" };
        let after = query.after.map(|a| a as i64);
        let rows = client
            .query_cached(
                &format!(
                    "SELECT id, record FROM jobs
                     WHERE ($1::smallint[] IS NULL OR state = ANY($1))
                       AND ($2::text IS NULL OR name = $2)
                       AND ($3::jsonb IS NULL OR meta @> $3)
                       AND ($4::bigint IS NULL OR id {cmp} $4)
                     ORDER BY id {order} LIMIT $5"
                ),
                &[
                    &codes,
                    &query.name,
                    &meta,
                    &after,
                    &pg_limit(query.limit.saturating_add(1)),
                ],
            )
            .await
            .map_err(|e| pg_error("listing jobs", e))?;
        let mut jobs = Vec::with_capacity(rows.len());
        for row in rows.iter().take(query.limit) {
            let id = row.get::<_, i64>(0) as u64;
            jobs.push(info(
                id,
                decode::<StoredJob>("jobs", row.get(1))?.into_job(),
            ));
        }
        let next = (rows.len() > query.limit)
            .then(|| jobs.last().map(|j| j.id))
            .flatten();
        Ok(JobPage { jobs, next })
    }

    async fn events(&self, id: u64, from: u32, limit: usize) -> Result<Vec<JobEvent>> {
        let client = self.pg.client().await?;
        let exists = client
            .query_opt_cached("SELECT 1 FROM jobs WHERE id = $1", &[&(id as i64)])
            .await
            .map_err(|e| pg_error("reading a job", e))?;
        if exists.is_none() {
            return Err(Error::UnknownJob { id });
        }
        let rows = client
            .query_cached(
                "SELECT seq, event FROM job_events WHERE job_id = $1 AND seq >= $2
                 ORDER BY seq LIMIT $3",
                &[&(id as i64), &(from as i32), &pg_limit(limit)],
            )
            .await
            .map_err(|e| pg_error("reading job events", e))?;
        rows.iter()
            .map(|r| {
                let StoredEvent::V1(e) = decode("job_events", r.get(1))?;
                Ok(JobEvent {
                    seq: r.get::<_, i32>(0) as u32,
                    at_ms: e.at,
                    kind: e.kind.into(),
                })
            })
            .collect()
    }

    async fn counts(&self) -> Result<Vec<JobCounts>> {
        let client = self.pg.client().await?;
        let rows = client
            .query_cached(
                "SELECT name, state, count(*) FROM jobs GROUP BY name, state
                 UNION ALL SELECT name, (-1)::smallint, 0::bigint FROM job_flow WHERE paused_at IS NOT NULL",
                &[],
            )
            .await
            .map_err(|e| pg_error("counting jobs", e))?;
        let mut by_name: std::collections::BTreeMap<String, JobCounts> = Default::default();
        for row in rows {
            let name: String = row.get(0);
            let code: i16 = row.get(1);
            let n = row.get::<_, i64>(2) as u64;
            let counts = by_name.entry(name.clone()).or_insert_with(|| JobCounts {
                name,
                ..JobCounts::default()
            });
            match code {
                -1 => counts.paused = true,
                code => counts.add(state_of_code(code), n),
            }
        }
        Ok(by_name.into_values().collect())
    }

    async fn metrics(&self) -> Result<JobMetrics> {
        let client = self.pg.client().await?;
        let rows = client
            .query_cached(
                "SELECT counter, sum(value)::bigint FROM job_counters GROUP BY counter
                 UNION ALL SELECT 'gauge:running', count(*) FROM jobs WHERE state = 2
                 UNION ALL SELECT 'gauge:queued', count(*) FROM jobs WHERE state IN (0, 1)",
                &[],
            )
            .await
            .map_err(|e| pg_error("reading job counters", e))?;
        let values: Vec<(String, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        JobMetrics::read(
            |name| {
                Ok(values
                    .iter()
                    .find(|(n, _)| n == name)
                    .map_or(0, |(_, v)| *v as u64))
            },
            "gauge:running",
            "gauge:queued",
        )
    }

    async fn sweep(&self) -> Result<Option<u64>> {
        let _one = self.passes.lock().await;
        let liveness = self.liveness;
        let node = self.node;
        let next = self
            .write(async |tx| {
                // Dead nodes first: their attempts go back in line in the transaction that
                // marks them dead, so no two nodes recover the same work.
                // (Also any attempt a node started after it was found dead, before it noticed.)
                let dead = find_dead(&tx.tx, node, Some(tx.now as i64), liveness).await?;
                let (requeued, failed) = recover_dead(tx, &dead).await?;
                if requeued + failed > 0 {
                    tracing::warn!(nodes = ?dead, requeued, crash_looped = failed, "recovered jobs of dead nodes");
                }
                let now = tx.now as i64;
                // Delayed jobs come due.
                let due = tx
                    .tx
                    .query_cached(
                        "SELECT id, record FROM jobs WHERE state = 0 AND due_at <= $1
                         ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED",
                        &[&now, &SWEEP_LIMIT],
                    )
                    .await
                    .map_err(|e| pg_error("finding jobs coming due", e))?;
                for row in due {
                    let id = row.get::<_, i64>(0) as u64;
                    let mut job = decode::<StoredJob>("jobs", row.get(1))?.into_job();
                    let now = tx.now;
                    let ready = enter_queued(tx, &mut job, now);
                    tx.save(id, &job, ready).await?;
                }
                // Attempts past their lease or timeout.
                let expired = tx
                    .tx
                    .query_cached(
                        "SELECT id, record FROM jobs WHERE state = 2 AND due_at <= $1
                         ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED",
                        &[&now, &SWEEP_LIMIT],
                    )
                    .await
                    .map_err(|e| pg_error("finding expired attempts", e))?;
                for row in expired {
                    let id = row.get::<_, i64>(0) as u64;
                    let mut job = decode::<StoredJob>("jobs", row.get(1))?.into_job();
                    let JobStateV1::Running {
                        attempt,
                        lease_deadline,
                        ..
                    } = job.state
                    else {
                        continue;
                    };
                    tx.fx.signals.push((id, attempt, StopReason::TimedOut));
                    let failure = job.expired(attempt, lease_deadline, tx.now);
                    settle_failure(tx, id, &mut job, failure, true).await?;
                }
                // Finished jobs past their retention.
                let purged: Vec<i64> = tx
                    .tx
                    .query_cached(
                        "SELECT id FROM jobs WHERE state >= 3 AND due_at <= $1
                         ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED",
                        &[&now, &SWEEP_LIMIT],
                    )
                    .await
                    .map_err(|e| pg_error("finding jobs past retention", e))?
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                erase(tx, &purged).await?;
                let next: Option<i64> = tx
                    .tx
                    .query_one_cached("SELECT min(due_at) FROM jobs WHERE due_at IS NOT NULL", &[])
                    .await
                    .map_err(|e| pg_error("finding the next due job", e))?
                    .get(0);
                Ok(next.map(|n| n.max(0) as u64))
            })
            .await?;
        // Look again soon whatever the tables say: other nodes add work and die.
        let poll_at = self.now_or_system().saturating_add(POLL_MS);
        Ok(Some(next.map_or(poll_at, |n| n.min(poll_at))))
    }
}

impl PgJobs {
    fn now_or_system(&self) -> u64 {
        self.now()
            .unwrap_or_else(|| crate::clock::SystemClock.now_ms())
    }
}

/// Queues a failed or timed-out job again, with its attempts and crash budget reset.
async fn retry_one(tx: &mut JobTx<'_>, id: u64) -> Result<()> {
    let mut job = tx.load_known(id).await?;
    job.check_retryable(id)?;
    job.attempts = 0;
    job.crashes = 0;
    let now = tx.now;
    let ready = enter_queued(tx, &mut job, now);
    let error = job.last_error.clone().unwrap_or(FailureV1 {
        code: "RETRY".into(),
        message: "retried by hand".into(),
        attempt: 0,
    });
    tx.push_event(
        id,
        &mut job,
        EventKindV1::RetryScheduled {
            next_at: now,
            error,
        },
    )
    .await?;
    tx.save(id, &job, ready).await
}

/// Deletes jobs with their events and steps (their keys go with their rows).
async fn erase(tx: &mut JobTx<'_>, ids: &[i64]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    tx.tx
        .execute_cached("DELETE FROM job_events WHERE job_id = ANY($1)", &[&ids])
        .await
        .map_err(|e| pg_error("deleting job events", e))?;
    tx.tx
        .execute_cached("DELETE FROM job_steps WHERE job_id = ANY($1)", &[&ids])
        .await
        .map_err(|e| pg_error("deleting job steps", e))?;
    tx.tx
        .execute_cached("DELETE FROM jobs WHERE id = ANY($1)", &[&ids])
        .await
        .map_err(|e| pg_error("deleting jobs", e))?;
    tx.fx.touched.extend(ids.iter().map(|&id| id as u64));
    Ok(())
}

/// Jobs that run after others, and batches, are kept in the file only, so far.
fn refuse_workflows(jobs: &[NewJob]) -> Result<()> {
    if jobs.iter().any(|job| !job.after.is_empty()) {
        return Err(Error::Unsupported {
            what: "running a job after others (`Submit::after`)",
            backend: "PostgreSQL",
        });
    }
    if jobs.iter().any(|job| job.batch.is_some()) {
        return Err(Error::Unsupported {
            what: "batches",
            backend: "PostgreSQL",
        });
    }
    Ok(())
}

fn state_of_code(code: i16) -> JobState {
    match code {
        rows::DELAYED | READY => JobState::Queued,
        RUNNING => JobState::Running,
        rows::COMPLETED => JobState::Completed,
        rows::FAILED => JobState::Failed,
        rows::CANCELLED => JobState::Cancelled,
        rows::WAITING => JobState::Waiting,
        _ => JobState::TimedOut,
    }
}
