//! Tables in general: how a primitive declares its tables to the store (its schema), and the
//! tables a write batch keeps open. The store names no primitive's table: each primitive's
//! `tables.rs` lists its own, and the engine hands the store every list at open.
//!
//! Keys are redb tuples (ordered element by element); values are versioned records encoded by
//! [`super::codec`].

use std::ops::RangeInclusive;

use redb::{Key, ReadableTable, TableDefinition, TableHandle, Value, WriteTransaction};

use super::change::{LoggedTable, WriteTx};

use crate::error::Result;

/// One table of the file, whatever its key and value types: enough for the store to create it
/// and to recognise its name in a file.
pub(crate) trait SchemaTable: Sync {
    /// The table's name in the file.
    fn table_name(&self) -> &str;
    /// Creates the table if the file lacks it.
    fn create(&self, tx: &WriteTransaction) -> Result<()>;
    /// Applies logged changes to the table, in order: a key with a value is put, a key
    /// without one deleted. (Recovery of the log after a crash.)
    fn replay(
        &self,
        tx: &WriteTransaction,
        changes: &mut dyn Iterator<Item = (&[u8], Option<&[u8]>)>,
    ) -> Result<()>;
}

impl<K: Key + Sync + 'static, V: Value + Sync + 'static> SchemaTable
    for TableDefinition<'static, K, V>
{
    fn table_name(&self) -> &str {
        self.name()
    }

    fn create(&self, tx: &WriteTransaction) -> Result<()> {
        tx.open_table(*self)?;
        Ok(())
    }

    fn replay(
        &self,
        tx: &WriteTransaction,
        changes: &mut dyn Iterator<Item = (&[u8], Option<&[u8]>)>,
    ) -> Result<()> {
        let mut table = tx.open_table(*self)?;
        for (key, value) in changes {
            match value {
                Some(value) => table.insert(K::from_bytes(key), V::from_bytes(value))?,
                None => table.remove(K::from_bytes(key))?,
            };
        }
        Ok(())
    }
}

/// The prefix of the tables an application keeps in the file (see
/// [`Engine::transaction`](crate::Engine::transaction)): bytes to bytes, made when first
/// written, replayed from the log like any other, and never one of jobfile's own.
pub(crate) const APP_TABLE_PREFIX: &str = "app:";

/// An application table: keys and values are bytes.
pub(crate) type AppTable<'n> = TableDefinition<'n, &'static [u8], &'static [u8]>;

/// Every table a file of this build holds besides the store's own metadata: one list per
/// primitive.
pub(crate) type Schema = Vec<&'static [&'static dyn SchemaTable]>;

/// Gives a [`TableCache`] a place for the open tables of one key and value type.
pub(crate) trait CacheSlot<'a, K: Key + 'static, V: Value + 'static> {
    /// The open tables of this type, by name.
    fn slot(&mut self) -> &mut Vec<(String, LoggedTable<'a, K, V>)>;
    /// Work queued for the table `name` that must be done before anyone uses it.
    fn before_use(&mut self, _name: &str) -> Result<()> {
        Ok(())
    }
}

