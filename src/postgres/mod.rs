//! The PostgreSQL backend's foundation (feature `postgres`): the connection pool, the schema
//! and its migrations, the node registry that replaces the file lock, and the notifier that
//! wakes other nodes.
//!
//! Many processes on many machines share one schema. Each is a *node*: a row in `nodes` with
//! an incarnation id (what [`Engine::epoch`](crate::Engine::epoch) will return), a heartbeat,
//! and a session advisory lock held on a connection of its own. A node whose lock is free and
//! whose heartbeat is older than the grace period, or whose heartbeat is older than the lease,
//! is dead: any live node marks it so, in the transaction that recovers its work. A node that
//! finds itself marked dead, or cannot heartbeat for a whole lease, fences itself: it stops
//! claiming and tells its handlers to stop. Every write of a running attempt is fenced on
//! (job, attempt, node), so a stale node's late writes change nothing.
//!
//! Times are milliseconds since the Unix epoch, taken from the database clock (node clocks may
//! skew); tests pass explicit instants instead.

mod cached;
mod group;
mod listen;
mod migrate;
mod node;
#[cfg(test)]
mod tests;

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use crate::error::{Error, Result};

pub(crate) use cached::Cached;
pub(crate) use group::Grouped;
pub(crate) use listen::{Listener, NO_NODE, Wake, notify, sender};
pub(crate) use migrate::migrate;
#[cfg(test)]
pub(crate) use migrate::{SCHEMA_VERSION, schema_version};
pub(crate) use node::{Liveness, Node, find_dead};

/// The SQL expression of the database clock, in milliseconds since the Unix epoch.
pub(crate) const DB_NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// How to reach the server and how nodes judge each other.
#[derive(Debug, Clone)]
pub(crate) struct PgOptions {
    /// A `postgres://` URL or a `key=value` connection string.
    pub(crate) url: String,
    /// The schema jobfile's tables live in (created if missing).
    pub(crate) schema: String,
    /// Connections in the pool.
    pub(crate) pool_size: usize,
    /// Liveness: heartbeat period, grace period and lease.
    pub(crate) liveness: Liveness,
    /// No `LISTEN`, no `NOTIFY`, no session lock (a pooler in transaction mode).
    pub(crate) poll_only: bool,
}

impl PgOptions {
    #[cfg(test)]
    pub(crate) fn new(url: impl Into<String>) -> Self {
        PgOptions {
            url: url.into(),
            schema: "jobfile".into(),
            pool_size: 8,
            liveness: Liveness::default(),
            poll_only: false,
        }
    }
}

/// A pool of connections to one schema, and the configuration to open dedicated ones (the
/// node's lock holder, the listener).
#[derive(Clone)]
pub(crate) struct Postgres {
    pub(crate) pool: Pool,
    config: tokio_postgres::Config,
    schema: String,
    /// Whether another node is live on the schema, as of this node's last heartbeat; while
    /// none is, writes send no notifications (no one would hear them).
    others_live: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// No `LISTEN`, no `NOTIFY`, no session lock.
    poll_only: bool,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl Postgres {
    /// A pool on `options.schema` (every connection's search path), after checking the
    /// schema name. Connects lazily; [`migrate`] is the first statement run.
    pub(crate) fn new(options: &PgOptions) -> Result<Postgres> {
        check_schema_name(&options.schema)?;
        let mut config: tokio_postgres::Config = options
            .url
            .parse()
            .map_err(|e| pg_error("reading the connection URL", e))?;
        // Every statement names tables unqualified: the schema is the search path. Settings
        // the URL gives (`options=-c synchronous_commit=off`, say) are kept.
        let given = config.get_options().unwrap_or_default().to_string();
        config.options(format!("{given} -c search_path={}", options.schema).trim_start());
        if config.get_application_name().is_none() {
            config.application_name("jobfile");
        }
        config.connect_timeout(Duration::from_secs(10));
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(2))
            .build()
            .map_err(|e| Error::Internal(format!("building the PostgreSQL pool: {e}")))?;
        Ok(Postgres {
            pool,
            config,
            schema: options.schema.clone(),
            others_live: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true)),
            poll_only: options.poll_only,
        })
    }

    /// Whether a write should notify: another node may be listening (never in poll-only
    /// mode).
    pub(crate) fn others_live(&self) -> bool {
        !self.poll_only && self.others_live.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether nodes find each other's changes by polling alone.
    pub(crate) fn poll_only(&self) -> bool {
        self.poll_only
    }

    /// Records whether another node is live (the heartbeat looks).
    pub(crate) fn set_others_live(&self, live: bool) {
        self.others_live
            .store(live, std::sync::atomic::Ordering::Relaxed);
    }

    /// The schema jobfile's tables live in.
    pub(crate) fn schema(&self) -> &str {
        &self.schema
    }

    /// A pooled connection; [`Error::Closed`] once the engine shut down.
    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => pg_error("connecting", e),
            deadpool_postgres::PoolError::Closed => Error::Closed,
            other => Error::Storage(format!("PostgreSQL pool: {other}")),
        })
    }

    /// Closes the pool at the end of a shutdown: its connections end, and every later call
    /// is refused with [`Error::Closed`], as on a closed file.
    pub(crate) fn close(&self) {
        self.pool.close();
    }

    /// A connection of its own (not pooled) for `role`, with the task that drives it; its
    /// application name is the pool's followed by the role (`jobfile node`). The connection
    /// ends when the client is dropped.
    pub(crate) async fn dedicated(
        &self,
        role: &str,
    ) -> Result<(
        tokio_postgres::Client,
        tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>,
    )> {
        let mut config = self.config.clone();
        let name = format!(
            "{} {role}",
            config.get_application_name().unwrap_or("jobfile")
        );
        config.application_name(&name);
        config
            .connect(NoTls)
            .await
            .map_err(|e| pg_error("opening a dedicated connection", e))
    }
}

