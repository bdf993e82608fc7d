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

    /// Wakes every waiter of `key` now (no permit is kept).
    pub(crate) fn wake_all<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ToOwned<Owned = K> + ?Sized,
    {
        self.waiter(key).notify_waiters();
    }
}
