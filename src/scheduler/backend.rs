//! The storage backends the scheduler can use, dispatched by enum: public types stay
//! non-generic.

use std::sync::Arc;

use super::failures::ScheduleDeadLetter;
use super::metrics::DispatchReport;
use super::redb::RedbSchedules;
use super::spec::{Registered, ScheduleInfo};
use super::storage::{DispatchHost, ScheduleRegister, ScheduleStorage};
use crate::error::Result;
use crate::job::Submitted;

/// The storage an engine's scheduler uses.
#[derive(Debug)]
pub(crate) enum ScheduleBackend {
    /// The embedded file.
    Redb(RedbSchedules),
    /// A PostgreSQL schema shared by many nodes.
    #[cfg(feature = "postgres")]
    Postgres(super::postgres::PgSchedules),
}

impl ScheduleStorage for ScheduleBackend {
    async fn register(&self, register: ScheduleRegister) -> Result<(Registered, Option<u64>)> {
        match self {
            ScheduleBackend::Redb(b) => b.register(register).await,
            #[cfg(feature = "postgres")]
            ScheduleBackend::Postgres(b) => b.register(register).await,
        }
    }

    async fn remove(&self, id: &str) -> Result<bool> {
        match self {
            ScheduleBackend::Redb(b) => b.remove(id).await,
            #[cfg(feature = "postgres")]
            ScheduleBackend::Postgres(b) => b.remove(id).await,
        }
    }

    async fn trigger(&self, id: &str, key: &str) -> Result<Submitted> {
        match self {
            ScheduleBackend::Redb(b) => b.trigger(id, key).await,
            #[cfg(feature = "postgres")]
            ScheduleBackend::Postgres(b) => b.trigger(id, key).await,
        }
    }

    async fn get(&self, id: &str) -> Result<Option<ScheduleInfo>> {
        match self {
            ScheduleBackend::Redb(b) => b.get(id).await,
            #[cfg(feature = "postgres")]
            ScheduleBackend::Postgres(b) => b.get(id).await,
        }
    }

    async fn list(&self) -> Result<Vec<ScheduleInfo>> {
        match self {
            ScheduleBackend::Redb(b) => b.list().await,
            #[cfg(feature = "postgres")]
            ScheduleBackend::Postgres(b) => b.list().await,
        }
    }

    async fn dead_letters(&self) -> Result<Vec<ScheduleDeadLetter>> {
        match self {
            ScheduleBackend::Redb(b) => b.dead_letters().await,
            #[cfg(feature = "postgres")]
            ScheduleBackend::Postgres(b) => b.dead_letters().await,
        }
    }

    async fn clear_dead_letters(&self, id: &str) -> Result<u64> {
        match self {
            ScheduleBackend::Redb(b) => b.clear_dead_letters(id).await,
            #[cfg(feature = "postgres")]
            ScheduleBackend::Postgres(b) => b.clear_dead_letters(id).await,
        }
    }

    async fn dispatch(
        &self,
        host: Arc<dyn DispatchHost>,
        limit: usize,
    ) -> Result<(Option<u64>, DispatchReport)> {
        match self {
            ScheduleBackend::Redb(b) => b.dispatch(host, limit).await,
            #[cfg(feature = "postgres")]
            ScheduleBackend::Postgres(b) => b.dispatch(host, limit).await,
        }
    }
}
