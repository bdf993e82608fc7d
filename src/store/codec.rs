//! Stored records <-> bytes, and the order-preserving key pieces.
//!
//! Records are postcard-encoded. Postcard stores no field names, so every record type is a
//! versioned enum (`V1`, later `V2`, ...): new versions are added as new variants, old variants
//! are never changed, and a file written by an older jobfile still decodes.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// Room reserved for a record before encoding it: most records (a plain job, a queue message
/// of a few hundred bytes) fit, so the buffer is allocated once rather than regrown from empty.
const ENCODE_RESERVE: usize = 256;

/// Encodes a stored record.
pub(crate) fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    // Serializing plain data into a Vec cannot fail: no I/O, no unsupported types.
    postcard::serialize_with_flavor(record, Reserved(Vec::with_capacity(ENCODE_RESERVE)))
        .unwrap_or_default()
}

/// Postcard's `Vec` output, starting from a reserved buffer.
struct Reserved(Vec<u8>);

impl postcard::ser_flavors::Flavor for Reserved {
    type Output = Vec<u8>;

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<Vec<u8>> {
        Ok(self.0)
    }
}

/// Decodes a stored record, naming the table on failure.
pub(crate) fn decode<T: DeserializeOwned>(table: &'static str, bytes: &[u8]) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|e| Error::Corrupt {
        table,
        detail: e.to_string(),
    })
}

/// Maps a priority to a key component that sorts higher priorities first.
pub(crate) fn priority_key(priority: i32) -> u32 {
    // Flip the sign bit for an order-preserving unsigned form, then invert for descending order.
    !((priority as u32) ^ 0x8000_0000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_bytes_postcard_gives_whatever_the_size() {
        for len in [0usize, 10, ENCODE_RESERVE, ENCODE_RESERVE * 5] {
            let record = (7u64, "x".repeat(len), vec![1u32; len]);
            let bytes = encode(&record);
            assert_eq!(bytes, postcard::to_allocvec(&record).expect("encodes"));
            let back: (u64, String, Vec<u32>) = decode("test", &bytes).expect("decodes");
            assert_eq!(back, record);
        }
    }

    #[test]
    fn priority_key_sorts_descending() {
        let ps = [i32::MIN, -5, -1, 0, 1, 7, i32::MAX];
        let keys: Vec<u32> = ps.iter().map(|p| priority_key(*p)).collect();
        for w in keys.windows(2) {
            assert!(w[0] > w[1], "{keys:?}");
        }
    }
}
