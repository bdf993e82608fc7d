//! [`Ephemeral`]: the handle to one named set.

use std::sync::Arc;
use std::time::Duration;

use super::core::EphemeralCore;
use super::info::{Change, Entry, Snapshot};
use super::options::EphemeralOptions;
use super::storage::EphemeralStorage;
use super::upsert::UpsertEntry;
use crate::clock::millis;
use crate::error::{Result, check_name, check_ttl};
use crate::feed::{self, Feed};

/// A named ephemeral set. Get one from [`Engine::ephemeral`](crate::Engine::ephemeral); cheap
/// to clone.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> jobfile::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// use std::time::Duration;
/// let engine = jobfile::Engine::open(dir.path().join("app.jobfile")).await?;
/// let devices = engine.ephemeral("devices")?;
/// devices.upsert("sensor-7", b"online".to_vec()).ttl(Duration::from_secs(30)).await?;
/// let snap = devices.snapshot().await?;
/// assert_eq!(snap.entries[0].key, "sensor-7");
/// let mut changes = devices.follow(snap.position + 1);   // live from here on
/// devices.remove("sensor-7").await?;
/// assert_eq!(changes.next().await.unwrap()?.kind.name(), "delete");
/// # engine.shutdown(Duration::from_secs(1)).await?; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Ephemeral {
    name: Arc<str>,
    options: Arc<EphemeralOptions>,
    core: Arc<EphemeralCore>,
}

impl Ephemeral {
    pub(crate) fn new(
        core: Arc<EphemeralCore>,
        name: &str,
        options: EphemeralOptions,
    ) -> Result<Self> {
        check_name("ephemeral set name", name)?;
        check_ttl("ttl", options.ttl)?;
        Ok(Ephemeral {
            name: name.into(),
            options: Arc::new(options),
            core,
        })
    }

    /// Inserts or replaces `key` with `value`; `.await` the returned [`UpsertEntry`] (after
    /// [`ttl`](UpsertEntry::ttl), to live other than the set's default TTL). Durable when it
    /// returns; its value is the change's position.
    ///
    /// Errors: [`Error::PayloadTooLarge`](crate::Error::PayloadTooLarge); [`Error::CapacityExceeded`](crate::Error::CapacityExceeded) for a new key in a full
    /// set; [`Error::InvalidArgument`](crate::Error::InvalidArgument) for a bad key or a zero ttl. Nothing is written then.
    pub fn upsert(&self, key: impl Into<String>, value: Vec<u8>) -> UpsertEntry<'_> {
        UpsertEntry::new(&self.core, &self.name, &self.options, key.into(), value)
    }

    /// Extends a live entry's TTL to `ttl` from now. Returns the change's position, or `None`
    /// if the key is absent (or already expired).
    pub async fn touch(&self, key: &str, ttl: Duration) -> Result<Option<u64>> {
        check_ttl("ttl", ttl)?;
        self.core.backend.touch(&self.name, key, millis(ttl)).await
    }

    /// Removes a live entry. Returns the change's position, or `None` if it was absent.
    pub async fn remove(&self, key: &str) -> Result<Option<u64>> {
        self.core.backend.remove(&self.name, key).await
    }

    /// The live entry under `key`.
    pub async fn get(&self, key: &str) -> Result<Option<Entry>> {
        let now = self.core.clock.now_ms();
        self.core.backend.get(&self.name, key, now).await
    }

    /// Every live entry, sorted by key, with the position of the last change it reflects.
    pub async fn snapshot(&self) -> Result<Snapshot> {
        let now = self.core.clock.now_ms();
        self.core.backend.snapshot(&self.name, now).await
    }

    /// Up to `limit` changes from position `from` on.
    ///
    /// Errors: [`Error::Lagged`](crate::Error::Lagged) if changes at or after `from` were pruned.
    pub async fn read_changes(&self, from: u64, limit: usize) -> Result<Vec<Change>> {
        self.core
            .backend
            .read_changes(&self.name, from, limit)
            .await
    }

    /// Every change from position `from` on, then live ones as they commit (woken by the
    /// commits, not by polling). The stream ends with an error if the reader lags behind
    /// pruning, or the engine shuts down.
    pub fn follow(&self, from: u64) -> ChangeStream {
        let core = self.core.clone();
        let set = self.name.clone();
        let changes = self.core.followers.subscribe(&*self.name);
        let source = feed::Source {
            read: move |from, limit| {
                let (core, set) = (core.clone(), set.clone());
                async move { core.backend.read_changes(&set, from, limit).await }
            },
            after: |c: &Change| c.position + 1,
            last: |_: &Change| false,
        };
        feed::spawn(Ok(from), source, changes, self.core.stop.clone())
    }
}

/// A live feed of a set's changes; see [`Ephemeral::follow`].
pub type ChangeStream = Feed<Change>;
