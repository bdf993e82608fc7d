//! The leader lock: an exclusive OS file lock on `<file>.lock`. Holding it proves every earlier
//! holder is gone, which is what lets recovery reclaim their work at once.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::file_identity::FileIdentity;

/// The lock files this process holds, so that a second open here is told apart from another
/// process holding the file.
static HELD_HERE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn held_here() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    HELD_HERE.lock().unwrap_or_else(|p| p.into_inner())
}

/// An acquired leader lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub(crate) struct LeaderLock {
    identity: FileIdentity,
    /// The lock file's canonical path, as listed in [`HELD_HERE`].
    canonical: Option<PathBuf>,
    /// Whether this process created the lock file (it removes it again if the open fails
    /// before the data file exists).
    created: bool,
}

pub(crate) fn lock_path(db_path: &Path) -> PathBuf {
    let mut name = db_path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// How often an acquisition starts over because the lock file it locked was removed meanwhile
/// (by a failed first open that cleaned up after itself) before it gives up.
const MAX_LOCK_RETRIES: usize = 16;

impl LeaderLock {
    /// Takes the lock or fails at once with [`Error::Locked`].
    pub(crate) fn try_acquire(db_path: &Path) -> Result<Self> {
        Self::acquire(db_path, false)
    }

    /// Waits (blocking the calling thread) until the lock is free, then takes it.
    pub(crate) fn acquire_blocking(db_path: &Path) -> Result<Self> {
        Self::acquire(db_path, true)
    }

    fn acquire(db_path: &Path, wait: bool) -> Result<Self> {
        if db_path.is_dir() {
            return Err(Error::invalid(
                "path",
                format!(
                    "{} is a directory; give the path of a jobfile file (it is created if missing)",
                    db_path.display()
                ),
            ));
        }
        let path = lock_path(db_path);
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        for _ in 0..MAX_LOCK_RETRIES {
            let (file, created) = open_lock_file(&path).map_err(io)?;
            if wait {
                file.lock().map_err(io)?;
            } else {
                match file.try_lock() {
                    Ok(()) => {}
                    Err(TryLockError::WouldBlock) => {
                        let here =
                            std::fs::canonicalize(&path).is_ok_and(|c| held_here().contains(&c));
                        let path = db_path.to_path_buf();
                        return Err(if here {
                            Error::AlreadyOpen { path }
                        } else {
                            Error::Locked { path }
                        });
                    }
                    Err(TryLockError::Error(source)) => return Err(io(source)),
                }
            }
            let identity = FileIdentity::new(&path, file).map_err(io)?;
            // The file locked must still be the one the path names: a holder that removed it
            // (a failed first open cleaning up) leaves a lock that guards nothing.
            if identity.check().is_ok() {
                let canonical = std::fs::canonicalize(&path).ok();
                if let Some(c) = &canonical {
                    held_here().push(c.clone());
                }
                return Ok(LeaderLock {
                    identity,
                    created,
                    canonical,
                });
            }
        }
        Err(Error::FileReplaced {
            path,
            detail: "kept being removed or replaced while this process tried to lock it".into(),
        })
    }

    /// Releases the lock and removes the lock file if this process created it: a failed open
    /// leaves nothing behind.
    pub(crate) fn release_and_remove(self) {
        self.forget_here();
        if self.created {
            // Removed while still locked: a process waiting on this file finds it gone once
            // it gets the lock, and starts over on a new one.
            let _ = std::fs::remove_file(self.identity.path());
        }
    }
}

impl LeaderLock {
    fn forget_here(&self) {
        if let Some(c) = &self.canonical {
            held_here().retain(|p| p != c);
        }
    }
}

impl Drop for LeaderLock {
    fn drop(&mut self) {
        self.forget_here();
    }
}

fn open_lock_file(path: &Path) -> std::io::Result<(File, bool)> {
    let created = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path);
    match created {
        Ok(file) => Ok((file, true)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let file = OpenOptions::new().read(true).write(true).open(path)?;
            Ok((file, false))
        }
        Err(e) => Err(e),
    }
}
