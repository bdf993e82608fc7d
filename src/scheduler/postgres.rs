//! The scheduler on PostgreSQL (feature `postgres`): schedules are rows beside the jobs, and
//! any node dispatches the due ones. A pass takes due rows `FOR UPDATE SKIP LOCKED`, so two
//! nodes never dispatch one schedule at once, and submits each slot's job (keyed
//! `{schedule_id}:{slot_ms}`) in the transaction that advances the schedule: exactly one job
//! per slot, whatever the number of nodes and whichever of them dies.
//!
//! Differences from the file, by necessity:
//! - A node dispatches a schedule only if it has a handler for the schedule's job; the others
//!   leave it to a node that has. A non-strict schedule therefore behaves as strict: a slot
//!   no node can run stays due until one can.
//! - A slot counts as missed (its misfire policy applies) when it came due before this node
//!   started, or across a jump of this node's clock, and no other node took it meanwhile.

use std::sync::Arc;

use super::cron::CronSchedule;
use super::failures::{self, ScheduleDeadLetter};
use super::metrics::DispatchReport;
use super::record::{ScheduleV1, StoredSchedule};
use super::rules;
use super::schedules::unknown;
use super::spec::{Registered, ScheduleInfo, info};
use super::storage::{DispatchHost, ScheduleRegister, ScheduleStorage};
use crate::error::{Error, Result};
use crate::job::Submitted;
use crate::job::core::JobCore;
use crate::job::postgres::{JobTx, PgJobs, submit_batch, submit_one};
use crate::postgres::{Cached, pg_error, pg_limit};
use crate::store::codec::{decode, encode};

/// Due rows read per pass, as a multiple of the schedules handled: room to pass over
/// schedules that are held or waiting to retry.
const SCAN_FACTOR: usize = 16;

/// How often a node looks at the schedules at the latest: a schedule registered on another
/// node, or left by a node that died, is dispatched here within this.
const POLL_MS: u64 = 1_000;

/// The scheduler's storage in a PostgreSQL schema.
#[derive(Debug)]
pub(crate) struct PgSchedules {
    /// The jobs the schedules submit; their storage holds the pool.
    jobs: Arc<JobCore>,
    /// One pass at a time in this process: a pass that `tick` asks for waits for the timer's,
    /// so it sees what that one did (rows a pass holds, another skips).
    passes: tokio::sync::Mutex<()>,
}

impl PgSchedules {
    pub(crate) fn new(jobs: Arc<JobCore>) -> Self {
        PgSchedules {
            jobs,
            passes: tokio::sync::Mutex::new(()),
        }
    }

    fn pg(&self) -> Result<&PgJobs> {
        self.jobs.postgres().ok_or_else(|| {
            Error::Internal("the PostgreSQL scheduler without PostgreSQL jobs".into())
        })
    }
}

fn decode_schedule(bytes: &[u8]) -> Result<ScheduleV1> {
    let StoredSchedule::V1(s) = decode("schedules", bytes)?;
    Ok(s)
}

/// The schedule `id`, locked for this transaction.
async fn load(tx: &JobTx<'_>, id: &str) -> Result<Option<ScheduleV1>> {
    let row = tx
        .tx
        .query_opt_cached(
            "SELECT record FROM schedules WHERE id = $1 FOR UPDATE",
            &[&id],
        )
        .await
        .map_err(|e| pg_error("loading a schedule", e))?;
    row.map(|r| decode_schedule(r.get(0))).transpose()
}

/// Stores schedule `id` with its next slot.
async fn save(tx: &JobTx<'_>, id: &str, s: &ScheduleV1) -> Result<()> {
    tx.tx
        .execute_cached(
            "INSERT INTO schedules (id, record, next_run) VALUES ($1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record, next_run = EXCLUDED.next_run",
            &[
                &id,
                &encode(&StoredSchedule::V1(s.clone())),
                &s.next_run.map(|n| n as i64),
            ],
        )
        .await
        .map_err(|e| pg_error("saving a schedule", e))?;
    Ok(())
}

async fn clear_failures(tx: &JobTx<'_>, id: &str) -> Result<()> {
    tx.tx
        .execute_cached("DELETE FROM schedule_failures WHERE id = $1", &[&id])
        .await
        .map_err(|e| pg_error("clearing a schedule's failures", e))?;
    Ok(())
}

/// A schedule row a pass found due.
struct Due {
    id: String,
    record: Vec<u8>,
    slot: u64,
    /// Failures in a row so far and when to retry, if its last dispatch failed.
    failing: Option<(u32, u64)>,
}

