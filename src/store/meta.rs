//! The meta table: format version, leadership epoch, id counters.

use std::path::Path;

use redb::{
    ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, TableHandle,
    WriteTransaction,
};

use super::change::WriteTx;
use super::tables::Schema;
use crate::error::{Error, Result};

/// Engine metadata: format version, leadership epoch, id counters and gauges.
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("jobfile_meta");

/// The format version this build writes and the newest it reads. Version 2 added the queue's
/// age index (and the job input table); version 3, progress counted in items (in job records
/// and events); version 4, the write-ahead log beside the file (a build that ignored it would
/// lose what a crash left only in the log); version 5, the rate limiter's and flow control's
/// tables; version 6, job dependencies (the `waiting` state and the dependents table);
/// version 7, terminal jobs' retention entries grouped per batch (a build that ignored the
/// grouped table would never purge the jobs it lists). An
/// older file is upgraded at its first open by a build that writes a newer version, which an
/// older build then refuses as newer instead of misreading.
pub(crate) const FORMAT_VERSION: u64 = 7;
const KEY_FORMAT: &str = "format_version";
const KEY_EPOCH: &str = "epoch";
/// The write-ahead log's generation: see [`super::wal`].
const KEY_LOG_GENERATION: &str = "log_generation";

/// What an existing file says about itself.
pub(crate) enum FileKind {
    /// No jobfile tables and no foreign ones: a fresh redb file, safe to initialise.
    Empty,
    /// A jobfile file this build can read.
    Jobfile,
}

/// Checks an opened database before anything is written to it: a file holding a table that is
/// neither the metadata nor in `schema` is not one of ours.
pub(crate) fn inspect(
    db: &impl ReadableDatabase,
    path: &Path,
    schema: &Schema,
) -> Result<FileKind> {
    let rtx = db.begin_read()?;
    let names: Vec<String> = rtx.list_tables()?.map(|t| t.name().to_string()).collect();
    if names.is_empty() {
        return Ok(FileKind::Empty);
    }
    if !names.iter().any(|n| n == META.name()) {
        return Err(Error::NotAJobfile {
            path: path.to_path_buf(),
            reason: format!(
                "it is a redb database without jobfile metadata (tables: {})",
                names.join(", ")
            ),
        });
    }
    let meta = rtx.open_table(META)?;
    let found = match meta.get(KEY_FORMAT)? {
        Some(v) => v.value(),
        None => {
            return Err(Error::NotAJobfile {
                path: path.to_path_buf(),
                reason: "its metadata has no format version".into(),
            });
        }
    };
    if found > FORMAT_VERSION {
        return Err(Error::NewerFormat {
            path: path.to_path_buf(),
            found,
            supported: FORMAT_VERSION,
        });
    }
    let known = |name: &str| {
        name == META.name()
            || name.starts_with(super::tables::APP_TABLE_PREFIX)
            || schema
                .iter()
                .flat_map(|tables| tables.iter())
                .any(|t| t.table_name() == name)
    };
    if let Some(foreign) = names.iter().find(|n| !known(n)) {
        // Tables of a newer jobfile would carry a newer format version; anything else is foreign.
        return Err(Error::NotAJobfile {
            path: path.to_path_buf(),
            reason: format!("it holds a table jobfile does not know: {foreign}"),
        });
    }
    let _ = meta.len()?;
    Ok(FileKind::Jobfile)
}

/// Creates the tables a file of this format has (those it lacks), so readers never meet a
/// missing one, and records the format version (upgrading an older file's).
pub(crate) fn init(tx: &WriteTransaction, schema: &Schema) -> Result<()> {
    for table in schema.iter().flat_map(|tables| tables.iter()) {
        table.create(tx)?;
    }
    let mut meta = tx.open_table(META)?;
    if meta
        .get(KEY_FORMAT)?
        .is_none_or(|v| v.value() < FORMAT_VERSION)
    {
        meta.insert(KEY_FORMAT, FORMAT_VERSION)?;
    }
    Ok(())
}

/// [`init`], then starts a new leadership epoch. Returns the new epoch.
pub(crate) fn init_and_bump_epoch(tx: &WriteTransaction, schema: &Schema) -> Result<u64> {
    init(tx, schema)?;
    let mut meta = tx.open_table(META)?;
    let epoch = meta.get(KEY_EPOCH)?.map(|v| v.value()).unwrap_or(0) + 1;
    meta.insert(KEY_EPOCH, epoch)?;
    Ok(epoch)
}

/// The committed counters and gauges as `read_counters(rtx)?(name)` (0 when never used).
pub(crate) fn read_counters(
    rtx: &redb::ReadTransaction,
) -> Result<impl Fn(&str) -> Result<u64> + use<>> {
    let meta = rtx.open_table(META)?;
    Ok(move |name: &str| -> Result<u64> { Ok(meta.get(name)?.map(|v| v.value()).unwrap_or(0)) })
}

/// Every counter whose name starts with `prefix`, with the prefix cut off, in name order.
pub(crate) fn read_prefixed(
    rtx: &redb::ReadTransaction,
    prefix: &str,
) -> Result<Vec<(String, u64)>> {
    let meta = rtx.open_table(META)?;
    let mut out = Vec::new();
    for entry in meta.range(prefix..)? {
        let (key, value) = entry?;
        let Some(rest) = key.value().strip_prefix(prefix) else {
            break;
        };
        out.push((rest.to_string(), value.value()));
    }
    Ok(out)
}

/// The write-ahead log's generation the file was last checkpointed under (0 before any).
pub(crate) fn log_generation(tx: &WriteTransaction) -> Result<u64> {
    let meta = tx.open_table(META)?;
    Ok(meta.get(KEY_LOG_GENERATION)?.map_or(0, |v| v.value()))
}

/// Records the log's generation, in a durable commit (a checkpoint).
pub(crate) fn set_log_generation(tx: &WriteTransaction, generation: u64) -> Result<()> {
    tx.open_table(META)?
        .insert(KEY_LOG_GENERATION, generation)?;
    Ok(())
}

/// Reads a counter's last issued value (0 when never used).
pub(crate) fn read_counter(tx: &WriteTx, name: &str) -> Result<u64> {
    let meta = tx.open_table(META)?;
    Ok(meta.get(name)?.map(|v| v.value()).unwrap_or(0))
}

/// Stores a counter's last issued value.
pub(crate) fn write_counter(tx: &WriteTx, name: &str, value: u64) -> Result<()> {
    write_counters(tx, [(name, value)])
}

/// Stores counters' last values, opening the table once for all of them.
pub(crate) fn write_counters<'n>(
    tx: &WriteTx,
    counters: impl IntoIterator<Item = (&'n str, u64)>,
) -> Result<()> {
    let mut counters = counters.into_iter().peekable();
    if counters.peek().is_none() {
        return Ok(());
    }
    let mut meta = tx.open_table(META)?;
    for (name, value) in counters {
        meta.insert(name, value)?;
    }
    Ok(())
}
