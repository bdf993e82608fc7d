//! Wake-ups of waiting callers, by key (a queue's receivers, a definition's workers, a
//! mutex's waiters): whoever makes work available wakes as many waiters as it made work for,
//! after its commit; nothing polls.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// The waiters of each key. A waiter takes the key's [`Notify`], enables its `notified()`
/// future, checks for work, and only then waits: a wake-up between the check and the wait is
/// kept as the `Notify`'s permit, never lost.
#[derive(Debug)]
pub(crate) struct Wakeups<K> {
    keys: Mutex<HashMap<K, Arc<Notify>>>,
}

impl<K> Default for Wakeups<K> {
    fn default() -> Self {
        Wakeups {
            keys: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash> Wakeups<K> {
    /// What the waiters of `key` wait on.
    pub(crate) fn waiter<Q>(&self, key: &Q) -> Arc<Notify>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ToOwned<Owned = K> + ?Sized,
    {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(notify) = keys.get(key) {
            return notify.clone();
        }
        let notify = Arc::new(Notify::new());
        keys.insert(key.to_owned(), notify.clone());
        notify
    }

    /// Wakes up to `n` waiters of `key` (one permit each, kept if none waits yet).
    pub(crate) fn wake<Q>(&self, key: &Q, n: usize)
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ToOwned<Owned = K> + ?Sized,
    {
        let notify = self.waiter(key);
        for _ in 0..n {
            notify.notify_one();
        }
    }

    /// The keys waited on so far.
    #[cfg(feature = "postgres")]
    pub(crate) fn keys(&self) -> Vec<K>
    where
        K: Clone,
    {
        self.keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// Wakes every waiter of `key` now (no permit is kept).
    pub(crate) fn wake_all<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ToOwned<Owned = K> + ?Sized,
    {
        self.waiter(key).notify_waiters();
    }
}

/// Followers of a stream, by key (a set's changes, a topic's events): each commit that
/// appends to a stream bumps its counter, and every follower sees the bump. A follower
/// subscribes before it reads, so no commit slips between its read and its wait.
#[derive(Debug)]
pub(crate) struct Followers<K> {
    keys: Mutex<HashMap<K, tokio::sync::watch::Sender<u64>>>,
}

impl<K> Default for Followers<K> {
    fn default() -> Self {
        Followers {
            keys: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash> Followers<K> {
    fn sender<Q>(&self, key: &Q) -> tokio::sync::watch::Sender<u64>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ToOwned<Owned = K> + ?Sized,
    {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = keys.get(key) {
            return tx.clone();
        }
        let tx = tokio::sync::watch::channel(0).0;
        keys.insert(key.to_owned(), tx.clone());
        tx
    }

    /// A subscription to `key`'s bumps.
    pub(crate) fn subscribe<Q>(&self, key: &Q) -> tokio::sync::watch::Receiver<u64>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ToOwned<Owned = K> + ?Sized,
    {
        self.sender(key).subscribe()
    }

    /// Every key followed (or once followed) in this process.
    #[cfg(feature = "postgres")]
    pub(crate) fn keys(&self) -> Vec<K>
    where
        K: Clone,
    {
        let keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        keys.keys().cloned().collect()
    }

    /// Tells `key`'s followers that its stream grew.
    pub(crate) fn bump<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ToOwned<Owned = K> + ?Sized,
    {
        self.sender(key).send_modify(|v| *v += 1);
    }
}
