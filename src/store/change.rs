//! A write batch's changes as the log records them. Every write to the file goes through a
//! [`WriteTx`]: its tables ([`LoggedTable`]) note each put and delete, key and value as redb
//! encodes them, so the batch can be made durable by appending those bytes to the log instead
//! of by a durable commit of the B-tree. After a crash, [`replay`] applies a record's changes
//! again, table by table, through the same types.
//!
//! A table read through a [`LoggedTable`] is the plain redb table (it derefs to one); a write
//! has no way around the log, since the wrapper gives no mutable access to the table inside.

use std::borrow::Borrow;
use std::cell::RefCell;
use std::ops::{Deref, RangeBounds};

use redb::{AccessGuard, Key, Table, TableDefinition, TableHandle, Value, WriteTransaction};

use super::tables::Schema;
use crate::error::{Error, Result};

/// An entry that gives the next table number its name.
const NAME: u8 = 0;
/// A put: table number, key, value.
const PUT: u8 = 1;
/// A delete: table number, key.
const DELETE: u8 = 2;

/// The changes of one batch, in the order they were made.
#[derive(Default)]
pub(crate) struct Changes {
    bytes: Vec<u8>,
    /// The tables named so far, by number.
    names: Vec<String>,
}

impl Changes {
    /// The number of table `name` in this record, naming it on its first use.
    fn table(&mut self, name: &str) -> u16 {
        if let Some(at) = self.names.iter().position(|n| n == name) {
            return at as u16;
        }
        self.bytes.push(NAME);
        put_bytes(&mut self.bytes, name.as_bytes());
        self.names.push(name.to_owned());
        (self.names.len() - 1) as u16
    }

    fn put(&mut self, table: u16, key: &[u8], value: &[u8]) {
        self.bytes.push(PUT);
        self.bytes.extend_from_slice(&table.to_le_bytes());
        put_bytes(&mut self.bytes, key);
        put_bytes(&mut self.bytes, value);
    }

    fn delete(&mut self, table: u16, key: &[u8]) {
        self.bytes.push(DELETE);
        self.bytes.extend_from_slice(&table.to_le_bytes());
        put_bytes(&mut self.bytes, key);
    }

    /// Whether nothing was changed.
    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The encoded changes, ready for the log.
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut len = bytes.len() as u64;
    loop {
        let low = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(low);
            break;
        }
        out.push(low | 0x80);
    }
    out.extend_from_slice(bytes);
}

/// A write transaction whose every change is noted for the log.
pub(crate) struct WriteTx {
    tx: WriteTransaction,
    changes: RefCell<Changes>,
}

impl WriteTx {
    pub(crate) fn new(tx: WriteTransaction) -> WriteTx {
        WriteTx {
            tx,
            changes: RefCell::new(Changes::default()),
        }
    }

    /// The table `def`, its writes noted.
    pub(crate) fn open_table<K: Key + 'static, V: Value + 'static>(
        &self,
        def: TableDefinition<'static, K, V>,
    ) -> Result<LoggedTable<'_, K, V>> {
        let table = self.tx.open_table(def)?;
        let number = self.changes.borrow_mut().table(def.name());
        Ok(LoggedTable {
            table,
            changes: &self.changes,
            number,
        })
    }

    /// The application table stored as `name` (prefix included), its writes noted. Made if
    /// the file lacks it.
    pub(crate) fn open_app_table(
        &self,
        name: &str,
    ) -> Result<LoggedTable<'_, &'static [u8], &'static [u8]>> {
        let table = self.tx.open_table(super::tables::AppTable::new(name))?;
        let number = self.changes.borrow_mut().table(name);
        Ok(LoggedTable {
            table,
            changes: &self.changes,
            number,
        })
    }

    /// The transaction itself, for what the store does outside any batch's changes (creating
    /// tables, committing).
    pub(crate) fn inner(&self) -> &WriteTransaction {
        &self.tx
    }

    /// Ends the batch: the transaction to commit and the changes it made.
    pub(crate) fn into_parts(self) -> (WriteTransaction, Changes) {
        (self.tx, self.changes.into_inner())
    }
}

