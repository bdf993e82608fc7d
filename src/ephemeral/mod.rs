//! Ephemeral entries: TTL key-value sets (presence, device heartbeats) with a change stream.
//!
//! Each set holds up to `capacity` live entries of at most `payload_limit` bytes. Every change
//! (`upsert`, `touch`, `delete`, `expire`) gets a position in the set's stream, committed with
//! the change. Entries expire on time, driven by a timer, and survive a restart until their
//! TTL ends. Old changes are pruned after the engine's change retention; a reader asking for a
//! pruned position gets [`Error::Lagged`].

pub(crate) mod ops;
pub(crate) mod tables;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redb::ReadTransaction;
use tokio::sync::watch;

use crate::clock::millis;
use crate::error::{Error, Result, check_name, check_ttl};
use crate::feed::{self, Feed};
use crate::primitive::{Primitive, Work};
use crate::store::codec::decode;
use crate::store::{SchemaTable, Store, TxCtx};
use crate::timer::Timer;
use ops::{ChangeKindV1, StoredChange, StoredEntry, StoredSet};
use tables::{EPH_CHANGES, EPH_ENTRIES, EPH_SETS};

/// Entries expired (and changes pruned per set) in one timer pass.
const SWEEP_LIMIT: usize = 1_000;

/// Limits of one ephemeral set. Defaults from the spec: 10,000 entries of at most 4 KiB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EphemeralOptions {
    /// Live entries the set may hold; an upsert of a new key beyond it fails with
    /// [`Error::CapacityExceeded`]. Default 10,000.
    pub capacity: usize,
    /// The largest value, in bytes; larger ones fail with [`Error::PayloadTooLarge`].
    /// Default 4 KiB.
    pub payload_limit: usize,
}

impl Default for EphemeralOptions {
    fn default() -> Self {
        EphemeralOptions {
            capacity: 10_000,
            payload_limit: 4 * 1024,
        }
    }
}

/// A live entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its key.
    pub key: String,
    /// Its value.
    pub value: Vec<u8>,
    /// When it expires unless touched (ms since the epoch).
    pub expires_at_ms: u64,
    /// When it was last upserted or touched.
    pub updated_at_ms: u64,
}

/// Every live entry of a set, sorted by key, and the stream position it reflects: follow the
/// changes from `position + 1` to stay in sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The live entries, sorted by key.
    pub entries: Vec<Entry>,
    /// The position of the last change included (0 if none).
    pub position: u64,
}

/// One change of a set's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Its position: increasing within the set (positions are shared by all sets of the file,
    /// so they may skip numbers).
    pub position: u64,
    /// When it happened (ms since the epoch).
    pub at_ms: u64,
    /// The key it concerns.
    pub key: String,
    /// What happened.
    pub kind: ChangeKind,
}

/// What happened to an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChangeKind {
    /// Inserted or replaced.
    Upsert {
        /// The new value.
        value: Vec<u8>,
        /// Its expiry.
        expires_at_ms: u64,
    },
    /// Its TTL was extended.
    Touch {
        /// The new expiry.
        expires_at_ms: u64,
    },
    /// Removed by a caller.
    Delete,
    /// Its TTL ran out.
    Expire,
}

impl ChangeKind {
    /// The change's name: `upsert`, `touch`, `delete` or `expire`.
    pub fn name(&self) -> &'static str {
        match self {
            ChangeKind::Upsert { .. } => "upsert",
            ChangeKind::Touch { .. } => "touch",
            ChangeKind::Delete => "delete",
            ChangeKind::Expire => "expire",
        }
    }
}

/// State shared by the sets of one engine: the expiry timer and the followers' wake-ups.
#[derive(Debug)]
pub(crate) struct EphemeralCore {
    pub(crate) store: Arc<Store>,
    pub(crate) timer: Timer,
    change_retention_ms: u64,
    changed: Mutex<HashMap<String, watch::Sender<u64>>>,
    stop: watch::Receiver<bool>,
}

impl EphemeralCore {
    pub(crate) fn new(
        store: Arc<Store>,
        change_retention: Duration,
        stop: watch::Receiver<bool>,
    ) -> Self {
        EphemeralCore {
            store,
            timer: Timer::new(None),
            change_retention_ms: millis(change_retention),
            changed: Mutex::new(HashMap::new()),
            stop,
        }
    }

    fn sender(&self, set: &str) -> watch::Sender<u64> {
        self.changed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(set.to_string())
            .or_insert_with(|| watch::channel(0).0)
            .clone()
    }

