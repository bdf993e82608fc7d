//! The node registry: each process is a node with an incarnation id, a heartbeat, and a
//! session advisory lock held on a connection of its own for as long as it lives.

use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio_postgres::{Client, Transaction};

use super::{DB_NOW_MS, Postgres, pg_error};
use crate::error::Result;

/// The advisory lock of node `$1`, in a class of its own per schema: `(class, id)`.
const NODE_LOCK: &str =
    "hashtext('jobfile node ' || current_schema()), ($1::bigint % 2147483647)::integer";

/// How nodes judge each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Liveness {
    /// How often a node records that it lives.
    pub(crate) heartbeat: Duration,
    /// A node whose liveness lock is free (its connection is gone) is dead once its last
    /// heartbeat is this old.
    pub(crate) grace: Duration,
    /// A node whose heartbeat is this old is dead even if its lock is held (a stopped or
    /// partitioned process); one that cannot heartbeat this long fences itself.
    pub(crate) lease: Duration,
}

impl Default for Liveness {
    fn default() -> Self {
        Liveness {
            heartbeat: Duration::from_secs(1),
            grace: Duration::from_secs(5),
            lease: Duration::from_secs(30),
        }
    }
}

/// This process as a node: registered, heartbeating, holding its liveness lock.
pub(crate) struct Node {
    id: i64,
    fenced: watch::Receiver<Option<String>>,
    leave: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Registers a new node and takes its liveness lock on a connection of its own, then
    /// heartbeats every `liveness.heartbeat` until [`leave`](Self::leave) or until fenced.
    pub(crate) async fn join(pg: &Postgres, liveness: Liveness) -> Result<Node> {
        let (client, lost) = liveness_connection(pg).await?;
        let host = std::env::var("HOSTNAME").unwrap_or_default();
        let id: i64 = client
            .query_one(
                &format!(
                    "INSERT INTO nodes (pid, host, started_at, heartbeat_at)
                     VALUES ($1, $2, {DB_NOW_MS}, {DB_NOW_MS}) RETURNING id"
                ),
                &[&(std::process::id() as i32), &host],
            )
            .await
            .map_err(|e| pg_error("registering this node", e))?
            .get(0);
        // (In poll-only mode there is no session to hold it: the heartbeat alone tells.)
        if !pg.poll_only() {
            client
                .execute(&format!("SELECT pg_advisory_lock({NODE_LOCK})"), &[&id])
                .await
                .map_err(|e| pg_error("taking this node's liveness lock", e))?;
        }
        let (fenced_tx, fenced) = watch::channel(None);
        let (leave_tx, leave) = oneshot::channel();
        let task = tokio::spawn(heartbeat(
            pg.clone(),
            client,
            lost,
            id,
            liveness,
            leave,
            fenced_tx,
        ));
        tracing::info!(node = id, "joined as a node");
        Ok(Node {
            id,
            fenced,
            leave: Some(leave_tx),
            task: Some(task),
        })
    }

    /// The incarnation id: unique among every node that ever joined this schema.
    pub(crate) fn id(&self) -> i64 {
        self.id
    }

    /// `Some(why)` once this node has fenced itself: it must stop claiming and stop its
    /// handlers; its work belongs to whichever live node recovers it.
    pub(crate) fn fenced(&self) -> watch::Receiver<Option<String>> {
        self.fenced.clone()
    }