/// An open table of a [`WriteTx`]: reads as the redb table, writes noted for the log.
pub(crate) struct LoggedTable<'t, K: Key + 'static, V: Value + 'static> {
    table: Table<'t, K, V>,
    changes: &'t RefCell<Changes>,
    number: u16,
}

impl<'t, K: Key + 'static, V: Value + 'static> Deref for LoggedTable<'t, K, V> {
    type Target = Table<'t, K, V>;

    fn deref(&self) -> &Table<'t, K, V> {
        &self.table
    }
}

impl<K: Key + 'static, V: Value + 'static> LoggedTable<'_, K, V> {
    /// Inserts `value` under `key`, returning the value it replaced.
    pub(crate) fn insert<'k, 'v>(
        &mut self,
        key: impl Borrow<K::SelfType<'k>>,
        value: impl Borrow<V::SelfType<'v>>,
    ) -> Result<Option<AccessGuard<'_, V>>> {
        self.changes.borrow_mut().put(
            self.number,
            K::as_bytes(key.borrow()).as_ref(),
            V::as_bytes(value.borrow()).as_ref(),
        );
        Ok(self.table.insert(key, value)?)
    }

    /// Removes `key`, returning the value it held.
    pub(crate) fn remove<'k>(
        &mut self,
        key: impl Borrow<K::SelfType<'k>>,
    ) -> Result<Option<AccessGuard<'_, V>>> {
        let removed = self.table.remove(key.borrow())?;
        if removed.is_some() {
            self.changes
                .borrow_mut()
                .delete(self.number, K::as_bytes(key.borrow()).as_ref());
        }
        Ok(removed)
    }

    /// Removes every entry in `range` for which `keep` is false.
    pub(crate) fn retain_in<'a, KR>(
        &mut self,
        range: impl RangeBounds<KR> + 'a,
        mut keep: impl for<'f> FnMut(K::SelfType<'f>, V::SelfType<'f>) -> bool,
    ) -> Result<()>
    where
        KR: Borrow<K::SelfType<'a>> + 'a,
    {
        let changes = self.changes;
        let number = self.number;
        // The key's bytes, for the log, are taken before `keep` consumes the key: into one
        // buffer, reused for every entry visited.
        let mut bytes = Vec::new();
        self.table.retain_in(range, |key, value| {
            bytes.clear();
            bytes.extend_from_slice(K::as_bytes(&key).as_ref());
            let kept = keep(key, value);
            if !kept {
                changes.borrow_mut().delete(number, &bytes);
            }
            kept
        })?;
        Ok(())
    }
}

/// One change read back from a record.
enum Change<'r> {
    Put(&'r [u8], &'r [u8]),
    Delete(&'r [u8]),
}