macro_rules! table_cache {
    ($($slot:ident: $k:ty => $v:ty $(, before use: $flush:ident)?;)*) => {
        /// The tables of one write batch, each opened on first use and kept open until the
        /// batch ends: opening a table costs more than most single inserts into it. Tables of
        /// the types listed here can be cached; a table used through the cache must not also be
        /// opened directly in the same batch (redb refuses a second open).
        pub(crate) struct TableCache<'a> {
            tx: &'a WriteTx,
            /// Removals from time indexes, queued until the index is next used or the batch
            /// ends; see [`TableCache::remove_later`].
            removals: Vec<(TimeIndex, Vec<(u64, u64)>)>,
            /// Entries for grouped time indexes, kept until the batch ends and then written as
            /// one group per index; see [`TableCache::insert_grouped`].
            grouped: Vec<(GroupedIndex, Vec<(u64, u64)>)>,
            /// Entries taken off ready indexes: read when taken, removed when the index is
            /// next used or the batch ends; see [`TableCache::take_ready`].
            taken: Vec<Taken>,
            $($slot: Vec<(String, LoggedTable<'a, $k, $v>)>,)*
        }

        impl<'a> TableCache<'a> {
            pub(crate) fn new(tx: &'a WriteTx) -> Self {
                TableCache { tx, removals: Vec::new(), grouped: Vec::new(), taken: Vec::new(), $($slot: Vec::new(),)* }
            }
        }

        $(table_cache!(@slot $slot: $k => $v $(, $flush)?);)*
    };
    (@slot $slot:ident: $k:ty => $v:ty $(, $flush:ident)?) => {
        impl<'a> CacheSlot<'a, $k, $v> for TableCache<'a> {
            fn slot(&mut self) -> &mut Vec<(String, LoggedTable<'a, $k, $v>)> {
                &mut self.$slot
            }
            $(fn before_use(&mut self, name: &str) -> Result<()> {
                self.$flush(name)
            })?
        }
    };
}

// The open-table slots of a batch, by key and value type. A slot marked `before use` calls that
// method with the table's name before it hands the table out: work queued for the table is
// applied first, so whoever reads it sees the batch's own changes.
table_cache! {
    records: u64 => &'static [u8];
    ready_index: (&'static str, u32, u64) => u64, before use: flush_taken;
    time_index: (u64, u64) => (), before use: flush_removals;
    name_keys: (&'static str, &'static str) => u64;
    events: (u64, u32) => &'static [u8];
    steps: (u64, &'static str) => &'static [u8];
    code_index: (u8, u64) => ();
    named_records: &'static str => &'static [u8];
    grouped_index: (u64, u64) => &'static [u8];
}

/// A ready index: (name, priority key, sequence) -> id. The first entry of a name's range is the
/// next item to hand out: highest priority (lowest key), then oldest.
pub(crate) type ReadyIndex = TableDefinition<'static, (&'static str, u32, u64), u64>;

/// The range of `name`'s entries in a ready index, in the order they are handed out.
pub(crate) fn ready_range(name: &str) -> RangeInclusive<(&str, u32, u64)> {
    (name, 0u32, 0u64)..=(name, u32::MAX, u64::MAX)
}

/// The entries a batch took off one name's range of a ready index, not yet removed.
struct Taken {
    def: ReadyIndex,
    name: String,
    /// (priority key, sequence) of each entry taken, sorted.
    keys: Vec<(u32, u64)>,
    /// Every entry of the name before this key is taken: the next take reads on from here.
    from: (u32, u64),
}

impl Taken {
    fn has(&self, key: (u32, u64)) -> bool {
        self.keys.binary_search(&key).is_ok()
    }

    /// The part of `name`'s range that may hold entries not yet taken.
    fn unread<'n>(&self, name: &'n str) -> RangeInclusive<(&'n str, u32, u64)> {
        (name, self.from.0, self.from.1)..=(name, u32::MAX, u64::MAX)
    }
}

/// A time index: (instant in ms, id) keys, no value.
pub(crate) type TimeIndex = TableDefinition<'static, (u64, u64), ()>;

/// A grouped time index: the (instant in ms, id) entries one batch added, stored together as
/// one row keyed by (the earliest instant among them, the group's number), the entries packed
/// in the value. One insert per batch rather than one per entry, for an index whose entries
/// are added often, read once when they come due and never needed before: each entry is
/// checked against its record when it comes due, so an entry whose record has since changed
/// (or gone) is not removed ahead of time, only skipped then.
pub(crate) type GroupedIndex = TableDefinition<'static, (u64, u64), &'static [u8]>;

/// The meta counter that numbers the groups of every grouped index.
pub(crate) const GROUP_COUNTER: &str = "next:index_group";

