//! Error types. Every fallible call returns [`Error`]; its variants say what went wrong in
//! terms a caller can act on.

use std::fmt;
use std::path::PathBuf;

/// What a caller held and lost; the subject of [`Error::NotHolder`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Held {
    /// A delivery of a queue message.
    Delivery {
        /// The queue.
        queue: String,
        /// The message id.
        message: u64,
        /// Which delivery of the message it was (1 for the first).
        delivery: u32,
    },
    /// A lease on a fenced mutex.
    MutexLease {
        /// The mutex name.
        name: String,
        /// The owner that asked.
        owner: String,
        /// The fencing token of the lease.
        token: u64,
    },
    /// A running attempt of a job.
    Attempt {
        /// The job id.
        job: u64,
        /// The attempt number.
        attempt: u32,
    },
}

impl fmt::Display for Held {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Held::Delivery {
                queue,
                message,
                delivery,
            } => write!(
                f,
                "delivery {delivery} of message {message} in queue {queue:?}"
            ),
            Held::MutexLease { name, owner, token } => {
                write!(f, "lease {token} of mutex {name:?} by {owner:?}")
            }
            Held::Attempt { job, attempt } => write!(f, "attempt {attempt} of job {job}"),
        }
    }
}

/// The error type of every fallible jobfile call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Another process holds the file. Open with
    /// [`EngineOptions::standby`](crate::EngineOptions::standby) to wait for it instead. (This
    /// process holding it is [`Error::AlreadyOpen`].)
    #[error("{} is held by {}; close it there, or open in standby mode to wait for it", path.display(), holder.as_ref().map_or_else(|| "another process".to_string(), |h| h.to_string()))]
    Locked {
        /// The jobfile path whose lock is held.
        path: PathBuf,
        /// Who holds it, as recorded in the lock file (`None` if it could not be read).
        holder: Option<Box<crate::lock::LockHolder>>,
    },

    /// This process already has the file open (another [`Engine`](crate::Engine) holds it).
    /// Use that engine: it is cheap to clone and share.
    #[error("{} is already open in this process; use the Engine that opened it (clone it to share it)", path.display())]
    AlreadyOpen {
        /// The jobfile path.
        path: PathBuf,
    },

    /// The file, or its lock file, is no longer the one the path named when it was opened: it
    /// was deleted, renamed or replaced while in use. A running engine refuses further writes
    /// (they would land in a file no path reaches); restore the file, or open the path again.
    #[error("{} {detail}", path.display())]
    FileReplaced {
        /// The path involved.
        path: PathBuf,
        /// What happened to it.
        detail: String,
    },

    /// The file is not a jobfile file (another format, or a redb file of some other program).
    /// Nothing in it was changed.
    #[error("{} is not a jobfile file: {reason}; nothing was changed", path.display())]
    NotAJobfile {
        /// The offending path.
        path: PathBuf,
        /// What gave it away.
        reason: String,
    },

    /// The file was written by a newer jobfile whose format this version cannot read.
    /// Nothing in it was changed; upgrade jobfile to open it.
    #[error("{} has format version {found}, newer than the {supported} this jobfile reads; upgrade jobfile to open it", path.display())]
    NewerFormat {
        /// The offending path.
        path: PathBuf,
        /// The format version stored in the file.
        found: u64,
        /// The newest format version this build understands.
        supported: u64,
    },

    /// A stored record could not be decoded: the file is damaged, or was edited by hand.
    #[error("stored record in {table} is corrupt: {detail}")]
    Corrupt {
        /// The table holding the record.
        table: &'static str,
        /// What failed to decode.
        detail: String,
    },

    /// A previous commit or fsync failed, so the engine refuses every further write rather than
    /// guess what reached the disk. Reopen the file to recover its last committed state.
    #[error(
        "the engine is poisoned after a failed write ({cause}); reopen the file to recover the last committed state"
    )]
    Poisoned {
        /// The failure that poisoned the engine.
        cause: String,
    },

    /// The engine was shut down; no further calls are accepted.
    #[error("the engine has been shut down")]
    Closed,

    /// A payload is larger than the configured limit. Nothing was written.
    #[error("payload of {size} bytes exceeds the limit of {limit} bytes")]
    PayloadTooLarge {
        /// Size of the rejected payload in bytes.
        size: usize,
        /// The configured limit in bytes.
        limit: usize,
    },

    /// An argument is out of its allowed range. Nothing was written.
    #[error("invalid {what}: {detail}")]
    InvalidArgument {
        /// The argument that was rejected.
        what: &'static str,
        /// Why it was rejected.
        detail: String,
    },

    /// No message with this id exists in the queue (or dead-letter list) asked.
    #[error("no message {id} in queue {queue:?}")]
    UnknownMessage {
        /// The queue asked.
        queue: String,
        /// The message id that was not found.
        id: u64,
    },

    /// No job with this id exists (it was never submitted, or was pruned after its retention).
    #[error("no job {id}")]
    UnknownJob {
        /// The job id that was not found.
        id: u64,
    },

    /// No batch with this id exists (it was never opened, or every member of a finished
    /// batch was removed at the end of its retention, and the batch with them).
    #[error("no batch {id}")]
    UnknownBatch {
        /// The batch id that was not found.
        id: u64,
    },

    /// No schedule with this id is registered.
    #[error("no schedule {id:?} is registered")]
    UnknownSchedule {
        /// The schedule id that was not found.
        id: String,
    },

    /// A typed job handle was given the id of a job of another definition: its input and
    /// output types are not this handle's. Nothing was read into them or changed.
    #[error(
        "job {id} is a {found:?} job, not a {expected:?} one; use the handle of its definition, or Engine::jobs()"
    )]
    WrongDefinition {
        /// The job id.
        id: u64,
        /// The handle's definition name.
        expected: String,
        /// The job's definition name.
        found: String,
    },

    /// A stored value does not decode into the type the caller asked for (the job's output
    /// type changed since it was stored, for instance).
    #[error("{what} has the wrong type: {detail}")]
    TypeMismatch {
        /// What was being decoded.
        what: String,
        /// The decoder's complaint.
        detail: String,
    },

    /// The caller no longer holds what it named: a queue delivery whose lease ran out (the
    /// message may have gone to another receiver), a mutex lease that expired or was released,
    /// a job attempt that was cancelled, timed out or handed back. Nothing was changed. Every
    /// primitive reports a lost claim this way.
    #[error("{held} is no longer held by the caller: it expired, was released or passed on")]
    NotHolder {
        /// What the caller named.
        held: Held,
    },

    /// The mutex stayed held by another owner for the whole wait.
    #[error("mutex {name:?} is still held by another owner after waiting {waited_ms} ms")]
    LockTimeout {
        /// The mutex name.
        name: String,
        /// How long the caller waited.
        waited_ms: u64,
    },

    /// A rate limiter refused a check ([`RateLimit::check_or_err`](crate::RateLimit::check_or_err)):
    /// the identifier used its limit in the sliding window. The check was counted.
    #[error(
        "rate limit {name:?} reached for this identifier; a check passes again in {retry_in_ms} ms"
    )]
    RateLimited {
        /// The rate limiter.
        name: String,
        /// Time until a check would pass again, if no other check comes meanwhile.
        retry_in_ms: u64,
    },

    /// An ephemeral set is full; an upsert of a new key was refused. Nothing was written.
    #[error("ephemeral set {set:?} already holds its capacity of {capacity} entries")]
    CapacityExceeded {
        /// The set.
        set: String,
        /// Its capacity.
        capacity: usize,
    },

    /// A change-stream reader asked for a position that was already pruned: it lagged. Read
    /// again from `next_available` (after taking a snapshot to resynchronise).
    #[error("position {requested} of {set:?} was pruned; the oldest retained is {next_available}")]
    Lagged {
        /// The stream.
        set: String,
        /// The position asked for.
        requested: u64,
        /// The first position still available.
        next_available: u64,
    },

    /// The admin API could not listen on its address, or its server failed.
    #[error("admin API on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The storage layer failed (I/O, a full disk, a damaged file).
    #[error("storage failure: {0}")]
    Storage(String),

    /// The engine's storage backend does not offer this (yet); the message names it.
    #[error("{what} is not available on the {backend} backend yet")]
    Unsupported {
        /// What was asked for.
        what: &'static str,
        /// The backend.
        backend: &'static str,
    },

    /// The PostgreSQL server could not be reached, or refused a statement (feature
    /// `postgres`). `context` says what jobfile was doing.
    #[cfg(feature = "postgres")]
    #[error("PostgreSQL, {context}: {source}")]
    Postgres {
        /// What jobfile was doing.
        context: String,
        /// The client's error, with the server's message and SQLSTATE when it sent one.
        #[source]
        source: tokio_postgres::Error,
    },

    /// The connection to PostgreSQL was lost while a write committed (feature `postgres`): the
    /// server may or may not have committed it, and no one can tell from here. Read back what
    /// the write would have changed (a job by its idempotency key, say) before repeating it;
    /// a submit with a key can simply be made again.
    #[cfg(feature = "postgres")]
    #[error(
        "PostgreSQL, {context}: the connection was lost during the commit, so whether it took effect is unknown ({source}); read back what it would have changed, or repeat it if it is idempotent (a submit with a key is)"
    )]
    CommitUnknown {
        /// What jobfile was committing.
        context: String,
        /// The client's error (shared by every call whose write was in that commit).
        #[source]
        source: std::sync::Arc<tokio_postgres::Error>,
    },

    /// The PostgreSQL schema was migrated by a newer jobfile (feature `postgres`). Nothing was
    /// changed; upgrade jobfile on this node.
    #[cfg(feature = "postgres")]
    #[error(
        "schema {schema:?} has version {found}, newer than the {supported} this jobfile knows; upgrade jobfile on this node"
    )]
    NewerSchema {
        /// The schema jobfile's tables are in.
        schema: String,
        /// The version recorded in it.
        found: i32,
        /// The newest version this build knows.
        supported: i32,
    },

    /// An I/O error outside the database file itself (the lock file, for instance).
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The disk is full. The write that met it was not committed, nor any write of its
    /// batch; as after any storage failure, the engine then refuses writes
    /// ([`Error::Poisoned`]) until the file is reopened, with space freed.
    #[error(
        "the disk is full ({source}); nothing of this write was committed, and the engine refuses writes until the file is reopened with space freed"
    )]
    StorageFull {
        /// The file system's error.
        #[source]
        source: std::io::Error,
    },

    /// An operation panicked inside the writer. The batch it was in was replayed without it.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The same failure again if it is one of the storage layer itself, after which a
    /// transaction cannot be trusted (as opposed to a rejected argument, which writes
    /// nothing); `None` for other errors. Each caller of a failed batch gets its own copy (an
    /// `io::Error` cannot be cloned).
    pub(crate) fn storage_again(&self) -> Option<Error> {
        match self {
            Error::Storage(s) => Some(Error::Storage(s.clone())),
            Error::StorageFull { source } => Some(Error::StorageFull {
                source: std::io::Error::new(source.kind(), source.to_string()),
            }),
            _ => None,
        }
    }

    /// A copy of this error if it says a commit's outcome is unknown, for each call whose
    /// write was in that commit; `None` for other errors.
    #[cfg(feature = "postgres")]
    pub(crate) fn unknown_again(&self) -> Option<Error> {
        match self {
            Error::CommitUnknown { context, source } => Some(Error::CommitUnknown {
                context: context.clone(),
                source: source.clone(),
            }),
            _ => None,
        }
    }

    /// Whether the same call may succeed if made again shortly: a database connection that
    /// dropped or a server that restarts. The file's errors are not.
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            #[cfg(feature = "postgres")]
            // Each of jobfile's own writes that it retries is safe to repeat (a settlement
            // is fenced on its claim), whether or not the first committed.
            Error::CommitUnknown { .. } => true,
            #[cfg(feature = "postgres")]
            Error::Postgres { source, .. } => {
                source.is_closed()
                    || source.as_db_error().is_none()
                    || source.code().is_some_and(|c| {
                        let c = c.code();
                        c.starts_with("08") || c.starts_with("57P") || c == "40001" || c == "40P01"
                    })
            }
            _ => false,
        }
    }

    pub(crate) fn invalid(what: &'static str, detail: impl Into<String>) -> Self {
        Error::InvalidArgument {
            what,
            detail: detail.into(),
        }
    }
}

