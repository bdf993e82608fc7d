//! Stored records <-> bytes, and the order-preserving key pieces.
//!
//! Records are postcard-encoded. Postcard stores no field names, so every record type is a
//! versioned enum (`V1`, later `V2`, ...): new versions are added as new variants, old variants
//! are never changed, and a file written by an older jobfile still decodes.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// Encodes a stored record.
pub(crate) fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    // Serializing plain data into a Vec cannot fail: no I/O, no unsupported types.
    postcard::to_allocvec(record).unwrap_or_default()
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
    fn priority_key_sorts_descending() {
        let ps = [i32::MIN, -5, -1, 0, 1, 7, i32::MAX];
        let keys: Vec<u32> = ps.iter().map(|p| priority_key(*p)).collect();
        for w in keys.windows(2) {
            assert!(w[0] > w[1], "{keys:?}");
        }
    }
}