    /// Leaves the registry: the row says `left` and the liveness lock is released.
    pub(crate) async fn leave(mut self) {
        if let Some(leave) = self.leave.take() {
            let _ = leave.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(leave) = self.leave.take() {
            let _ = leave.send(());
        }
    }
}

/// A connection of its own for the liveness lock, and what says when it ends.
async fn liveness_connection(pg: &Postgres) -> Result<(Client, oneshot::Receiver<String>)> {
    let (client, connection) = pg.dedicated("node").await?;
    let (lost_tx, lost) = oneshot::channel::<String>();
    tokio::spawn(async move {
        let why = match connection.await {
            Ok(()) => "its liveness connection closed".to_string(),
            Err(e) => format!("its liveness connection failed: {e}"),
        };
        let _ = lost_tx.send(why);
    });
    Ok((client, lost))
}

/// After the liveness connection dropped (a server restart, a network blip): a new one that
/// holds the lock again, if this node is still live; `Err(why)` once it must fence itself (it
/// was found dead meanwhile, or no connection came back within a lease).
async fn rejoin(
    pg: &Postgres,
    id: i64,
    liveness: Liveness,
    lost_at: tokio::time::Instant,
) -> std::result::Result<(Client, oneshot::Receiver<String>), String> {
    let beat =
        format!("UPDATE nodes SET heartbeat_at = {DB_NOW_MS} WHERE id = $1 AND state = 'live'");
    let relock = format!("SELECT pg_try_advisory_lock({NODE_LOCK})");
    let mut pause = Duration::from_millis(50);
    loop {
        if lost_at.elapsed() >= liveness.lease {
            return Err("its liveness connection stayed lost for a whole lease".into());
        }
        let attempt = async {
            let (client, lost) = liveness_connection(pg).await.map_err(|e| e.to_string())?;
            match client.execute(&beat, &[&id]).await {
                Ok(1) => {}
                Ok(_) => return Ok(None),
                Err(e) => return Err(e.to_string()),
            }
            if pg.poll_only() {
                return Ok(Some((client, lost)));
            }
            // Taken only for the instant another node tries it while judging this one.
            let locked: bool = client
                .query_one(&relock, &[&id])
                .await
                .map_err(|e| e.to_string())?
                .get(0);
            if locked {
                Ok(Some((client, lost)))
            } else {
                Err("its liveness lock is briefly held by a node judging it".into())
            }
        };
        match attempt.await {
            Ok(Some(back)) => {
                tracing::warn!(node = id, "liveness connection re-established");
                return Ok(back);
            }
            Ok(None) => return Err("another node found it dead and took over its work".into()),
            Err(e) => {
                tracing::debug!(node = id, error = %e, "reconnecting the liveness connection")
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(liveness.heartbeat.max(Duration::from_millis(100)));
    }
}

/// The node's heartbeat, on its liveness connection, until it leaves or is fenced. A dropped
/// connection is re-established while the node is still live.
async fn heartbeat(
    pg: Postgres,
    mut client: Client,
    mut lost: oneshot::Receiver<String>,
    id: i64,
    liveness: Liveness,
    mut leave: oneshot::Receiver<()>,
    fenced: watch::Sender<Option<String>>,
) {
    // Also says whether another node lives, which decides whether writes notify.
    let beat = format!(
        "UPDATE nodes SET heartbeat_at = {DB_NOW_MS} WHERE id = $1 AND state = 'live'
         RETURNING EXISTS (SELECT 1 FROM nodes o WHERE o.state = 'live' AND o.id <> $1)"
    );
    let mut last_beat = tokio::time::Instant::now();
    let fence = |why: String| {
        tracing::error!(node = id, why = %why, "this node fenced itself: it stops claiming work");
        let _ = fenced.send(Some(why));
    };
    loop {
        tokio::select! {
            _ = tokio::time::sleep(liveness.heartbeat) => {}
            why = &mut lost => {
                let why = why.unwrap_or_else(|_| "its liveness connection ended".into());
                tracing::warn!(node = id, why = %why, "liveness connection lost; reconnecting");
                match rejoin(&pg, id, liveness, last_beat).await {
                    Ok((new_client, new_lost)) => {
                        client = new_client;
                        lost = new_lost;
                        last_beat = tokio::time::Instant::now();
                        continue;
                    }
                    Err(why) => {
                        fence(why);
                        return;
                    }
                }
            }
            _ = &mut leave => {
                let left = format!(
                    "UPDATE nodes SET state = 'left', ended_at = {DB_NOW_MS} WHERE id = $1 AND state = 'live'"
                );
                if let Err(e) = client.execute(&left, &[&id]).await {
                    tracing::warn!(node = id, error = %e, "could not record that this node left");
                }
                return; // dropping the client ends the session and its lock
            }
        }
        match client.query_opt(&beat, &[&id]).await {
            Ok(Some(row)) => {
                last_beat = tokio::time::Instant::now();
                pg.set_others_live(row.get(0));
            }
            Ok(None) => {
                fence("another node found it dead and took over its work".into());
                return;
            }
            Err(e) if last_beat.elapsed() >= liveness.lease => {
                fence(format!("no heartbeat for a whole lease: {e}"));
                return;
            }
            Err(e) => tracing::warn!(node = id, error = %e, "heartbeat failed; retrying"),
        }
    }
}

/// Finds the nodes that are dead at `at` (the database clock when `None`) by `liveness`, and
/// marks them dead in `tx`, whose commit makes it so (recover their work in the same
/// transaction). Never names `me`. Nodes another transaction is marking are skipped.
pub(crate) async fn find_dead(
    tx: &Transaction<'_>,
    me: i64,
    at: Option<i64>,
    liveness: Liveness,
) -> Result<Vec<i64>> {
    let grace = liveness.grace.as_millis() as i64;
    let lease = liveness.lease.as_millis() as i64;
    // The lock is tried only for nodes past the grace period; a transaction-level try
    // releases at commit, so a dead node's lock is never kept.
    let rows = tx
        .query(
            &format!(
                "WITH now AS (SELECT coalesce($2::bigint, {DB_NOW_MS}) AS ms)
                 SELECT id FROM nodes, now
                 WHERE state = 'live' AND id <> $1
                   AND heartbeat_at < now.ms - $3
                   AND (heartbeat_at < now.ms - $4
                        OR pg_try_advisory_xact_lock(
                             hashtext('jobfile node ' || current_schema()),
                             (id % 2147483647)::integer))
                 ORDER BY id
                 FOR UPDATE OF nodes SKIP LOCKED"
            ),
            &[&me, &at, &grace, &lease],
        )
        .await
        .map_err(|e| pg_error("looking for dead nodes", e))?;
    let dead: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    if !dead.is_empty() {
        tx.execute(
            &format!(
                "UPDATE nodes SET state = 'dead', ended_at = coalesce($2::bigint, {DB_NOW_MS})
                 WHERE id = ANY($1)"
            ),
            &[&dead, &at],
        )
        .await
        .map_err(|e| pg_error("marking dead nodes", e))?;
        tracing::warn!(nodes = ?dead, "found dead nodes");
    }
    Ok(dead)
}
