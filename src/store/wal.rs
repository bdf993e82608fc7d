//! The write-ahead log beside the file (`<file>.wal`, as SQLite keeps `-wal` beside its
//! database). Each batch's changes are appended as one checksummed record and made durable
//! with one `fdatasync`; the B-tree commits the same batch without a sync. A checkpoint (a
//! durable commit of the B-tree) makes every record before it redundant, and the log starts
//! over from its beginning.
//!
//! Records name their generation: a random number the file's metadata records at each
//! checkpoint. At open, the records of the file's generation are replayed in order, up to the
//! first that is torn, damaged or left from an earlier generation (bytes past the end of the
//! current one). A record that does not check out was never acknowledged: its batch's callers
//! are answered only once the record is durable.
//!
//! The file is never shortened: it is reused from its beginning after each checkpoint, and grows
//! in zero-filled steps, so a sync rarely has the file's size to write as well.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::faults::FaultInjector;
use crate::error::{Error, Result};

const MAGIC: u32 = 0x4c57_464a; // "JFWL"
/// magic u32, generation u64, sequence u64, payload length u32, checksum u32.
const HEADER: usize = 28;
/// How much the file grows by, zero-filled, when a record would pass its end.
const GROW_BY: u64 = 1 << 20;

/// The log's path for the file at `path`.
pub(crate) fn path_for(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".wal");
    PathBuf::from(name)
}

/// A new generation number: random, so a record left by any earlier generation (or by another
/// file that had this path) cannot pass for one of the new generation.
pub(crate) fn new_generation() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.write_u32(std::process::id());
    hasher.finish().max(1)
}

/// Appends `payload` framed as record `seq` of `generation` to `out`.
pub(crate) fn frame(generation: u64, seq: u64, payload: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&generation.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&out[start + 4..start + 24]);
    crc.update(payload);
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(payload);
}

/// The records of `generation` at the start of `log`, in order: numbered 1, 2, 3, … with
/// nothing between them, up to the first that is torn, damaged, misnumbered or of another
/// generation.
pub(crate) fn records(log: &[u8], generation: u64) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut at = 0usize;
    let mut expect = 1u64;
    while let Some(head) = log.get(at..at + HEADER) {
        let word = |range: std::ops::Range<usize>| &head[range];
        let magic = u32::from_le_bytes(word(0..4).try_into().unwrap_or_default());
        let r#gen = u64::from_le_bytes(word(4..12).try_into().unwrap_or_default());
        let seq = u64::from_le_bytes(word(12..20).try_into().unwrap_or_default());
        let len = u32::from_le_bytes(word(20..24).try_into().unwrap_or_default()) as usize;
        let sum = u32::from_le_bytes(word(24..28).try_into().unwrap_or_default());
        if magic != MAGIC || r#gen != generation || seq != expect {
            break;
        }
        let Some(payload) = log.get(at + HEADER..at + HEADER + len) else {
            break;
        };
        let mut crc = crc32fast::Hasher::new();
        crc.update(&head[4..24]);
        crc.update(payload);
        if crc.finalize() != sum {
            break;
        }
        out.push(payload);
        at += HEADER + len;
        expect += 1;
    }
    out
}

/// The open log file and where the next record goes.
pub(crate) struct Wal {
    file: Arc<File>,
    handle: SyncHandle,
    /// Where the next record is written.
    offset: u64,
    /// The file's length: bytes up to here exist (records or zeros).
    len: u64,
}

impl Wal {
    /// Opens (or creates) the log of the file at `path`, returning it and its whole content.
    pub(crate) fn open(path: &Path, faults: Option<FaultInjector>) -> Result<(Wal, Vec<u8>)> {
        let path = path_for(path);
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        let mut content = Vec::new();
        file.read_to_end(&mut content).map_err(io)?;
        let file = Arc::new(file);
        if !existed {
            super::sync_parent_dir(&path).map_err(io)?;
        }
        let len = content.len() as u64;
        Ok((
            Wal {
                file: file.clone(),
                handle: SyncHandle { path, file, faults },
                offset: 0,
                len,
            },
            content,
        ))
    }

    /// Writes `bytes` (whole records) after the last record, growing the file first if they
    /// would pass its end. Not durable until [`Wal::sync`].
    pub(crate) fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if let Some(faults) = &self.handle.faults {
            faults.before_write(bytes.len())?;
        }
        let end = self.offset + bytes.len() as u64;
        if end > self.len {
            let grown = end.div_ceil(GROW_BY) * GROW_BY;
            write_at(&self.file, &vec![0; (grown - self.len) as usize], self.len)?;
            self.len = grown;
        }
        write_at(&self.file, bytes, self.offset)?;
        self.offset = end;
        Ok(())
    }

    /// Makes what was appended durable.
    pub(crate) fn sync(&self) -> std::io::Result<()> {
        self.handle.sync()
    }

    /// What syncs this log from another thread.
    pub(crate) fn sync_handle(&self) -> SyncHandle {
        self.handle.clone()
    }

    /// Why the engine is poisoned after writing or syncing the log failed with `e`.
    pub(crate) fn failure(&self, e: &std::io::Error) -> String {
        self.handle.failure(e)
    }

    /// Starts over from the beginning (after a checkpoint made every record redundant).
    pub(crate) fn restart(&mut self) {
        self.offset = 0;
    }
}

