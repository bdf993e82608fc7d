//! Transactions of the application's own: its tables in the file, written atomically with the
//! jobs it submits ([`Engine::transaction`](crate::Engine::transaction)).
//!
//! An application table maps bytes to bytes. Its name is stored with the prefix
//! [`APP_TABLE_PREFIX`](crate::store::APP_TABLE_PREFIX), so no name reaches a table of
//! jobfile's own. Its writes go through the same group commit and write-ahead log as
//! jobfile's, so they are exactly as durable, and recovered by the same replay.

use std::sync::{Arc, Mutex};

use redb::ReadableTable;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::job::core::JobCore;
use crate::job::effects::Effects;
use crate::job::ops;
use crate::job::{Submit, Submitted};
use crate::store::{APP_TABLE_PREFIX, TxCtx};

/// The longest application table name, in bytes.
const MAX_TABLE_NAME: usize = 200;

/// An application transaction: reads and writes of its own tables and job submits, committed
/// together or not at all. See [`Engine::transaction`](crate::Engine::transaction).
pub struct Transaction<'t, 'c> {
    ctx: &'t mut TxCtx<'c>,
    fx: &'t mut Effects,
    core: &'t Arc<JobCore>,
}

impl std::fmt::Debug for Transaction<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("now_ms", &self.ctx.now)
            .finish_non_exhaustive()
    }
}

/// The stored name of application table `name`, checked.
pub(crate) fn stored_name(name: &str) -> Result<String> {
    if name.is_empty() || name.len() > MAX_TABLE_NAME {
        return Err(Error::invalid(
            "table name",
            format!(
                "it must be 1 to {MAX_TABLE_NAME} bytes long, not {}",
                name.len()
            ),
        ));
    }
    Ok(format!("{APP_TABLE_PREFIX}{name}"))
}

impl Transaction<'_, '_> {
    /// The transaction's time (ms since the epoch), on the engine's clock: every write of the
    /// group commit it joins shares it.
    pub fn now_ms(&self) -> u64 {
        self.ctx.now
    }

    /// The value under `key` in table `table`, as this transaction sees it (its own writes
    /// included). A table never written reads as empty.
    pub fn get(&mut self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let table = self.ctx.tx.open_app_table(&stored_name(table)?)?;
        Ok(table.get(key)?.map(|v| v.value().to_vec()))
    }

    /// Puts `value` under `key` in table `table`; the value it replaced, if any.
    pub fn insert(&mut self, table: &str, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>> {
        let mut table = self.ctx.tx.open_app_table(&stored_name(table)?)?;
        Ok(table.insert(key, value)?.map(|v| v.value().to_vec()))
    }

    /// Removes `key` from table `table`; the value it held, if any.
    pub fn remove(&mut self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let mut table = self.ctx.tx.open_app_table(&stored_name(table)?)?;
        Ok(table.remove(key)?.map(|v| v.value().to_vec()))
    }

    /// Up to `limit` entries of table `table` from key `from` on, in key order.
    pub fn range(
        &mut self,
        table: &str,
        from: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let table = self.ctx.tx.open_app_table(&stored_name(table)?)?;
        let mut out = Vec::new();
        for entry in table.range(from..)?.take(limit) {
            let (k, v) = entry?;
            out.push((k.value().to_vec(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// Submits the job that `submit` describes (built as for an await:
    /// `handle.submit(input).delay(..)`), in this transaction: it exists only if the
    /// transaction commits. Its workers are woken after the commit.
    pub fn submit<I: Serialize, O>(&mut self, submit: Submit<'_, I, O>) -> Result<Submitted> {
        if !Arc::ptr_eq(submit.core(), self.core) {
            return Err(Error::invalid(
                "submit",
                "the job handle belongs to another engine",
            ));
        }
        let new = submit.prepare()?;
        let done = ops::submit::submit(self.ctx, &new, None, self.fx)?;
        Ok(Submitted {
            id: done.id,
            deduplicated: done.deduplicated,
        })
    }
}

/// Runs `f` as one op of the file's writer. An error `f` returns aborts the op (the writer
/// rolls its changes back) and reaches the caller as it was returned.
pub(crate) async fn run<T, E, F>(core: &Arc<JobCore>, mut f: F) -> std::result::Result<T, E>
where
    T: Send + 'static,
    E: From<Error> + Send + 'static,
    F: FnMut(&mut Transaction<'_, '_>) -> std::result::Result<T, E> + Send + 'static,
{
    let Some(backend) = core.redb() else {
        return Err(Error::Unsupported {
            what: "application transactions (`Engine::transaction`)",
            backend: "PostgreSQL",
        }
        .into());
    };
    let failed: Arc<Mutex<Option<E>>> = Arc::new(Mutex::new(None));
    let kept = failed.clone();
    let engine = core.clone();
    let result = backend
        .write(move |ctx, fx| {
            *kept.lock().unwrap_or_else(|p| p.into_inner()) = None;
            let mut tx = Transaction {
                ctx,
                fx,
                core: &engine,
            };
            f(&mut tx).map_err(|e| {
                *kept.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                Error::Internal("an application transaction returned an error".into())
            })
        })
        .await;
    // The op may have run more than once (see `job::ops`): the error is that of its last run.
    result.map_err(|e| {
        let own = failed.lock().unwrap_or_else(|p| p.into_inner()).take();
        own.unwrap_or_else(|| e.into())
    })
}

/// Reads the application table `table` as last committed: `read` of it, or `None` if it was
/// never written.
pub(crate) fn read<T>(
    core: &JobCore,
    table: &str,
    read: impl FnOnce(&redb::ReadOnlyTable<&'static [u8], &'static [u8]>) -> Result<T>,
) -> Result<Option<T>> {
    let name = stored_name(table)?;
    let backend = core.redb().ok_or(Error::Unsupported {
        what: "application tables",
        backend: "PostgreSQL",
    })?;
    backend.store().read(
        |rtx| match rtx.open_table(crate::store::tables::AppTable::new(&name)) {
            Ok(t) => read(&t).map(Some),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(e.into()),
        },
    )
}