/// Counts a failed dispatch of `due`; when to try again, or `None` once dead-lettered (the
/// schedule then stops until registered again).
async fn record_failure(
    tx: &JobTx<'_>,
    due: &Due,
    error: &Error,
    report: &mut DispatchReport,
) -> Result<Option<u64>> {
    let count = due.failing.map_or(0, |(c, _)| c).saturating_add(1);
    let message = error.to_string();
    if let Some(retry_at) = failures::failed(report, &due.id, due.slot, count, &message, tx.now) {
        tx.tx
            .execute_cached(
                "INSERT INTO schedule_failures (id, slot, count, retry_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (id) DO UPDATE SET slot = $2, count = $3, retry_at = $4",
                &[
                    &due.id,
                    &(due.slot as i64),
                    &(count as i32),
                    &(retry_at as i64),
                ],
            )
            .await
            .map_err(|e| pg_error("recording a schedule's failure", e))?;
        return Ok(Some(retry_at));
    }
    tx.tx
        .execute_cached(
            "INSERT INTO schedule_dead (id, slot, failures, error, at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (id, slot) DO UPDATE SET failures = $3, error = $4, at = $5",
            &[
                &due.id,
                &(due.slot as i64),
                &(count as i32),
                &message,
                &(tx.now as i64),
            ],
        )
        .await
        .map_err(|e| pg_error("dead-lettering a schedule's slot", e))?;
    clear_failures(tx, &due.id).await?;
    // What this build cannot read gives no next slot: the schedule stops here.
    match decode_schedule(&due.record) {
        Ok(mut s) => {
            s.next_run = None;
            save(tx, &due.id, &s).await?;
        }
        Err(_) => {
            tx.tx
                .execute_cached(
                    "UPDATE schedules SET next_run = NULL WHERE id = $1",
                    &[&due.id],
                )
                .await
                .map_err(|e| pg_error("stopping a schedule", e))?;
        }
    }
    failures::dead_lettered(report, &due.id, due.slot, count, message);
    Ok(None)
}

/// Submits the due slots of up to `limit` schedules not held by another node's pass; returns
/// the next instant with work.
async fn dispatch(
    tx: &mut JobTx<'_>,
    host: &dyn DispatchHost,
    limit: usize,
    report: &mut DispatchReport,
) -> Result<Option<u64>> {
    let now = tx.now;
    // Looked at once `now` is fixed: a jump seen by an earlier look would be missing here.
    let missed = host.missed_windows();
    let scan = limit.saturating_mul(SCAN_FACTOR);
    let due: Vec<Due> = tx
        .tx
        .query_cached(
            "SELECT s.id, s.record, s.next_run, f.count, f.retry_at
             FROM schedules s LEFT JOIN schedule_failures f ON f.id = s.id
             WHERE s.next_run <= $1
             ORDER BY s.next_run, s.id LIMIT $2
             FOR UPDATE OF s SKIP LOCKED",
            &[&(now as i64), &pg_limit(scan)],
        )
        .await
        .map_err(|e| pg_error("finding due schedules", e))?
        .iter()
        .map(|r| Due {
            id: r.get(0),
            record: r.get(1),
            slot: r.get::<_, i64>(2) as u64,
            failing: r
                .get::<_, Option<i32>>(3)
                .map(|c| (c as u32, r.get::<_, i64>(4) as u64)),
        })
        .collect();
    let mut retry_at: Option<u64> = None;
    let mut lower = |at: u64| retry_at = Some(retry_at.map_or(at, |r: u64| r.min(at)));
    if due.len() == scan {
        lower(now.saturating_add(1_000));
    }
    let mut passed_over = 0;
    for (i, d) in due.iter().enumerate() {
        if i - passed_over == limit {
            lower(now);
            break;
        }
        if let Some((_, at)) = d.failing.filter(|(_, at)| *at > now) {
            lower(at);
            passed_over += 1;
            continue;
        }
        // A record or expression this build cannot read fails this schedule only.
        let loaded = decode_schedule(&d.record).and_then(|s| {
            let cron: Result<CronSchedule> = host.crons().get(&s.cron, &s.zone).cloned();
            cron.map(|c| (s, c))
        });
        let (mut s, cron) = match loaded {
            Ok(loaded) => loaded,
            Err(e @ (Error::Corrupt { .. } | Error::InvalidArgument { .. })) => {
                if let Some(at) = record_failure(tx, d, &e, report).await? {
                    lower(at);
                }
                continue;
            }
            Err(e) => return Err(e),
        };
        if d.failing.is_some() {
            clear_failures(tx, &d.id).await?;
        }
        // A node without the job's handler leaves the schedule to one that has it.
        if !host.has_handler(&s.job.name) {
            rules::count_held(&d.id, report);
            lower(now.saturating_add(1_000));
            passed_over += 1;
            continue;
        }
        let planned = rules::plan(&s, &cron, d.slot, now, &missed);
        if planned.more {
            lower(now);
        }
        let jobs: Vec<_> = planned
            .run
            .iter()
            .map(|slot| s.job.job_with_key(format!("{}:{slot}", d.id)))
            .collect();
        let submitted = submit_batch(tx, &jobs).await?;
        for (slot, out) in planned.run.iter().zip(submitted) {
            if !out.deduplicated {
                rules::count_submitted(&mut s, &d.id, *slot, report);
            }
        }
        rules::advance(&mut s, &d.id, planned.next, planned.dropped, report);
        save(tx, &d.id, &s).await?;
    }
    let first: Option<i64> = tx
        .tx
        .query_one_cached(
            "SELECT min(next_run) FROM schedules WHERE next_run > $1",
            &[&(now as i64)],
        )
        .await
        .map_err(|e| pg_error("finding the next slot", e))?
        .get(0);
    Ok([
        first.map(|f| f as u64),
        retry_at,
        Some(now.saturating_add(POLL_MS)),
    ]
    .into_iter()
    .flatten()
    .min())
}