/// Packs a group's entries, sorted: 16 bytes each, instant then id, little-endian.
fn pack_group(entries: &[(u64, u64)]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(entries.len() * 16);
    for (at, id) in entries {
        bytes.extend_from_slice(&at.to_le_bytes());
        bytes.extend_from_slice(&id.to_le_bytes());
    }
    bytes
}

/// The entries of a packed group, or `Corrupt` for a value that is not a whole number of them.
fn unpack_group(table: &str, bytes: &[u8]) -> Result<Vec<(u64, u64)>> {
    if !bytes.len().is_multiple_of(16) {
        return Err(crate::error::Error::Corrupt {
            table: "a grouped index",
            detail: format!(
                "{table}: a group of {} bytes, not a multiple of 16",
                bytes.len()
            ),
        });
    }
    let word = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
    Ok(bytes
        .chunks_exact(16)
        .map(|e| (word(&e[..8]), word(&e[8..])))
        .collect())
}

impl<'a> TableCache<'a> {
    /// The table `def`, opened once per batch. A time index has the removals queued for it
    /// applied first, so whoever reads it sees the batch's own changes.
    pub(crate) fn table<K, V>(
        &mut self,
        def: TableDefinition<'static, K, V>,
    ) -> Result<&mut LoggedTable<'a, K, V>>
    where
        K: Key + 'static,
        V: Value + 'static,
        Self: CacheSlot<'a, K, V>,
    {
        self.before_use(def.name())?;
        open_cached(self.tx, self.slot(), def)
    }

    /// Adds `key` to the time index `def`, cancelling a queued removal of the same key.
    pub(crate) fn insert_indexed(&mut self, def: TimeIndex, key: (u64, u64)) -> Result<()> {
        if let Some((_, keys)) = self
            .removals
            .iter_mut()
            .find(|(d, _)| d.name() == def.name())
        {
            keys.retain(|queued| *queued != key);
        }
        open_cached(self.tx, &mut self.time_index, def)?.insert(key, ())?;
        Ok(())
    }

    /// Queues the removal of `key` from the time index `def` until the index is next used or
    /// the batch ends.
    ///
    /// One removal at a time costs a rebuild of the entry's leaf each time whenever the index
    /// is small (a few running jobs: the leaf is under a third full, so redb merges rather than
    /// removing in place), the most expensive write of a job's life. Removed together, each
    /// leaf is rebuilt once per batch.
    pub(crate) fn remove_later(&mut self, def: TimeIndex, key: (u64, u64)) {
        match self
            .removals
            .iter_mut()
            .find(|(d, _)| d.name() == def.name())
        {
            Some((_, keys)) => keys.push(key),
            None => self.removals.push((def, vec![key])),
        }
    }

    /// Applies the removals queued for the table `name`.
    fn flush_removals(&mut self, name: &str) -> Result<()> {
        let Some(at) = self.removals.iter().position(|(d, _)| d.name() == name) else {
            return Ok(());
        };
        let (def, mut keys) = self.removals.swap_remove(at);
        if keys.is_empty() {
            return Ok(());
        }
        keys.sort_unstable();
        let (first, last) = (keys[0], keys[keys.len() - 1]);
        open_cached(self.tx, &mut self.time_index, def)?
            .retain_in(first..=last, |key, ()| keys.binary_search(&key).is_err())?;
        Ok(())
    }