/// The longest name (of a job definition, mutex, ephemeral set or key, owner), in bytes.
pub(crate) const MAX_NAME: usize = 256;

/// Checks a name is 1 to [`MAX_NAME`] bytes; `what` names it in the error.
pub(crate) fn check_name(what: &'static str, name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(Error::invalid(
            what,
            format!("must be 1 to {MAX_NAME} bytes, got {}", name.len()),
        ));
    }
    Ok(())
}

/// The longest idempotency key (of a job or a queue message), in bytes.
pub(crate) const MAX_KEY: usize = 1024;

/// Checks an idempotency key, if given, is 1 to [`MAX_KEY`] bytes; `what` names it in the error.
pub(crate) fn check_key(what: &'static str, key: Option<&str>) -> Result<()> {
    match key {
        Some(key) if key.is_empty() || key.len() > MAX_KEY => Err(Error::invalid(
            what,
            format!("must be 1 to {MAX_KEY} bytes, got {}", key.len()),
        )),
        _ => Ok(()),
    }
}

/// Checks a time-to-live (or lease) is longer than zero.
pub(crate) fn check_ttl(what: &'static str, ttl: std::time::Duration) -> Result<()> {
    if ttl.is_zero() {
        return Err(Error::invalid(what, "must be longer than zero"));
    }
    Ok(())
}

