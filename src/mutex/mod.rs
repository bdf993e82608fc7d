//! Named mutexes with fencing: a lease with an owner and a fencing token that grows with every
//! acquisition (of any mutex of the file, across restarts), so a resource guarded by the mutex
//! can refuse a writer whose lease has been taken over.

pub(crate) mod tables;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use crate::clock::millis;
use crate::error::{Error, Result, check_name, check_ttl};
use crate::primitive::{Primitive, Work};
use crate::store::codec::{decode, encode};
use crate::store::{SchemaTable, Store, TxCtx};
use crate::timer::Timer;
use crate::wakeups::Wakeups;
use tables::MUTEXES;

const FENCE_COUNTER: &str = "next:mutex_fence";

#[derive(Debug, Clone, Serialize, Deserialize)]
enum StoredLease {
    V1(LeaseV1),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LeaseV1 {
    owner: String,
    token: u64,
    expires_at: u64,
}

/// A held mutex lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MutexLease {
    /// The mutex name.
    pub name: String,
    /// The owner that holds it.
    pub owner: String,
    /// The fencing token: larger than that of every earlier acquisition. Pass it to the
    /// guarded resource and have it refuse tokens older than the newest it has seen.
    pub token: u64,
    /// When the lease ends unless extended (ms since the epoch).
    pub expires_at_ms: u64,
}

/// Wake-ups for waiters, one per mutex name.
#[derive(Debug)]
pub(crate) struct MutexCore {
    store: Arc<Store>,
    /// The acquirers waiting on each mutex, woken by its release.
    released: Wakeups<String>,
    /// Fires when the engine stops: a waiting `acquire` returns [`Error::Closed`].
    stop: tokio::sync::watch::Receiver<bool>,
}

impl MutexCore {
    pub(crate) fn new(store: Arc<Store>, stop: tokio::sync::watch::Receiver<bool>) -> Self {
        MutexCore {
            store,
            released: Wakeups::default(),
            stop,
        }
    }
}

/// A lease ends by its deadline alone: nothing to recover, nothing timed.
impl Primitive for MutexCore {
    fn name(&self) -> &'static str {
        "mutex"
    }

    fn tables(&self) -> &'static [&'static dyn SchemaTable] {
        tables::TABLES
    }

    fn recover(self: Arc<Self>, _ctx: &mut TxCtx<'_>, _epoch: u64) -> Result<()> {
        Ok(())
    }

    fn timer(&self) -> Option<&Timer> {
        None
    }

    fn pass(self: Arc<Self>) -> Work<Result<Option<u64>>> {
        Box::pin(async { Ok(None) })
    }
}

/// A named mutex of the file. Get one from [`Engine::mutex`](crate::Engine::mutex); cheap to
/// clone.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> jobfile::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// use std::time::Duration;
/// let engine = jobfile::Engine::open(dir.path().join("app.jobfile")).await?;
/// let m = engine.mutex("nightly-report")?;
/// let lease = m.try_acquire("worker-a", Duration::from_secs(30)).await?.expect("free");
/// assert!(m.try_acquire("worker-b", Duration::from_secs(30)).await?.is_none());
/// m.release(&lease).await?;
/// # engine.shutdown(Duration::from_secs(1)).await?; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct FencedMutex {
    name: Arc<str>,
    store: Arc<Store>,
    core: Arc<MutexCore>,
}

impl FencedMutex {
    pub(crate) fn new(core: Arc<MutexCore>, name: &str) -> Result<Self> {
        check_name("mutex name", name)?;
        Ok(FencedMutex {
            name: name.into(),
            store: core.store.clone(),
            core,
        })
    }

    /// Takes the mutex for `owner` for `ttl` if it is free (never taken, released, or its lease
    /// expired). Returns `None` while another lease is live. The mutex is not reentrant: an
    /// owner that holds it gets `None` too.
    ///
    /// Errors: [`Error::InvalidArgument`] for an empty owner or a zero ttl.
    pub async fn try_acquire(&self, owner: &str, ttl: Duration) -> Result<Option<MutexLease>> {
        Ok(self.attempt(owner, ttl).await?.ok())
    }

    /// Takes the mutex, waiting up to `wait` for it to be released or for the holder's lease
    /// to expire. Woken by the release, not by polling.
    ///
    /// Errors: [`Error::LockTimeout`] if it stays held for the whole wait.
    pub async fn acquire(&self, owner: &str, ttl: Duration, wait: Duration) -> Result<MutexLease> {
        let clock = self.store.clock().clone();
        let started = clock.now_ms();
        let deadline = started.saturating_add(millis(wait));
        let notify = self.core.released.waiter(&*self.name);
        let mut stop = self.core.stop.clone();
        loop {
            if *stop.borrow_and_update() {
                return Err(Error::Closed);
            }
            let released = notify.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            let holder_expires = match self.attempt(owner, ttl).await? {
                Ok(lease) => return Ok(lease),
                Err(expires_at) => expires_at,
            };
            let now = clock.now_ms();
            if now >= deadline {
                return Err(Error::LockTimeout {
                    name: self.name.to_string(),
                    waited_ms: now.saturating_sub(started),
                });
            }
            tokio::select! {
                _ = &mut released => {}
                _ = clock.sleep_until(holder_expires.min(deadline)) => {}
                _ = stop.changed() => return Err(Error::Closed),
            }
        }
    }

