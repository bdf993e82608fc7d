//! The leader lock: an exclusive OS file lock on `<file>.lock`. Holding it proves every earlier
//! holder is gone, which is what lets recovery reclaim their work at once.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
    /// What this process says about itself in the lock file.
    holder: LockHolder,
}

pub(crate) fn lock_path(db_path: &Path) -> PathBuf {
    let mut name = db_path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// How often an acquisition starts over because the lock file it locked was removed meanwhile
/// (by a failed first open that cleaned up after itself) before it gives up.
const MAX_LOCK_RETRIES: usize = 16;

/// How long an open waits for a lock that this process let go of but the OS still holds: a
/// child process started at that moment inherits the lock's descriptor and holds it until its
/// own program starts. After that, [`Error::Locked`] as for any holder.
const OWN_RELEASE_WAIT: Duration = Duration::from_secs(1);
const OWN_RELEASE_POLL: Duration = Duration::from_millis(1);

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
        let own_release_by = Instant::now() + OWN_RELEASE_WAIT;
        for _ in 0..MAX_LOCK_RETRIES {
            let (file, created) = open_lock_file(&path).map_err(io)?;
            if wait {
                file.lock().map_err(io)?;
            } else {
                loop {
                    match file.try_lock() {
                        Ok(()) => break,
                        Err(TryLockError::WouldBlock) => {
                            let here = std::fs::canonicalize(&path)
                                .is_ok_and(|c| held_here().contains(&c));
                            if here {
                                return Err(Error::AlreadyOpen {
                                    path: db_path.to_path_buf(),
                                });
                            }
                            let holder = LockHolder::read(&file);
                            let ours = holder.as_ref().is_some_and(|h| h.pid == std::process::id());
                            if ours && Instant::now() < own_release_by {
                                // Held, yet not by any open here: a copy of the descriptor
                                // this process let go of, which a child started meanwhile
                                // inherited and holds until its program starts.
                                std::thread::sleep(OWN_RELEASE_POLL);
                                continue;
                            }
                            return Err(Error::Locked {
                                path: db_path.to_path_buf(),
                                holder: holder.map(Box::new),
                            });
                        }
                        Err(TryLockError::Error(source)) => return Err(io(source)),
                    }
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
                let holder = LockHolder {
                    pid: std::process::id(),
                    since_ms: wall_clock_ms(),
                    admin_url: None,
                };
                let lock = LeaderLock {
                    identity,
                    created,
                    canonical,
                    holder,
                };
                lock.write_holder();
                return Ok(lock);
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
    /// Records in the lock file where this process serves the admin API (`None`: no longer).
    #[cfg_attr(not(feature = "admin"), allow(dead_code))]
    pub(crate) fn advertise_admin(&mut self, url: Option<String>) {
        self.holder.admin_url = url;
        self.write_holder();
    }

    /// Replaces the lock file's contents with [`LockHolder`]'s lines. Best effort and not
    /// synced: they only inform whoever finds the file held; the lock itself is the OS lock.
    fn write_holder(&self) {
        let mut file = self.identity.file();
        let text = self.holder.to_lines();
        let written = file
            .set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(text.as_bytes()));
        if let Err(e) = written {
            tracing::debug!(error = %e, "could not record the lock holder in the lock file");
        }
    }

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

/// Who holds a jobfile's leader lock, as that process recorded it in the lock file; carried
/// by [`Error::Locked`] so that a second process can say whom to ask instead.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LockHolder {
    /// The holder's process id.
    pub pid: u32,
    /// When it took the lock, in Unix milliseconds by its wall clock.
    pub since_ms: u64,
    /// Where it serves the [admin API](crate::admin), if it does
    /// ([`Engine::serve_admin`](crate::Engine::serve_admin)).
    pub admin_url: Option<String>,
}

const HOLDER_HEADER: &str = "jobfile lock holder";

impl LockHolder {
    fn to_lines(&self) -> String {
        let mut text = format!(
            "{HOLDER_HEADER}\npid {}\nsince_ms {}\n",
            self.pid, self.since_ms
        );
        if let Some(url) = &self.admin_url {
            text.push_str(&format!("admin {url}\n"));
        }
        text
    }

    /// Parses the lines a holder wrote; `None` if they are missing, torn or from elsewhere.
    fn parse(text: &str) -> Option<LockHolder> {
        let mut lines = text.lines();
        if lines.next()? != HOLDER_HEADER {
            return None;
        }
        let (mut pid, mut since_ms, mut admin_url) = (None, None, None);
        for line in lines {
            match line.split_once(' ')? {
                ("pid", v) => pid = v.parse().ok(),
                ("since_ms", v) => since_ms = v.parse().ok(),
                ("admin", v) => admin_url = Some(v.to_string()),
                _ => {}
            }
        }
        Some(LockHolder {
            pid: pid?,
            since_ms: since_ms?,
            admin_url,
        })
    }

    fn read(mut file: &File) -> Option<LockHolder> {
        let mut text = String::new();
        file.seek(SeekFrom::Start(0)).ok()?;
        file.take(4096).read_to_string(&mut text).ok()?;
        LockHolder::parse(&text)
    }
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "process {} since {}",
            self.pid,
            crate::clock::utc_text(self.since_ms)
        )?;
        if let Some(url) = &self.admin_url {
            write!(f, ", admin API at {url}")?;
        }
        Ok(())
    }
}

