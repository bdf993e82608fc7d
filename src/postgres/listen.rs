//! Wake-ups from other nodes: LISTEN on a connection of its own, reconnected when it drops.
//! After every (re)connect subscribers get [`Wake::Rescan`]: notifications sent while no one
//! listened are lost, so whoever waits looks at the tables again. Callers keep a poll
//! fallback besides, for servers behind a pooler in transaction mode (no LISTEN there).

use std::time::Duration;

use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_postgres::AsyncMessage;

use super::Postgres;

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
