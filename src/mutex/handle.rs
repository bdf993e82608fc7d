//! [`FencedMutex`]: the handle to one named mutex.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::core::MutexCore;
use super::lease::MutexLease;
use super::storage::{Acquired, MutexStorage};
use crate::clock::millis;
use crate::error::{Error, Held, Result, check_name, check_ttl};

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
    core: Arc<MutexCore>,
}

impl FencedMutex {
    pub(crate) fn new(core: Arc<MutexCore>, name: &str) -> Result<Self> {
        check_name("mutex name", name)?;
        Ok(FencedMutex {
            name: name.into(),
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
        let clock = self.core.clock.clone();
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
        self.core
            .backend
            .extend(lease, millis(ttl))
            .await?
            .ok_or_else(|| not_holder(lease))
    }

    /// Releases a held lease; waiters are woken.
    ///
    /// Errors: [`Error::NotHolder`] if the lease had already expired or changed hands (the
    /// mutex is left as it is).
    pub async fn release(&self, lease: &MutexLease) -> Result<()> {
        if self.core.backend.release(lease).await? {
            Ok(())
        } else {
            Err(not_holder(lease))
        }
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
    pub async fn holder(&self) -> Result<Option<MutexLease>> {
        let now = self.core.clock.now_ms();
        self.core.backend.holder(&self.name, now).await
    }

    /// One try: the new lease, or when the live holder's lease ends.
    async fn attempt(&self, owner: &str, ttl: Duration) -> Result<Result<MutexLease, u64>> {
        check_ttl("ttl", ttl)?;
        check_name("mutex owner", owner)?;
        Ok(
            match self
                .core
                .backend
                .acquire(&self.name, owner, millis(ttl))
                .await?
            {
                Acquired::Lease(lease) => Ok(lease),
                Acquired::HeldUntil(at) => Err(at),
            },
        )
    }
}

fn not_holder(lease: &MutexLease) -> Error {
    Error::NotHolder {
        held: Held::MutexLease {
            name: lease.name.clone(),
            owner: lease.owner.clone(),
            token: lease.token,
        },
    }
}