fn wall_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holder_lines_round_trip_and_torn_lines_are_ignored() {
        let holder = LockHolder {
            pid: 4242,
            since_ms: 1_795_000_000_000,
            admin_url: Some("http://127.0.0.1:9090".into()),
        };
        assert_eq!(LockHolder::parse(&holder.to_lines()), Some(holder.clone()));
        let plain = LockHolder {
            admin_url: None,
            ..holder
        };
        assert_eq!(LockHolder::parse(&plain.to_lines()), Some(plain));
        assert_eq!(LockHolder::parse("jobfile lock holder\npid 12\n"), None);
        assert_eq!(LockHolder::parse(""), None);
        assert_eq!(
            LockHolder::parse("something else\npid 1\nsince_ms 2\n"),
            None
        );
    }

    #[test]
    fn a_second_open_learns_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("held.jobfile");
        let mut lock = LeaderLock::try_acquire(&path).unwrap();
        lock.advertise_admin(Some("http://127.0.0.1:7001".into()));
        // A second descriptor on the same file conflicts with the first, as another process's
        // would; the holder lines are read through it.
        let file = OpenOptions::new()
            .read(true)
            .open(lock_path(&path))
            .unwrap();
        let holder = LockHolder::read(&file).unwrap();
        assert_eq!(holder.pid, std::process::id());
        assert_eq!(holder.admin_url.as_deref(), Some("http://127.0.0.1:7001"));
        lock.advertise_admin(None);
        assert_eq!(LockHolder::read(&file).unwrap().admin_url, None);
    }

    /// Takes the lock of a new file and lets go of it while a copy of its descriptor, as a
    /// child process started at that moment inherits, still holds it (a duplicate shares the
    /// lock, as a forked child's copy does). Returns the copy.
    fn let_go_but_keep_a_copy(path: &Path) -> File {
        let lock = LeaderLock::try_acquire(path).unwrap();
        let copy = lock.identity.file().try_clone().unwrap();
        drop(lock);
        copy
    }

    #[test]
    fn an_open_waits_out_a_lock_this_process_let_go_of_but_a_copy_still_holds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("reopened.jobfile");
        let copy = let_go_but_keep_a_copy(&path);
        let child = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            drop(copy);
        });
        LeaderLock::try_acquire(&path).expect("taken once the copy is gone");
        child.join().unwrap();
    }

    #[test]
    fn a_copy_that_never_lets_go_is_reported_as_the_holder_after_the_wait() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kept.jobfile");
        let _copy = let_go_but_keep_a_copy(&path);
        let started = Instant::now();
        match LeaderLock::try_acquire(&path) {
            Err(Error::Locked { holder, .. }) => {
                assert_eq!(holder.unwrap().pid, std::process::id());
            }
            other => panic!("expected Locked, got {other:?}"),
        }
        assert!(started.elapsed() >= OWN_RELEASE_WAIT);
    }
}