    /// Extends a held lease to `ttl` from now (same fencing token).
    ///
    /// Errors: [`Error::NotHolder`] if the lease expired or the mutex changed hands.
    pub async fn extend(&self, lease: &MutexLease, ttl: Duration) -> Result<MutexLease> {
        check_ttl("ttl", ttl)?;
        let name = self.name.to_string();
        let held = lease.clone();
        let ttl_ms = millis(ttl);
        self.store
            .write(move |ctx| {
                let current = live_holder(ctx.tx, &name, ctx.now)?;
                if !current.is_some_and(|l| l.owner == held.owner && l.token == held.token) {
                    return Ok(Err(not_holder(&held)));
                }
                let expires_at = ctx.now.saturating_add(ttl_ms);
                let stored = LeaseV1 {
                    owner: held.owner.clone(),
                    token: held.token,
                    expires_at,
                };
                let bytes = encode(&StoredLease::V1(stored));
                ctx.tx
                    .open_table(MUTEXES)?
                    .insert(name.as_str(), bytes.as_slice())?;
                Ok(Ok(MutexLease {
                    expires_at_ms: expires_at,
                    ..held.clone()
                }))
            })
            .await?
    }

    /// Releases a held lease; waiters are woken.
    ///
    /// Errors: [`Error::NotHolder`] if the lease had already expired or changed hands (the
    /// mutex is left as it is).
    pub async fn release(&self, lease: &MutexLease) -> Result<()> {
        let name = self.name.to_string();
        let held = lease.clone();
        let core = self.core.clone();
        self.store
            .write(move |ctx| {
                let current = live_holder(ctx.tx, &name, ctx.now)?;
                if !current.is_some_and(|l| l.owner == held.owner && l.token == held.token) {
                    return Ok(Err(not_holder(&held)));
                }
                ctx.tx.open_table(MUTEXES)?.remove(name.as_str())?;
                let (core, name) = (core.clone(), name.clone());
                ctx.after_commit(move || core.released.wake_all(name.as_str()));
                Ok(Ok(()))
            })
            .await?
    }

    /// Runs `work` holding the mutex: acquires it (waiting up to `wait`), runs `work` with the
    /// lease, then releases it. Returns what `work` returned.
    ///
    /// Errors: those of [`FencedMutex::acquire`]; [`Error::NotHolder`] if the lease was lost while
    /// `work` ran (its result is dropped then, since the guarded work may have overlapped with
    /// another owner's; long work should [`extend`](FencedMutex::extend) as it goes).
    pub async fn with_lock<T, F, Fut>(
        &self,
        owner: &str,
        ttl: Duration,
        wait: Duration,
        work: F,
    ) -> Result<T>
    where
        F: FnOnce(MutexLease) -> Fut,
        Fut: Future<Output = T>,
    {
        let lease = self.acquire(owner, ttl, wait).await?;
        let out = work(lease.clone()).await;
        self.release(&lease).await?;
        Ok(out)
    }

    /// The live lease, if someone holds the mutex now.
    pub fn holder(&self) -> Result<Option<MutexLease>> {
        let now = self.store.clock().now_ms();
        let name = self.name.to_string();
        self.store.read(|rtx| {
            let table = rtx.open_table(MUTEXES)?;
            let Some(bytes) = table.get(name.as_str())? else {
                return Ok(None);
            };
            let StoredLease::V1(l) = decode("mutexes", bytes.value())?;
            Ok((l.expires_at > now).then(|| MutexLease {
                name: name.clone(),
                owner: l.owner,
                token: l.token,
                expires_at_ms: l.expires_at,
            }))
        })
    }

    /// One try: the new lease, or when the live holder's lease ends.
    async fn attempt(&self, owner: &str, ttl: Duration) -> Result<Result<MutexLease, u64>> {
        check_ttl("ttl", ttl)?;
        check_name("mutex owner", owner)?;
        let name = self.name.to_string();
        let owner = owner.to_string();
        let ttl_ms = millis(ttl);
        self.store
            .write(move |ctx| {
                if let Some(live) = live_holder(ctx.tx, &name, ctx.now)? {
                    return Ok(Err(live.expires_at));
                }
                let token = ctx.next_id(FENCE_COUNTER)?;
                let expires_at = ctx.now.saturating_add(ttl_ms);
                let stored = LeaseV1 {
                    owner: owner.clone(),
                    token,
                    expires_at,
                };
                let bytes = encode(&StoredLease::V1(stored));
                ctx.tx
                    .open_table(MUTEXES)?
                    .insert(name.as_str(), bytes.as_slice())?;
                Ok(Ok(MutexLease {
                    name: name.clone(),
                    owner: owner.clone(),
                    token,
                    expires_at_ms: expires_at,
                }))
            })
            .await
    }
}

fn not_holder(lease: &MutexLease) -> Error {
    Error::NotHolder {
        name: lease.name.clone(),
        owner: lease.owner.clone(),
        token: lease.token,
    }
}

/// The stored lease of `name` if it is still live at `now`.
fn live_holder(tx: &redb::WriteTransaction, name: &str, now: u64) -> Result<Option<LeaseV1>> {
    let table = tx.open_table(MUTEXES)?;
    let Some(bytes) = table.get(name)? else {
        return Ok(None);
    };
    let StoredLease::V1(lease) = decode("mutexes", bytes.value())?;
    Ok((lease.expires_at > now).then_some(lease))
}

/// Decodes a stored lease record (for the fuzz targets).
#[cfg(feature = "testing")]
pub(crate) fn decode_lease_record(bytes: &[u8]) -> Result<()> {
    let StoredLease::V1(_) = decode("mutexes", bytes)?;
    Ok(())
}
