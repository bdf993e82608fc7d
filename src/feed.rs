//! Live feeds: replay a stream of stored items from a position, then follow new ones as their
//! commits land, woken by the commit and never by polling. Job events, ephemeral changes and
//! topic subscriptions are all fed this way.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use tokio::sync::{mpsc, watch};

use crate::error::{Error, Result};

/// Items read per read transaction.
const CHUNK: usize = 256;

/// A live feed of stored items: those already stored from the starting position, then new
/// ones as they are committed. Ends after an error (such as [`Error::Lagged`], or
/// [`Error::Closed`] at shutdown), or after a final item (a job's terminal event).
#[derive(Debug)]
pub struct Feed<T> {
    rx: mpsc::Receiver<Result<T>>,
}

impl<T> Feed<T> {
    /// The next item (waits for one), or `None` once the feed has ended.
    pub async fn next(&mut self) -> Option<Result<T>> {
        self.rx.recv().await
    }
}

impl<T> Stream for Feed<T> {
    type Item = Result<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

/// A subscription to "something was committed" notices.
pub(crate) trait Changes: Send + 'static {
    /// Forgets the notices seen so far, before a read.
    fn mark_seen(&mut self);
    /// Waits for a notice newer than the last [`Changes::mark_seen`]; false if none can come.
    fn changed(&mut self) -> impl Future<Output = bool> + Send;
}

impl Changes for watch::Receiver<u64> {
    fn mark_seen(&mut self) {
        self.borrow_and_update();
    }

    fn changed(&mut self) -> impl Future<Output = bool> + Send {
        let changed = watch::Receiver::changed(self);
        async move { changed.await.is_ok() }
    }
}

/// How a feed reads its source.
pub(crate) struct Source<T, R> {
    /// Reads up to `limit` items from a position (a future, as storage reads are).
    pub(crate) read: R,
    /// The position after an item.
    pub(crate) after: fn(&T) -> u64,
    /// Whether the feed ends with this item.
    pub(crate) last: fn(&T) -> bool,
}

/// Starts a feed from `from` (an error there is the feed's first and only item): a task
/// reads chunks while there are any, then waits for `changes` (subscribed before each read,
/// so no commit slips between) or `stop`.
pub(crate) fn spawn<T, R, F, C>(
    from: Result<u64>,
    mut source: Source<T, R>,
    mut changes: C,
    mut stop: watch::Receiver<bool>,
) -> Feed<T>
where
    T: Send + 'static,
    R: FnMut(u64, usize) -> F + Send + 'static,
    F: Future<Output = Result<Vec<T>>> + Send,
    C: Changes,
{
    let (tx, rx) = mpsc::channel(CHUNK);
    tokio::spawn(async move {
        let mut from = match from {
            Ok(from) => from,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        loop {
            changes.mark_seen();
            let batch = match (source.read)(from, CHUNK).await {
                Ok(b) => b,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            let full = batch.len() == CHUNK;
            for item in batch {
                from = (source.after)(&item);
                let last = (source.last)(&item);
                if tx.send(Ok(item)).await.is_err() || last {
                    return;
                }
            }
            if full {
                continue;
            }
            tokio::select! {
                alive = changes.changed() => if !alive { return },
                _ = tx.closed() => return,
                _ = stop.changed() => {
                    let _ = tx.send(Err(Error::Closed)).await;
                    return;
                }
            }
        }
    });
    Feed { rx }
}