/// What makes a log's writes durable, shareable with a thread that syncs while the writer
/// goes on writing.
#[derive(Clone)]
pub(crate) struct SyncHandle {
    path: PathBuf,
    file: Arc<File>,
    faults: Option<FaultInjector>,
}

impl SyncHandle {
    /// Makes everything written to the log so far durable.
    pub(crate) fn sync(&self) -> std::io::Result<()> {
        if let Some(faults) = &self.faults
            && !faults.before_sync()?
        {
            return Ok(());
        }
        self.file.sync_data()
    }

    /// Why the engine is poisoned after writing or syncing the log failed with `e`.
    pub(crate) fn failure(&self, e: &std::io::Error) -> String {
        format!(
            "writing the write-ahead log {} failed: {e}",
            self.path.display()
        )
    }
}

#[cfg(unix)]
fn write_at(file: &File, bytes: &[u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, bytes, offset)
}

#[cfg(windows)]
fn write_at(file: &File, mut bytes: &[u8], mut offset: u64) -> std::io::Result<()> {
    while !bytes.is_empty() {
        let n = std::os::windows::fs::FileExt::seek_write(file, bytes, offset)?;
        bytes = &bytes[n..];
        offset += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_of(generation: u64, payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, p) in payloads.iter().enumerate() {
            frame(generation, i as u64 + 1, p, &mut out);
        }
        out
    }

    #[test]
    fn records_of_the_generation_are_read_back_in_order() {
        let log = log_of(7, &[b"one", b"", b"three"]);
        assert_eq!(records(&log, 7), [&b"one"[..], b"", b"three"]);
        // Another generation's records are not this one's.
        assert!(records(&log, 8).is_empty());
    }

    #[test]
    fn reading_stops_at_a_torn_or_damaged_record() {
        let log = log_of(7, &[b"one", b"two", b"three"]);
        // Torn: the last record cut anywhere inside it.
        let last = log.len() - (HEADER + 5);
        for cut in last..log.len() {
            assert_eq!(
                records(&log[..cut], 7),
                [&b"one"[..], b"two"],
                "cut at {cut}"
            );
        }
        // Damaged: any byte of the second record flipped.
        let second = HEADER + 3;
        for at in second..second + HEADER + 3 {
            let mut bad = log.clone();
            bad[at] ^= 0x40;
            assert_eq!(records(&bad, 7), [&b"one"[..]], "flipped byte {at}");
        }
    }

    #[test]
    fn an_older_generation_past_the_end_is_not_read() {
        // Generation 5 wrote three records; after a checkpoint generation 9 wrote one over the
        // first. What follows it is 5's, and ends the read.
        let mut log = log_of(5, &[b"old-1", b"old-2", b"old-3"]);
        let new = log_of(9, &[b"new-1"]);
        log[..new.len()].copy_from_slice(&new);
        assert_eq!(records(&log, 9), [&b"new-1"[..]]);
        // A record out of sequence (a stale one of the same generation) ends it too.
        let mut skipped = Vec::new();
        frame(9, 1, b"a", &mut skipped);
        frame(9, 3, b"c", &mut skipped);
        assert_eq!(records(&skipped, 9), [&b"a"[..]]);
        // Zeros (the file's grown end) end it.
        let mut zeros = log_of(9, &[b"a"]);
        zeros.extend_from_slice(&[0; 64]);
        assert_eq!(records(&zeros, 9), [&b"a"[..]]);
    }

    #[test]
    fn appends_grow_the_file_in_zeroed_steps_and_restart_from_the_beginning() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("f.jobfile");
        let (mut wal, content) = Wal::open(&data, None).unwrap();
        assert!(content.is_empty());
        let mut bytes = Vec::new();
        frame(3, 1, b"hello", &mut bytes);
        wal.append(&bytes).unwrap();
        wal.sync().unwrap();
        assert_eq!(std::fs::metadata(path_for(&data)).unwrap().len(), GROW_BY);
        wal.restart();
        let mut again = Vec::new();
        frame(4, 1, b"hi", &mut again);
        wal.append(&again).unwrap();
        drop(wal);
        let (_, content) = Wal::open(&data, None).unwrap();
        assert_eq!(records(&content, 4), [&b"hi"[..]]);
        assert!(records(&content, 3).is_empty());
    }
}
