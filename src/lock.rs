//! The leader lock: an exclusive OS file lock on `<file>.lock`. Holding it proves every earlier
//! holder is gone, which is what lets recovery reclaim their work at once.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// An acquired leader lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub(crate) struct LeaderLock {
    _file: File,
}

pub(crate) fn lock_path(db_path: &Path) -> PathBuf {
    let mut name = db_path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

fn open_lock_file(db_path: &Path) -> Result<File> {
    let path = lock_path(db_path);
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|source| Error::Io { path, source })
}

impl LeaderLock {
    /// Takes the lock or fails at once with [`Error::Locked`].
    pub(crate) fn try_acquire(db_path: &Path) -> Result<Self> {
        let file = open_lock_file(db_path)?;
        match file.try_lock() {
            Ok(()) => Ok(LeaderLock { _file: file }),
            Err(TryLockError::WouldBlock) => Err(Error::Locked {
                path: db_path.to_path_buf(),
            }),
            Err(TryLockError::Error(source)) => Err(Error::Io {
                path: lock_path(db_path),
                source,
            }),
        }
    }

    /// Waits (blocking the calling thread) until the lock is free, then takes it.
    pub(crate) fn acquire_blocking(db_path: &Path) -> Result<Self> {
        let file = open_lock_file(db_path)?;
        file.lock().map_err(|source| Error::Io {
            path: lock_path(db_path),
            source,
        })?;
        Ok(LeaderLock { _file: file })
    }
}
