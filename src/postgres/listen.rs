//! Wake-ups from other nodes: LISTEN on a connection of its own, reconnected when it drops.
//! After every (re)connect subscribers get [`Wake::Rescan`]: notifications sent while no one
//! listened are lost, so whoever waits looks at the tables again. Callers keep a poll
//! fallback besides, for servers behind a pooler in transaction mode (no LISTEN there).

use std::time::Duration;

use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_postgres::AsyncMessage;

use super::{Cached, Postgres, pg_error};
use crate::error::Result;

/// What a subscriber is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Wake {
    /// `NOTIFY channel, 'payload'` arrived.
    Notified { channel: String, payload: String },
    /// The listener (re)connected: look at the tables again.
    Rescan,
}

/// The listening task; stops when dropped.
pub(crate) struct Listener {
    wakes: broadcast::Sender<Wake>,
    task: JoinHandle<()>,
}

impl Listener {
    /// Listens on `channels` until dropped, reconnecting with a growing pause (100 ms to 5 s).
    pub(crate) fn start(pg: Postgres, channels: Vec<String>) -> Listener {
        let (wakes, _) = broadcast::channel(1024);
        let tx = wakes.clone();
        let task = tokio::spawn(async move {
            let mut pause = Duration::from_millis(100);
            loop {
                match listen(&pg, &channels, &tx).await {
                    Ok(()) => pause = Duration::from_millis(100),
                    Err(e) => {
                        tracing::warn!(error = %e, "listener connection failed; reconnecting")
                    }
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        });
        Listener { wakes, task }
    }

    /// A new subscription.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Wake> {
        self.wakes.subscribe()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One connection's life: LISTEN, say Rescan, forward notifications until it ends. `Ok` if
/// it ran (and then ended), `Err` if it could not start.
async fn listen(
    pg: &Postgres,
    channels: &[String],
    tx: &broadcast::Sender<Wake>,
) -> crate::error::Result<()> {
    let (client, mut connection) = pg.dedicated("listener").await?;
    let (notes_tx, mut notes) = tokio::sync::mpsc::unbounded_channel();
    // The connection must be polled for the client's statements to complete; notifications
    // arrive as its asynchronous messages.
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    let _ = notes_tx.send(Wake::Notified {
                        channel: n.channel().to_string(),
                        payload: n.payload().to_string(),
                    });
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "listener connection lost");
                    return;
                }
                None => return,
            }
        }
    });
    let statements: String = channels
        .iter()
        .map(|c| format!("LISTEN \"{}\";", c.replace('"', "")))
        .collect();
    if let Err(e) = client.batch_execute(&statements).await {
        driver.abort();
        return Err(super::pg_error("starting to listen", e));
    }
    let _ = tx.send(Wake::Rescan);
    while let Some(wake) = notes.recv().await {
        let _ = tx.send(wake);
    }
    drop(client);
    Ok(())
}

/// The sender of a notice every node applies, the one that sends it too (node ids start at 1).
pub(crate) const NO_NODE: i64 = 0;

/// A notification's payload: the sending node's id on the first line, then `body`. A node
/// skips what it sent itself (it applied those effects at its commit already).
pub(crate) fn signed(node: i64, body: &str) -> String {
    format!("node {node}\n{body}")
}

/// The most bytes of one notification's body (the server refuses a payload of 8000 or more;
/// the signature takes the rest).
const BODY_LIMIT: usize = 7_900;

/// Notifications signed by `node` whose bodies hold `lines`, one per line, each body within
/// the server's payload limit: one notification unless the lines do not fit in it.
pub(crate) fn payloads<S: AsRef<str>>(node: i64, lines: &[S]) -> Vec<String> {
    let mut out = Vec::new();
    let mut body = String::new();
    for line in lines {
        let line = line.as_ref();
        if !body.is_empty() && body.len() + 1 + line.len() > BODY_LIMIT {
            out.push(signed(node, &body));
            body.clear();
        }
        if !body.is_empty() {
            body.push('\n');
        }
        body.push_str(line);
    }
    if !body.is_empty() {
        out.push(signed(node, &body));
    }
    out
}

/// Tells the nodes listening on `channel`, at the commit of `tx`, about `lines` (names or
/// ids, one per line), signed by `node`; in one statement, split over several notifications
/// only if they do not fit in one.
pub(crate) async fn notify<S: AsRef<str>>(
    tx: &impl Cached,
    channel: &str,
    node: i64,
    lines: &[S],
) -> Result<()> {
    let payloads = payloads(node, lines);
    if payloads.is_empty() {
        return Ok(());
    }
    tx.execute_cached(
        "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p",
        &[&channel, &payloads],
    )
    .await
    .map_err(|e| pg_error(&format!("notifying on {channel}"), e))?;
    Ok(())
}

/// The sending node and the body of a payload made by [`signed`] (no sender for another
/// payload).
pub(crate) fn sender(payload: &str) -> (Option<i64>, &str) {
    let Some(rest) = payload.strip_prefix("node ") else {
        return (None, payload);
    };
    let (id, body) = rest.split_once('\n').unwrap_or((rest, ""));
    match id.parse() {
        Ok(id) => (Some(id), body),
        Err(_) => (None, payload),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_over_notifications_only_when_they_do_not_fit() {
        assert!(payloads::<&str>(3, &[]).is_empty());
        assert_eq!(payloads(3, &["a", "b"]), ["node 3\na\nb"]);
        // 2,000 ids of up to 4 digits: more than one payload, each within the limit, every
        // id once and in order.
        let ids: Vec<String> = (1..=2_000).map(|i: u32| i.to_string()).collect();
        let out = payloads(7, &ids);
        assert!(out.len() > 1, "{}", out.len());
        assert!(out.iter().all(|p| p.len() < 8_000));
        let back: Vec<String> = out
            .iter()
            .flat_map(|p| {
                let (from, body) = sender(p);
                assert_eq!(from, Some(7));
                body.lines().map(str::to_string).collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(back, ids);
    }
}