    /// Takes up to `max` of `name`'s first entries in the ready index `def` and returns their
    /// ids in order. The entries are read now and removed when the index is next used through
    /// [`TableCache::table`] or the batch ends; until then [`TableCache::take_ready`] and
    /// [`TableCache::has_ready`] pass over them.
    ///
    /// Taken one at a time (the next job of a worker slot, started in the write that ends the
    /// slot's last attempt), each removal rebuilt the entry's leaf: about as costly as the rest
    /// of a claim. Removed together, each leaf is rebuilt once per batch.
    pub(crate) fn take_ready(
        &mut self,
        def: ReadyIndex,
        name: &str,
        max: usize,
    ) -> Result<Vec<u64>> {
        let at = match self.taken_at(def, name) {
            Some(at) => at,
            None => {
                self.taken.push(Taken {
                    def,
                    name: name.to_owned(),
                    keys: Vec::new(),
                    from: (0, 0),
                });
                self.taken.len() - 1
            }
        };
        let table = open_cached(self.tx, &mut self.ready_index, def)?;
        let taken = &mut self.taken[at];
        let mut ids = Vec::with_capacity(max.min(1_024));
        let mut newly = Vec::new();
        for entry in table.range(taken.unread(name))? {
            if ids.len() == max {
                break;
            }
            let (key, id) = entry?;
            let (_, priority, seq) = key.value();
            if !taken.has((priority, seq)) {
                newly.push((priority, seq));
                ids.push(id.value());
            }
        }
        if let Some(&(priority, seq)) = newly.last() {
            // Everything from `from` up to the last entry taken is taken now.
            taken.from = match seq.checked_add(1) {
                Some(next) => (priority, next),
                None => (priority.saturating_add(1), 0),
            };
        }
        for key in newly {
            if let Err(at) = taken.keys.binary_search(&key) {
                taken.keys.insert(at, key);
            }
        }
        Ok(ids)
    }