    fn wake(&self, set: &str) {
        self.sender(set).send_modify(|v| *v += 1);
    }
}

impl Primitive for EphemeralCore {
    fn name(&self) -> &'static str {
        "ephemeral"
    }

    fn tables(&self) -> &'static [&'static dyn SchemaTable] {
        tables::TABLES
    }

    /// Entries that expired while no process held the file expire now.
    fn recover(self: Arc<Self>, ctx: &mut TxCtx<'_>, _epoch: u64) -> Result<()> {
        if let Some(at) = ops::sweep(ctx, usize::MAX, self.change_retention_ms)?.next {
            self.timer.lower(at);
        }
        Ok(())
    }

    fn timer(&self) -> Option<&Timer> {
        Some(&self.timer)
    }

    /// Expires what is due and prunes old changes.
    fn pass(self: Arc<Self>) -> Work<Result<Option<u64>>> {
        Box::pin(async move {
            let core = self.clone();
            let retention = self.change_retention_ms;
            self.store
                .write(move |ctx| {
                    let swept = ops::sweep(ctx, SWEEP_LIMIT, retention)?;
                    let core = core.clone();
                    let changed = swept.changed.clone();
                    ctx.after_commit(move || changed.iter().for_each(|s| core.wake(s)));
                    Ok(swept.next)
                })
                .await
        })
    }
}

/// A named ephemeral set. Get one from [`Engine::ephemeral`](crate::Engine::ephemeral); cheap
/// to clone.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> jobfile::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// use std::time::Duration;
/// let engine = jobfile::Engine::open(dir.path().join("app.jobfile")).await?;
/// let devices = engine.ephemeral("devices")?;
/// devices.upsert("sensor-7", b"online".to_vec(), Duration::from_secs(30)).await?;
/// let snap = devices.snapshot()?;
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
        Ok(Ephemeral {
            name: name.into(),
            options: Arc::new(options),
            core,
        })
    }

    /// Inserts or replaces `key` with `value` for `ttl`; returns the change's position.
    /// Durable when it returns.
    ///
    /// Errors: [`Error::PayloadTooLarge`]; [`Error::CapacityExceeded`] for a new key in a full
    /// set; [`Error::InvalidArgument`] for a bad key or a zero ttl. Nothing is written then.
    pub async fn upsert(&self, key: &str, value: Vec<u8>, ttl: Duration) -> Result<u64> {
        check_name("ephemeral key", key)?;
        check_ttl("ttl", ttl)?;
        if value.len() > self.options.payload_limit {
            return Err(Error::PayloadTooLarge {
                size: value.len(),
                limit: self.options.payload_limit,
            });
        }
        let (set, key, capacity, ttl_ms) = (
            self.name.to_string(),
            key.to_string(),
            self.options.capacity,
            millis(ttl),
        );
        let core = self.core.clone();
        self.core
            .store
            .write(move |ctx| {
                let position = ops::upsert(ctx, &set, &key, &value, ttl_ms, capacity)?;
                let at = ctx.now.saturating_add(ttl_ms);
                let (core, set) = (core.clone(), set.clone());
                ctx.after_commit(move || {
                    core.timer.lower(at);
                    core.wake(&set);
                });
                Ok(position)
            })
            .await
    }

    /// Extends a live entry's TTL to `ttl` from now. Returns the change's position, or `None`
    /// if the key is absent (or already expired).
    pub async fn touch(&self, key: &str, ttl: Duration) -> Result<Option<u64>> {
        check_ttl("ttl", ttl)?;
        let (set, key, ttl_ms) = (self.name.to_string(), key.to_string(), millis(ttl));
        let core = self.core.clone();
        self.core
            .store
            .write(move |ctx| {
                let position = ops::touch(ctx, &set, &key, ttl_ms)?;
                let at = ctx.now.saturating_add(ttl_ms);
                let (core, set) = (core.clone(), set.clone());
                ctx.after_commit(move || {
                    core.timer.lower(at);
                    core.wake(&set);
                });
                Ok(position)
            })
            .await
    }

    /// Removes a live entry. Returns the change's position, or `None` if it was absent.
    pub async fn remove(&self, key: &str) -> Result<Option<u64>> {
        let (set, key) = (self.name.to_string(), key.to_string());
        let core = self.core.clone();
        self.core
            .store
            .write(move |ctx| {
                let position = ops::remove(ctx, &set, &key)?;
                let (core, set) = (core.clone(), set.clone());
                ctx.after_commit(move || core.wake(&set));
                Ok(position)
            })
            .await
    }

    /// The live entry under `key`.
    pub fn get(&self, key: &str) -> Result<Option<Entry>> {
        let now = self.core.store.clock().now_ms();
        let set = self.name.to_string();
        self.core.store.read(|rtx| {
            let table = rtx.open_table(EPH_ENTRIES)?;
            let Some(bytes) = table.get((set.as_str(), key))? else {
                return Ok(None);
            };
            let StoredEntry::V1(e) = decode("ephemeral_entries", bytes.value())?;
            Ok((e.expires_at > now).then(|| Entry {
                key: key.to_string(),
                value: e.value,
                expires_at_ms: e.expires_at,
                updated_at_ms: e.updated_at,
            }))
        })
    }

    /// Every live entry, sorted by key, with the position of the last change it reflects.
    pub fn snapshot(&self) -> Result<Snapshot> {
        let now = self.core.store.clock().now_ms();
        let set = self.name.to_string();
        self.core.store.read(|rtx| {
            let table = rtx.open_table(EPH_ENTRIES)?;
            let mut entries = Vec::new();
            for item in table.range((set.as_str(), "")..)? {
                let (k, v) = item?;
                let (s, key) = k.value();
                if s != set {
                    break;
                }
                let StoredEntry::V1(e) = decode("ephemeral_entries", v.value())?;
                if e.expires_at > now {
                    entries.push(Entry {
                        key: key.to_string(),
                        value: e.value,
                        expires_at_ms: e.expires_at,
                        updated_at_ms: e.updated_at,
                    });
                }
            }
            let changes = rtx.open_table(EPH_CHANGES)?;
            let position = changes
                .range((set.as_str(), 0)..=(set.as_str(), u64::MAX))?
                .next_back()
                .transpose()?
                .map(|(k, _)| k.value().1)
                .unwrap_or(0);
            Ok(Snapshot { entries, position })
        })
    }

    /// Up to `limit` changes from position `from` on.
    ///
    /// Errors: [`Error::Lagged`] if changes at or after `from` were pruned.
    pub fn read_changes(&self, from: u64, limit: usize) -> Result<Vec<Change>> {
        let set = self.name.to_string();
        self.core
            .store
            .read(|rtx| read_changes(rtx, &set, from, limit))
    }

    /// Every change from position `from` on, then live ones as they commit (woken by the
    /// commits, not by polling). The stream ends with an error if the reader lags behind
    /// pruning, or the engine shuts down.
    pub fn follow(&self, from: u64) -> ChangeStream {
        let core = self.core.clone();
        let set = self.name.to_string();
        let changes = self.core.sender(&set).subscribe();
        let source = feed::Source {
            read: move |from, limit| core.store.read(|rtx| read_changes(rtx, &set, from, limit)),
            after: |c: &Change| c.position + 1,
            last: |_: &Change| false,
        };
        feed::spawn(from, source, changes, self.core.stop.clone())
    }
}