fn dead_letter(r: &tokio_postgres::Row) -> ScheduleDeadLetter {
    ScheduleDeadLetter {
        id: r.get(0),
        slot_ms: r.get::<_, i64>(1) as u64,
        failures: r.get::<_, i32>(2) as u32,
        error: r.get(3),
        at_ms: r.get::<_, i64>(4) as u64,
    }
}

impl ScheduleStorage for PgSchedules {
    async fn register(&self, register: ScheduleRegister) -> Result<(Registered, Option<u64>)> {
        self.pg()?
            .write(async |tx| {
                // Racing first registrations of one id both find none; the upsert keeps one.
                let existing = load(tx, &register.id).await?;
                let (s, registered) = rules::registered(existing.as_ref(), &register, tx.now);
                save(tx, &register.id, &s).await?;
                clear_failures(tx, &register.id).await?;
                Ok((registered, s.next_run))
            })
            .await
    }

    async fn remove(&self, id: &str) -> Result<bool> {
        self.pg()?
            .write(async |tx| {
                let removed = tx
                    .tx
                    .execute_cached("DELETE FROM schedules WHERE id = $1", &[&id])
                    .await
                    .map_err(|e| pg_error("removing a schedule", e))?;
                clear_failures(tx, id).await?;
                Ok(removed > 0)
            })
            .await
    }

    async fn trigger(&self, id: &str, key: &str) -> Result<Submitted> {
        self.pg()?
            .write(async |tx| {
                let row = tx
                    .tx
                    .query_opt_cached(
                        "SELECT record FROM schedules WHERE id = $1 FOR SHARE",
                        &[&id],
                    )
                    .await
                    .map_err(|e| pg_error("loading a schedule", e))?;
                let Some(row) = row else {
                    return Err(unknown(id));
                };
                let s = decode_schedule(row.get(0))?;
                submit_one(tx, &s.job.job_with_key(format!("manual:{id}:{key}"))).await
            })
            .await
    }

    async fn get(&self, id: &str) -> Result<Option<ScheduleInfo>> {
        let client = self.pg()?.pg().client().await?;
        let row = client
            .query_opt_cached("SELECT record FROM schedules WHERE id = $1", &[&id])
            .await
            .map_err(|e| pg_error("reading a schedule", e))?;
        row.map(|r| decode_schedule(r.get(0)).map(|s| info(id.to_string(), s)))
            .transpose()
    }

    async fn list(&self) -> Result<Vec<ScheduleInfo>> {
        let client = self.pg()?.pg().client().await?;
        client
            .query_cached("SELECT id, record FROM schedules ORDER BY id", &[])
            .await
            .map_err(|e| pg_error("listing schedules", e))?
            .iter()
            .map(|r| decode_schedule(r.get(1)).map(|s| info(r.get(0), s)))
            .collect()
    }

    async fn dead_letters(&self) -> Result<Vec<ScheduleDeadLetter>> {
        let client = self.pg()?.pg().client().await?;
        Ok(client
            .query_cached(
                "SELECT id, slot, failures, error, at FROM schedule_dead ORDER BY id, slot",
                &[],
            )
            .await
            .map_err(|e| pg_error("listing the scheduler's dead letters", e))?
            .iter()
            .map(dead_letter)
            .collect())
    }

    async fn clear_dead_letters(&self, id: &str) -> Result<u64> {
        self.pg()?
            .write(async |tx| {
                tx.tx
                    .execute_cached("DELETE FROM schedule_dead WHERE id = $1", &[&id])
                    .await
                    .map_err(|e| pg_error("clearing the scheduler's dead letters", e))
            })
            .await
    }

    async fn dispatch(
        &self,
        host: Arc<dyn DispatchHost>,
        limit: usize,
    ) -> Result<(Option<u64>, DispatchReport)> {
        let _one_at_a_time = self.passes.lock().await;
        self.pg()?
            .write(async |tx| {
                let mut report = DispatchReport::default();
                let next = dispatch(tx, host.as_ref(), limit, &mut report).await?;
                Ok((next, report))
            })
            .await
    }
}