    /// Whether `name` has an entry in the ready index `def` that this batch has not taken.
    pub(crate) fn has_ready(&mut self, def: ReadyIndex, name: &str) -> Result<bool> {
        let taken = self.taken_at(def, name).map(|at| &self.taken[at]);
        let table = open_cached(self.tx, &mut self.ready_index, def)?;
        let Some(taken) = taken else {
            return Ok(table.range(ready_range(name))?.next().is_some());
        };
        for entry in table.range(taken.unread(name))? {
            let (key, _) = entry?;
            let (_, priority, seq) = key.value();
            if !taken.has((priority, seq)) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Adds `key` to the ready index `def` (without applying the batch's takes).
    pub(crate) fn insert_ready(
        &mut self,
        def: ReadyIndex,
        key: (&str, u32, u64),
        id: u64,
    ) -> Result<()> {
        if let Some(at) = self.taken_at(def, key.0) {
            let taken = &mut self.taken[at];
            let short = (key.1, key.2);
            // A key taken and put back in the same batch stays.
            if let Ok(at) = taken.keys.binary_search(&short) {
                taken.keys.remove(at);
            }
            taken.from = taken.from.min(short);
        }
        open_cached(self.tx, &mut self.ready_index, def)?.insert(key, id)?;
        Ok(())
    }

    /// Where the entries taken off `def` for `name` are noted, if any are.
    fn taken_at(&self, def: ReadyIndex, name: &str) -> Option<usize> {
        self.taken
            .iter()
            .position(|t| t.def.name() == def.name() && t.name == name)
    }

    /// Removes the entries taken off the ready index `name`.
    fn flush_taken(&mut self, name: &str) -> Result<()> {
        while let Some(at) = self.taken.iter().position(|t| t.def.name() == name) {
            let taken = self.taken.swap_remove(at);
            let (Some(first), Some(last)) = (taken.keys.first(), taken.keys.last()) else {
                continue;
            };
            let queue = taken.name.as_str();
            let range = (queue, first.0, first.1)..=(queue, last.0, last.1);
            open_cached(self.tx, &mut self.ready_index, taken.def)?
                .retain_in(range, |(_, priority, seq), _| !taken.has((priority, seq)))?;
        }
        Ok(())
    }

    /// Adds `key` (instant, id) to the grouped index `def`: it joins the batch's group, written
    /// when the batch ends.
    pub(crate) fn insert_grouped(&mut self, def: GroupedIndex, key: (u64, u64)) {
        match self
            .grouped
            .iter_mut()
            .find(|(d, _)| d.name() == def.name())
        {
            Some((_, keys)) => keys.push(key),
            None => self.grouped.push((def, vec![key])),
        }
    }

    /// Takes up to `limit` entries due at `now` (instant ≤ `now`) off the grouped index `def`,
    /// earliest group first: each group read is removed, and its entries not taken (not yet
    /// due, or past the limit) join this batch's group. The entries come back in group order,
    /// sorted within each group.
    pub(crate) fn take_due_grouped(
        &mut self,
        def: GroupedIndex,
        now: u64,
        limit: usize,
    ) -> Result<Vec<(u64, u64)>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let table = open_cached(self.tx, &mut self.grouped_index, def)?;
        let mut groups = Vec::new();
        let mut entries = 0;
        for row in table.range(..=(now, u64::MAX))? {
            let (key, value) = row?;
            let group = unpack_group(def.name(), value.value())?;
            entries += group.len();
            groups.push((key.value(), group));
            if entries >= limit {
                break;
            }
        }
        let mut taken = Vec::new();
        let mut kept = Vec::new();
        for (key, group) in groups {
            table.remove(key)?;
            for entry in group {
                if entry.0 <= now && taken.len() < limit {
                    taken.push(entry);
                } else {
                    kept.push(entry);
                }
            }
        }
        for entry in kept {
            self.insert_grouped(def, entry);
        }
        Ok(taken)
    }

    /// How many grouped indexes have a group to write when the batch ends.
    pub(crate) fn groups_pending(&self) -> usize {
        self.grouped.len()
    }

    /// What every batch does last, before its commit: the queued removals and the ready
    /// entries taken are applied, and each grouped index gets the batch's group, numbered from
    /// `numbers` (one per pending group, see [`TableCache::groups_pending`]).
    pub(crate) fn finish(&mut self, numbers: &[u64]) -> Result<()> {
        while let Some((def, _)) = self.removals.first() {
            let name = def.name().to_owned();
            self.flush_removals(&name)?;
        }
        while let Some(taken) = self.taken.first() {
            let name = taken.def.name().to_owned();
            self.flush_taken(&name)?;
        }
        let grouped = std::mem::take(&mut self.grouped);
        debug_assert_eq!(grouped.len(), numbers.len());
        for ((def, mut keys), number) in grouped.into_iter().zip(numbers) {
            keys.sort_unstable();
            let packed = pack_group(&keys);
            open_cached(self.tx, &mut self.grouped_index, def)?
                .insert((keys[0].0, *number), packed.as_slice())?;
        }
        Ok(())
    }
}

/// The table `def` from `slot`, opened and put there if it is not yet.
fn open_cached<'a, 's, K: Key + 'static, V: Value + 'static>(
    tx: &'a WriteTx,
    slot: &'s mut Vec<(String, LoggedTable<'a, K, V>)>,
    def: TableDefinition<'static, K, V>,
) -> Result<&'s mut LoggedTable<'a, K, V>> {
    let at = match slot.iter().position(|(n, _)| n == def.name()) {
        Some(at) => at,
        None => {
            slot.push((def.name().to_owned(), tx.open_table(def)?));
            slot.len() - 1
        }
    };
    Ok(&mut slot[at].1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INDEX: TableDefinition<(u64, u64), ()> = TableDefinition::new("index_test");

    /// A fresh database in a temporary folder (kept while the folder is).
    fn scratch_db() -> (tempfile::TempDir, redb::Database) {
        let dir = tempfile::tempdir().unwrap();
        let db = redb::Database::create(dir.path().join("t.redb")).unwrap();
        (dir, db)
    }

    fn keys(table: &redb::Table<'_, (u64, u64), ()>) -> Vec<(u64, u64)> {
        table
            .iter()
            .unwrap()
            .map(|e| e.unwrap().0.value())
            .collect()
    }

    #[test]
    fn queued_removals_apply_before_a_read_and_an_insert_cancels_its_own() {
        let (_dir, db) = scratch_db();
        let tx = WriteTx::new(db.begin_write().unwrap());
        {
            let mut tables = TableCache::new(&tx);
            for id in 1..=6 {
                tables.insert_indexed(INDEX, (100 + id, id)).unwrap();
            }
            tables.remove_later(INDEX, (102, 2));
            tables.remove_later(INDEX, (105, 5));
            tables.remove_later(INDEX, (103, 3));
            // Removed and put back in the same batch: it stays.
            tables.insert_indexed(INDEX, (103, 3)).unwrap();
            // A key that is not there is no error.
            tables.remove_later(INDEX, (999, 9));
            assert_eq!(
                keys(tables.table(INDEX).unwrap()),
                [(101, 1), (103, 3), (104, 4), (106, 6)]
            );
            tables.remove_later(INDEX, (101, 1));
            tables.finish(&[]).unwrap();
            assert_eq!(
                keys(&tables.time_index[0].1),
                [(103, 3), (104, 4), (106, 6)]
            );
        }
        tx.into_parts().0.commit().unwrap();
    }

    const READY: ReadyIndex = TableDefinition::new("ready_test");

    /// A ready index's rows: (name, priority key, sequence, id).
    fn ready_rows(
        table: &impl ReadableTable<(&'static str, u32, u64), u64>,
    ) -> Vec<(String, u32, u64, u64)> {
        table
            .iter()
            .unwrap()
            .map(|e| {
                let (k, v) = e.unwrap();
                let (name, priority, seq) = k.value();
                (name.to_owned(), priority, seq, v.value())
            })
            .collect()
    }

    fn row(name: &str, priority: u32, seq: u64, id: u64) -> (String, u32, u64, u64) {
        (name.to_owned(), priority, seq, id)
    }

    #[test]
    fn ready_entries_taken_are_passed_over_until_the_batch_removes_them_together() {
        let (_dir, db) = scratch_db();
        let tx = WriteTx::new(db.begin_write().unwrap());
        {
            let mut tables = TableCache::new(&tx);
            for seq in 1..=5 {
                tables
                    .insert_ready(READY, ("a", 10, seq), 100 + seq)
                    .unwrap();
            }
            tables.insert_ready(READY, ("b", 10, 6), 106).unwrap();
            assert_eq!(tables.take_ready(READY, "a", 2).unwrap(), [101, 102]);
            // Still in the table until the batch ends, but never handed out twice.
            assert_eq!(tables.take_ready(READY, "a", 1).unwrap(), [103]);
            // An entry of higher priority, added after those takes, comes first.
            tables.insert_ready(READY, ("a", 5, 7), 107).unwrap();
            assert_eq!(tables.take_ready(READY, "a", 10).unwrap(), [107, 104, 105]);
            assert!(!tables.has_ready(READY, "a").unwrap());
            assert!(tables.has_ready(READY, "b").unwrap());
            assert_eq!(tables.take_ready(READY, "c", 1).unwrap(), [] as [u64; 0]);
            tables.insert_ready(READY, ("a", 10, 8), 108).unwrap();
            assert!(tables.has_ready(READY, "a").unwrap());
            // Whoever reads the index through the cache sees the takes applied.
            assert_eq!(
                ready_rows(&**tables.table(READY).unwrap()),
                [row("a", 10, 8, 108), row("b", 10, 6, 106)]
            );
            assert_eq!(tables.take_ready(READY, "b", 1).unwrap(), [106]);
            // Taken and put back in the same batch: it stays.
            tables.insert_ready(READY, ("b", 10, 6), 106).unwrap();
            assert_eq!(tables.take_ready(READY, "a", 1).unwrap(), [108]);
            tables.finish(&[]).unwrap();
            assert_eq!(
                ready_rows(&*tables.ready_index[0].1),
                [row("b", 10, 6, 106)]
            );
        }
        // The batch's log record replays to the same index.
        let (wtx, changes) = tx.into_parts();
        wtx.commit().unwrap();
        let (_other_dir, other) = scratch_db();
        let wtx = other.begin_write().unwrap();
        super::super::change::replay(&wtx, &changes.into_bytes(), &[&READY]).unwrap();
        assert_eq!(
            ready_rows(&wtx.open_table(READY).unwrap()),
            [row("b", 10, 6, 106)]
        );
        wtx.commit().unwrap();
    }

    const GROUPED: GroupedIndex = TableDefinition::new("grouped_test");

    /// A group's key and its entries.
    type Group = ((u64, u64), Vec<(u64, u64)>);

    fn groups(table: &redb::Table<'_, (u64, u64), &[u8]>) -> Vec<Group> {
        table
            .iter()
            .unwrap()
            .map(|e| {
                let (k, v) = e.unwrap();
                (k.value(), unpack_group("grouped_test", v.value()).unwrap())
            })
            .collect()
    }

    #[test]
    fn a_batch_writes_one_group_and_taking_due_entries_refiles_the_rest() {
        let (_dir, db) = scratch_db();
        let tx = WriteTx::new(db.begin_write().unwrap());
        {
            let mut tables = TableCache::new(&tx);
            for (at, id) in [(300, 3), (100, 1), (200, 2)] {
                tables.insert_grouped(GROUPED, (at, id));
            }
            assert_eq!(tables.groups_pending(), 1);
            tables.finish(&[7]).unwrap();
            // One row, keyed by its earliest instant and its number, the entries sorted.
            assert_eq!(
                groups(&tables.grouped_index[0].1),
                [((100, 7), vec![(100, 1), (200, 2), (300, 3)])]
            );
            assert_eq!(tables.groups_pending(), 0);
        }
        {
            let mut tables = TableCache::new(&tx);
            tables.insert_grouped(GROUPED, (150, 4));
            tables.finish(&[8]).unwrap();
        }
        {
            let mut tables = TableCache::new(&tx);
            // Nothing is due before the earliest instant.
            assert_eq!(tables.take_due_grouped(GROUPED, 99, 10).unwrap(), []);
            assert_eq!(tables.groups_pending(), 0);
            // Due at 200, at most 2: groups are read in key order until the limit is reached
            // (the second is not read); what a group read holds and is not taken (not due, or
            // past the limit) joins this batch's group.
            assert_eq!(
                tables.take_due_grouped(GROUPED, 200, 2).unwrap(),
                [(100, 1), (200, 2)]
            );
            tables.finish(&[9]).unwrap();
            assert_eq!(
                groups(&tables.grouped_index[0].1),
                [((150, 8), vec![(150, 4)]), ((300, 9), vec![(300, 3)])]
            );
            // A limit of 0 leaves the groups alone.
            assert_eq!(tables.take_due_grouped(GROUPED, 1_000, 0).unwrap(), []);
            assert_eq!(tables.groups_pending(), 0);
            assert_eq!(
                tables.take_due_grouped(GROUPED, 1_000, 10).unwrap(),
                [(150, 4), (300, 3)]
            );
            tables.finish(&[]).unwrap();
            assert_eq!(groups(&tables.grouped_index[0].1), []);
        }
        tx.into_parts().0.commit().unwrap();
    }

    #[test]
    fn a_group_that_is_not_whole_entries_is_corrupt() {
        assert_eq!(unpack_group("t", &[0; 32]).unwrap(), [(0, 0), (0, 0)]);
        let e = unpack_group("job_purges", &[0; 17]).unwrap_err();
        assert!(
            e.to_string().contains("job_purges: a group of 17 bytes"),
            "{e}"
        );
    }
}
