//! Group commit for the writes of one node: calls that arrive while a write of their kind is
//! under way wait for it to end, then the first of them writes every waiting item in one
//! transaction. Under load a transaction carries many items; alone, a call writes at once.

use tokio::sync::oneshot;

use crate::error::{Error, Result};

/// Items of one kind waiting for the next grouped write.
pub(crate) struct Grouped<T, R> {
    waiting: std::sync::Mutex<Vec<(T, oneshot::Sender<Result<R>>)>>,
    /// Held by the write under way.
    turn: tokio::sync::Mutex<()>,
}

impl<T, R> Default for Grouped<T, R> {
    fn default() -> Self {
        Grouped {
            waiting: std::sync::Mutex::new(Vec::new()),
            turn: tokio::sync::Mutex::new(()),
        }
    }
}

impl<T, R> Grouped<T, R> {
    /// Writes `item` with the others waiting by then: `write` gets them all and answers each,
    /// in order. If it fails for a group, each item is written alone, so that each gets its
    /// own answer (one item's error is not the others'), unless the group's commit has an
    /// unknown outcome: then each item gets that answer, and nothing is written again.
    pub(crate) async fn run<F>(
        &self,
        item: T,
        write: impl Fn(std::sync::Arc<[T]>) -> F,
    ) -> Result<R>
    where
        T: Clone,
        F: std::future::Future<Output = Result<Vec<R>>>,
    {
        let (reply, mut answer) = oneshot::channel();
        self.waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((item, reply));
        let turn = self.turn.lock().await;
        if let Ok(done) = answer.try_recv() {
            return done;
        }
        let group = std::mem::take(&mut *self.waiting.lock().unwrap_or_else(|p| p.into_inner()));
        let (items, replies): (Vec<T>, Vec<_>) = group.into_iter().unzip();
        let items: std::sync::Arc<[T]> = items.into();
        match write(items.clone()).await {
            Ok(results) => {
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(Ok(result));
                }
            }
            Err(e) if items.len() == 1 => {
                let _ = replies.into_iter().next().map(|reply| reply.send(Err(e)));
            }
            // The group may have committed: writing its items again could repeat them. Each
            // call is told that its outcome is unknown.
            Err(e) if e.unknown_again().is_some() => {
                for reply in replies {
                    let _ = reply.send(Err(e.unknown_again().unwrap_or(Error::Closed)));
                }
            }
            Err(_) => {
                for (k, reply) in replies.into_iter().enumerate() {
                    let alone = write(std::sync::Arc::from([items[k].clone()]))
                        .await
                        .and_then(|mut r| {
                            r.pop().ok_or_else(|| {
                                Error::Internal("a grouped write answered nothing".into())
                            })
                        });
                    let _ = reply.send(alone);
                }
            }
        }
        drop(turn);
        answer
            .await
            .unwrap_or_else(|_| Err(Error::Internal("a grouped write went unanswered".into())))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Items that arrive during a write go together in the next one; a failed group is
    /// written again item by item, so that only the bad item fails.
    #[tokio::test]
    async fn waiting_items_share_a_write_and_a_failed_group_is_retried_one_by_one() {
        let grouped = Arc::new(Grouped::<u32, u32>::default());
        let writes = Arc::new(std::sync::Mutex::new(Vec::<Vec<u32>>::new()));
        let gate = Arc::new(tokio::sync::Notify::new());
        let calls = Arc::new(AtomicUsize::new(0));
        let write = {
            let (writes, gate, calls) = (writes.clone(), gate.clone(), calls.clone());
            move |items: Arc<[u32]>| {
                let (writes, gate, calls) = (writes.clone(), gate.clone(), calls.clone());
                async move {
                    // The first write waits at the gate while the others queue up.
                    if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                        gate.notified().await;
                    }
                    writes.lock().unwrap().push(items.to_vec());
                    if items.contains(&13) {
                        return Err(Error::Internal(format!("bad item in {items:?}")));
                    }
                    Ok(items.iter().map(|i| i * 10).collect())
                }
            }
        };
        let first = {
            let (g, w) = (grouped.clone(), write.clone());
            tokio::spawn(async move { g.run(1, w).await })
        };
        tokio::task::yield_now().await;
        let rest: Vec<_> = [2, 13, 4]
            .into_iter()
            .map(|item| {
                let (g, w) = (grouped.clone(), write.clone());
                tokio::spawn(async move { g.run(item, w).await })
            })
            .collect();
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        gate.notify_one();
        assert_eq!(first.await.unwrap().unwrap(), 10);
        let mut answers = Vec::new();
        for r in rest {
            answers.push(r.await.unwrap().map_err(|e| e.to_string()));
        }
        assert_eq!(answers[0], Ok(20));
        assert!(
            answers[1].as_ref().unwrap_err().contains("[13]"),
            "{answers:?}"
        );
        assert_eq!(answers[2], Ok(40));
        assert_eq!(
            *writes.lock().unwrap(),
            vec![vec![1], vec![2, 13, 4], vec![2], vec![13], vec![4]]
        );
    }

    /// A group whose commit has an unknown outcome is not written again (that could repeat
    /// it): every call in it is told the outcome is unknown.
    #[tokio::test]
    async fn a_group_with_an_unknown_commit_is_not_written_again() {
        // A client error of a connection that never was: what a lost connection gives.
        let lost = tokio_postgres::connect(
            "host=127.0.0.1 port=1 connect_timeout=1",
            tokio_postgres::NoTls,
        )
        .await
        .err()
        .expect("nothing listens on port 1");
        let lost = Arc::new(Error::CommitUnknown {
            context: "committing a job write".into(),
            source: Arc::new(lost),
        });
        let grouped = Arc::new(Grouped::<u32, u32>::default());
        let writes = Arc::new(std::sync::Mutex::new(Vec::<Vec<u32>>::new()));
        let gate = Arc::new(tokio::sync::Notify::new());
        let calls = Arc::new(AtomicUsize::new(0));
        let write = {
            let (writes, gate, calls, lost) =
                (writes.clone(), gate.clone(), calls.clone(), lost.clone());
            move |items: Arc<[u32]>| {
                let (writes, gate, calls, lost) =
                    (writes.clone(), gate.clone(), calls.clone(), lost.clone());
                async move {
                    if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                        gate.notified().await;
                        writes.lock().unwrap().push(items.to_vec());
                        return Ok(vec![items[0]]);
                    }
                    writes.lock().unwrap().push(items.to_vec());
                    Err(lost.unknown_again().unwrap())
                }
            }
        };
        let first = {
            let (g, w) = (grouped.clone(), write.clone());
            tokio::spawn(async move { g.run(1, w).await })
        };
        tokio::task::yield_now().await;
        let rest: Vec<_> = [2, 3]
            .into_iter()
            .map(|item| {
                let (g, w) = (grouped.clone(), write.clone());
                tokio::spawn(async move { g.run(item, w).await })
            })
            .collect();
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        gate.notify_one();
        assert_eq!(first.await.unwrap().unwrap(), 1);
        for r in rest {
            let e = r.await.unwrap().unwrap_err();
            assert!(matches!(e, Error::CommitUnknown { .. }), "{e:?}");
        }
        assert_eq!(*writes.lock().unwrap(), vec![vec![1], vec![2, 3]]);
    }
}
