//! The scheduler over the embedded file: each operation an op of [`ops`](super::ops) sent to
//! the writer (batched with others into one commit), each read one read transaction. Jobs a
//! schedule submits are written in the same transaction, through the job storage's writer.

use std::sync::Arc;

use redb::{ReadableTable, ReadableTableMetadata};

use super::failures::{self, ScheduleDeadLetter};
use super::metrics::DispatchReport;
use super::ops;
use super::record::StoredSchedule;
use super::schedules::unknown;
use super::spec::{Registered, ScheduleInfo, info};
use super::storage::{DispatchHost, ScheduleRegister, ScheduleStorage};
use super::tables::{SCHEDULE_DUE, SCHEDULE_FAILURES, SCHEDULES};
use crate::error::Result;
use crate::job::Submitted;
use crate::job::core::JobCore;
use crate::job::redb::RedbJobs;
use crate::store::codec::decode;

/// The scheduler's storage in the file.
#[derive(Debug)]
pub(crate) struct RedbSchedules {
    /// The jobs the schedules submit, and the writer they share.
    jobs: Arc<JobCore>,
}

impl RedbSchedules {
    pub(crate) fn new(jobs: Arc<JobCore>) -> Self {
        RedbSchedules { jobs }
    }

    /// The file's job storage the schedules share.
    fn redb(&self) -> Result<&RedbJobs> {
        self.jobs.redb().ok_or(crate::Error::Unsupported {
            what: "the cron scheduler",
            backend: "PostgreSQL",
        })
    }
}

impl ScheduleStorage for RedbSchedules {
    async fn register(&self, register: ScheduleRegister) -> Result<(Registered, Option<u64>)> {
        self.redb()?
            .write(move |ctx, _| ops::register::register(ctx, &register))
            .await
    }

    async fn remove(&self, id: &str) -> Result<bool> {
        let id = id.to_string();
        self.redb()?
            .write(move |ctx, _| ops::remove::remove(ctx, &id))
            .await
    }

    async fn trigger(&self, id: &str, key: &str) -> Result<Submitted> {
        let (owned, key) = (id.to_string(), key.to_string());
        self.redb()?
            .write(move |ctx, fx| ops::trigger::trigger(ctx, &owned, &key, fx))
            .await?
            .ok_or_else(|| unknown(id))
    }

    async fn get(&self, id: &str) -> Result<Option<ScheduleInfo>> {
        // A backend without schedules holds none.
        let Some(redb) = self.jobs.redb() else {
            return Ok(None);
        };
        redb.store().read(|rtx| {
            let table = rtx.open_table(SCHEDULES)?;
            let Some(b) = table.get(id)? else {
                return Ok(None);
            };
            let StoredSchedule::V1(s) = decode("schedules", b.value())?;
            Ok(Some(info(id.to_string(), s)))
        })
    }

    async fn list(&self) -> Result<Vec<ScheduleInfo>> {
        let Some(redb) = self.jobs.redb() else {
            return Ok(Vec::new());
        };
        redb.store().read(|rtx| {
            let table = rtx.open_table(SCHEDULES)?;
            let mut out = Vec::new();
            for item in table.iter()? {
                let (k, v) = item?;
                let StoredSchedule::V1(s) = decode("schedules", v.value())?;
                out.push(info(k.value().to_string(), s));
            }
            Ok(out)
        })
    }

    async fn dead_letters(&self) -> Result<Vec<ScheduleDeadLetter>> {
        match self.jobs.redb() {
            Some(redb) => redb.store().read(failures::list),
            None => Ok(Vec::new()),
        }
    }

    async fn clear_dead_letters(&self, id: &str) -> Result<u64> {
        let id = id.to_string();
        self.redb()?
            .write(move |ctx, _| ops::clear_dead::clear_dead(ctx, &id))
            .await
    }

    async fn dispatch(
        &self,
        host: Arc<dyn DispatchHost>,
        limit: usize,
    ) -> Result<(Option<u64>, DispatchReport)> {
        // A file without schedules has nothing to dispatch: no write (and no fsync) for it.
        let none = self.redb()?.store().read(|rtx| {
            Ok(rtx.open_table(SCHEDULE_DUE)?.is_empty()?
                && rtx.open_table(SCHEDULE_FAILURES)?.is_empty()?)
        })?;
        if none {
            return Ok((None, DispatchReport::default()));
        }
        self.redb()?
            .write(move |ctx, fx| {
                // Looked at in the writer, after the transaction's `now` was read: a jump seen
                // by an earlier look would otherwise be missing from this pass.
                let missed = host.missed_windows();
                let mut report = DispatchReport::default();
                let has_handler = |name: &str| host.has_handler(name);
                let mut crons = host.crons();
                let next = ops::dispatch::dispatch(
                    ctx,
                    &missed,
                    limit,
                    &has_handler,
                    &mut crons,
                    fx,
                    &mut report,
                )?;
                Ok((next, report))
            })
            .await
    }
}