/// A live feed of a set's changes; see [`Ephemeral::follow`].
pub type ChangeStream = Feed<Change>;

fn read_changes(rtx: &ReadTransaction, set: &str, from: u64, limit: usize) -> Result<Vec<Change>> {
    let sets = rtx.open_table(EPH_SETS)?;
    if let Some(bytes) = sets.get(set)?
        && let StoredSet::V1(meta) = decode("ephemeral_sets", bytes.value())?
        && meta.pruned_through > 0
        && from <= meta.pruned_through
    {
        return Err(Error::Lagged {
            set: set.to_string(),
            requested: from,
            next_available: meta.pruned_through + 1,
        });
    }
    let changes = rtx.open_table(EPH_CHANGES)?;
    let mut out = Vec::new();
    for item in changes.range((set, from)..=(set, u64::MAX))?.take(limit) {
        let (k, v) = item?;
        let StoredChange::V1(c) = decode("ephemeral_changes", v.value())?;
        out.push(Change {
            position: k.value().1,
            at_ms: c.at,
            key: c.key,
            kind: match c.kind {
                ChangeKindV1::Upsert { value, expires_at } => ChangeKind::Upsert {
                    value,
                    expires_at_ms: expires_at,
                },
                ChangeKindV1::Touch { expires_at } => ChangeKind::Touch {
                    expires_at_ms: expires_at,
                },
                ChangeKindV1::Delete => ChangeKind::Delete,
                ChangeKindV1::Expire => ChangeKind::Expire,
            },
        });
    }
    Ok(out)
}
