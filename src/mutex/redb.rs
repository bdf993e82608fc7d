//! The mutex over the embedded file: each operation one op sent to the writer.

use std::sync::Arc;

use redb::ReadableTable;

use super::lease::MutexLease;
use super::ops;
use super::record::StoredLease;
use super::storage::{Acquired, MutexStorage};
use super::tables::MUTEXES;
use crate::error::Result;
use crate::store::Store;
use crate::store::codec::decode;
use crate::wakeups::Wakeups;

/// The mutex's storage in the file.
#[derive(Debug)]
pub(crate) struct RedbMutex {
    store: Arc<Store>,
    /// The acquirers waiting on each mutex, woken after the commit of its release.
    released: Arc<Wakeups<String>>,
}

impl RedbMutex {
    pub(crate) fn new(store: Arc<Store>, released: Arc<Wakeups<String>>) -> Self {
        RedbMutex { store, released }
    }
}

impl MutexStorage for RedbMutex {
    async fn acquire(&self, name: &str, owner: &str, ttl_ms: u64) -> Result<Acquired> {
        let (name, owner) = (name.to_string(), owner.to_string());
        self.store
            .write(move |ctx| ops::acquire::acquire(ctx, &name, &owner, ttl_ms))
            .await
    }

    async fn extend(&self, lease: &MutexLease, ttl_ms: u64) -> Result<Option<MutexLease>> {
        let held = lease.clone();
        self.store
            .write(move |ctx| ops::extend::extend(ctx, &held, ttl_ms))
            .await
    }

    async fn release(&self, lease: &MutexLease) -> Result<bool> {
        let held = lease.clone();
        let released = self.released.clone();
        self.store
            .write(move |ctx| {
                let done = ops::release::release(ctx, &held)?;
                if done {
                    let (released, name) = (released.clone(), held.name.clone());
                    ctx.after_commit(move || released.wake_all(name.as_str()));
                }
                Ok(done)
            })
            .await
    }

    async fn holders(&self, now: u64) -> Result<Vec<MutexLease>> {
        self.store.read(|rtx| {
            let mut out = Vec::new();
            for entry in rtx.open_table(MUTEXES)?.iter()? {
                let (name, bytes) = entry?;
                let StoredLease::V1(l) = decode("mutexes", bytes.value())?;
                if l.expires_at > now {
                    out.push(MutexLease {
                        name: name.value().to_string(),
                        owner: l.owner,
                        token: l.token,
                        expires_at_ms: l.expires_at,
                    });
                }
            }
            Ok(out)
        })
    }

    async fn holder(&self, name: &str, now: u64) -> Result<Option<MutexLease>> {
        self.store.read(|rtx| {
            let table = rtx.open_table(MUTEXES)?;
            let Some(bytes) = table.get(name)? else {
                return Ok(None);
            };
            let StoredLease::V1(l) = decode("mutexes", bytes.value())?;
            Ok((l.expires_at > now).then(|| MutexLease {
                name: name.to_string(),
                owner: l.owner,
                token: l.token,
                expires_at_ms: l.expires_at,
            }))
        })
    }
}