/// Applies a record's changes to `tx`, table by table (changes to one table keep their order;
/// changes to different tables commute). `tables` are every table the file can hold.
pub(crate) fn replay(
    tx: &WriteTransaction,
    record: &[u8],
    tables: &[&'static dyn super::SchemaTable],
) -> Result<()> {
    let bad = |detail: &str| Error::Corrupt {
        table: "write-ahead log",
        detail: format!("a record that passed its checksum does not decode: {detail}"),
    };
    let mut names: Vec<&str> = Vec::new();
    let mut by_table: Vec<Vec<Change<'_>>> = Vec::new();
    let mut at = 0;
    while at < record.len() {
        let kind = record[at];
        at += 1;
        match kind {
            NAME => {
                let name = take_bytes(record, &mut at).ok_or_else(|| bad("a table name"))?;
                names.push(std::str::from_utf8(name).map_err(|_| bad("a table name"))?);
                by_table.push(Vec::new());
            }
            PUT | DELETE => {
                let number = record
                    .get(at..at + 2)
                    .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
                    .ok_or_else(|| bad("a table number"))?;
                at += 2;
                let key = take_bytes(record, &mut at).ok_or_else(|| bad("a key"))?;
                let change = if kind == PUT {
                    Change::Put(
                        key,
                        take_bytes(record, &mut at).ok_or_else(|| bad("a value"))?,
                    )
                } else {
                    Change::Delete(key)
                };
                by_table
                    .get_mut(number)
                    .ok_or_else(|| bad("an unnamed table"))?
                    .push(change);
            }
            _ => return Err(bad("an unknown change kind")),
        }
    }
    for (name, changes) in names.iter().zip(&by_table) {
        if changes.is_empty() {
            continue;
        }
        let mut changes = changes.iter().map(|c| match c {
            Change::Put(k, v) => (*k, Some(*v)),
            Change::Delete(k) => (*k, None),
        });
        match tables.iter().find(|t| t.table_name() == *name) {
            Some(table) => table.replay(tx, &mut changes)?,
            // An application's table: bytes to bytes, whatever its name.
            None if name.starts_with(super::tables::APP_TABLE_PREFIX) => {
                let mut table = tx.open_table(super::tables::AppTable::new(name))?;
                for (key, value) in changes {
                    match value {
                        Some(value) => table.insert(key, value)?,
                        None => table.remove(key)?,
                    };
                }
            }
            None => {
                return Err(Error::Corrupt {
                    table: "write-ahead log",
                    detail: format!(
                        "a record changes table {name}, which this build does not know"
                    ),
                });
            }
        }
    }
    Ok(())
}

fn take_bytes<'r>(record: &'r [u8], at: &mut usize) -> Option<&'r [u8]> {
    let mut len = 0u64;
    let mut shift = 0;
    loop {
        let byte = *record.get(*at)?;
        *at += 1;
        len |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
    let end = at.checked_add(usize::try_from(len).ok()?)?;
    let bytes = record.get(*at..end)?;
    *at = end;
    Some(bytes)
}

/// Every table a record can change: the store's own and those of `schema`.
pub(crate) fn all_tables(schema: &Schema) -> Vec<&'static dyn super::SchemaTable> {
    let mut tables: Vec<&'static dyn super::SchemaTable> = vec![&super::meta::META];
    tables.extend(schema.iter().flat_map(|t| t.iter().copied()));
    tables
}

#[cfg(test)]
mod tests {
    use redb::{Database, ReadableDatabase, ReadableTable};

    use super::*;

    fn memory_db() -> Database {
        Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .unwrap()
    }

    #[test]
    fn an_application_tables_changes_replay_without_being_declared() {
        let first = memory_db();
        let tx = WriteTx::new(first.begin_write().unwrap());
        {
            let mut orders = tx.open_app_table("app:orders").unwrap();
            orders.insert(&b"1"[..], &b"paid"[..]).unwrap();
            orders.insert(&b"2"[..], &b"open"[..]).unwrap();
            orders.remove(&b"1"[..]).unwrap();
        }
        let (_, changes) = tx.into_parts();
        let record = changes.into_bytes();

        let second = memory_db();
        let wtx = second.begin_write().unwrap();
        replay(&wtx, &record, &[]).unwrap();
        wtx.commit().unwrap();
        let rtx = second.begin_read().unwrap();
        let orders = rtx
            .open_table(super::super::tables::AppTable::new("app:orders"))
            .unwrap();
        let rows: Vec<(Vec<u8>, Vec<u8>)> = orders
            .iter()
            .unwrap()
            .map(|e| {
                let (k, v) = e.unwrap();
                (k.value().to_vec(), v.value().to_vec())
            })
            .collect();
        assert_eq!(rows, [(b"2".to_vec(), b"open".to_vec())]);

        // A table that is neither declared nor an application's is a corrupt record.
        let tx = WriteTx::new(first.begin_write().unwrap());
        {
            let def: redb::TableDefinition<'_, &[u8], &[u8]> = redb::TableDefinition::new("other");
            let table = tx.inner().open_table(def).unwrap();
            drop(table);
            let number = tx.changes.borrow_mut().table("other");
            tx.changes.borrow_mut().put(number, b"k", b"v");
        }
        let (_, changes) = tx.into_parts();
        let wtx = second.begin_write().unwrap();
        assert!(matches!(
            replay(&wtx, &changes.into_bytes(), &[]),
            Err(Error::Corrupt { .. })
        ));
    }
}
