//! The meta table: format version, leadership epoch, id counters.

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableHandle, WriteTransaction};

use super::tables::{self, ALL_TABLE_NAMES, META};
use crate::error::{Error, Result};
use std::path::Path;

/// The format version this build writes and the newest it reads. Version 2 added the queue's
/// age index (and the job input table); a version 1 file is upgraded at its first open by a
/// build that writes 2, which an older build then refuses as newer instead of misreading.
pub(crate) const FORMAT_VERSION: u64 = 2;
const KEY_FORMAT: &str = "format_version";
const KEY_EPOCH: &str = "epoch";

/// What an existing file says about itself.
pub(crate) enum FileKind {
    /// No jobfile tables and no foreign ones: a fresh redb file, safe to initialise.
    Empty,
    /// A jobfile file this build can read.
    Jobfile,
}

/// Checks an opened database before anything is written to it.
pub(crate) fn inspect(db: &impl ReadableDatabase, path: &Path) -> Result<FileKind> {
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
    if let Some(foreign) = names
        .iter()
        .find(|n| !ALL_TABLE_NAMES.contains(&n.as_str()))
    {
        // Tables of a newer jobfile would carry a newer format version; anything else is foreign.
        return Err(Error::NotAJobfile {
            path: path.to_path_buf(),
            reason: format!("it holds a table jobfile does not know: {foreign}"),
        });
    }
    let _ = meta.len()?;
    Ok(FileKind::Jobfile)
}

/// Creates the tables a file of this format has (those it lacks), and records the format
/// version (upgrading an older file's).
pub(crate) fn init(tx: &WriteTransaction) -> Result<()> {
    tables::create_all(tx)?;
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
pub(crate) fn init_and_bump_epoch(tx: &WriteTransaction) -> Result<u64> {
    init(tx)?;
    let mut meta = tx.open_table(META)?;
    let epoch = meta.get(KEY_EPOCH)?.map(|v| v.value()).unwrap_or(0) + 1;
    meta.insert(KEY_EPOCH, epoch)?;
    Ok(epoch)
}

/// Reads a counter's last issued value (0 when never used).
pub(crate) fn read_counter(tx: &WriteTransaction, name: &str) -> Result<u64> {
    let meta = tx.open_table(META)?;
    Ok(meta.get(name)?.map(|v| v.value()).unwrap_or(0))
}

/// Stores a counter's last issued value.
pub(crate) fn write_counter(tx: &WriteTransaction, name: &str, value: u64) -> Result<()> {
    let mut meta = tx.open_table(META)?;
    meta.insert(name, value)?;
    Ok(())
}