/// Starts a write transaction at `now`, or at the database clock when `None`; `what` names
/// the write in errors. Returns the transaction and the instant it works at.
pub(crate) async fn begin<'a>(
    client: &'a mut deadpool_postgres::Object,
    now: Option<u64>,
    what: &str,
) -> Result<(deadpool_postgres::Transaction<'a>, u64)> {
    let tx = client
        .transaction()
        .await
        .map_err(|e| pg_error(&format!("beginning {what}"), e))?;
    let now = match now {
        Some(now) => now,
        None => {
            let row = tx
                .query_one_cached(&format!("SELECT {DB_NOW_MS}"), &[])
                .await
                .map_err(|e| pg_error("reading the database clock", e))?;
            row.get::<_, i64>(0) as u64
        }
    };
    Ok((tx, now))
}

/// Commits `tx`; `what` names the write in errors. A server's refusal rolled the transaction
/// back ([`Error::Postgres`]); a connection lost before the server answered leaves it
/// unknown whether it committed, and says so ([`Error::CommitUnknown`]).
pub(crate) async fn commit(tx: deadpool_postgres::Transaction<'_>, what: &str) -> Result<()> {
    tx.commit().await.map_err(|e| commit_error(what, e))
}

/// The error of a failed `COMMIT` of `what`: see [`commit`]. Only an error the server
/// answered for this transaction (severity `ERROR`: a deferred check, a serialization
/// failure) says it rolled back; one that ended the session (`FATAL`, `PANIC`: an
/// administrator's termination, a crash) or no answer at all leaves it unknown.
fn commit_error(what: &str, source: tokio_postgres::Error) -> Error {
    let context = format!("committing {what}");
    let refused = source
        .as_db_error()
        .is_some_and(|db| db.parsed_severity() == Some(tokio_postgres::error::Severity::Error));
    if refused {
        Error::Postgres { context, source }
    } else {
        Error::CommitUnknown {
            context,
            source: std::sync::Arc::new(source),
        }
    }
}

/// A count of rows as a `LIMIT` parameter: `usize::MAX` (no limit) stays positive.
pub(crate) fn pg_limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// An instant or a duration in ms as a `bigint`: clamped (at about 73 million years), so
/// that sums of two in SQL stay in range.
pub(crate) fn pg_ms(ms: u64) -> i64 {
    (ms.min(1 << 61)) as i64
}

/// Wraps a client error with what jobfile was doing.
pub(crate) fn pg_error(context: &str, source: tokio_postgres::Error) -> Error {
    Error::Postgres {
        context: context.to_string(),
        source,
    }
}

/// Schema names are used in `search_path` and DDL: lowercase letters, digits and `_`, not
/// starting with a digit, at most 63 bytes (PostgreSQL's identifier limit).
fn check_schema_name(schema: &str) -> Result<()> {
    let ok = !schema.is_empty()
        && schema.len() <= 63
        && !schema.starts_with(|c: char| c.is_ascii_digit())
        && schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "schema",
            format!(
                "{schema:?} is not a schema name jobfile uses: lowercase letters, digits and _, not starting with a digit, at most 63 bytes"
            ),
        ))
    }
}