/// The result type of jobfile calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A storage error as jobfile reports it: [`Error::StorageFull`] when the file system is out
/// of space, else [`Error::Storage`] with the storage layer's message.
fn storage_error(e: &(dyn std::error::Error + 'static), io: Option<&std::io::Error>) -> Error {
    let io = io.or_else(|| {
        let mut cause = e.source();
        while let Some(c) = cause {
            if let Some(io) = c.downcast_ref::<std::io::Error>() {
                return Some(io);
            }
            cause = c.source();
        }
        None
    });
    match io {
        Some(io) if io.kind() == std::io::ErrorKind::StorageFull => Error::StorageFull {
            source: std::io::Error::new(io.kind(), io.to_string()),
        },
        _ => Error::Storage(e.to_string()),
    }
}

/// The `io::Error` inside a redb storage error, if that is what it is.
fn io_of(e: &redb::StorageError) -> Option<&std::io::Error> {
    match e {
        redb::StorageError::Io(io) => Some(io),
        _ => None,
    }
}

impl From<redb::StorageError> for Error {
    fn from(e: redb::StorageError) -> Self {
        storage_error(&e, io_of(&e))
    }
}

impl From<redb::CommitError> for Error {
    fn from(e: redb::CommitError) -> Self {
        let io = match &e {
            redb::CommitError::Storage(s) => io_of(s),
            _ => None,
        };
        storage_error(&e, io)
    }
}

impl From<redb::TransactionError> for Error {
    fn from(e: redb::TransactionError) -> Self {
        let io = match &e {
            redb::TransactionError::Storage(s) => io_of(s),
            _ => None,
        };
        storage_error(&e, io)
    }
}

impl From<redb::TableError> for Error {
    fn from(e: redb::TableError) -> Self {
        let io = match &e {
            redb::TableError::Storage(s) => io_of(s),
            _ => None,
        };
        storage_error(&e, io)
    }
}

macro_rules! storage_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                storage_error(&e, None)
            }
        }
    )*};
}

storage_from!(redb::Error, redb::DatabaseError);
