//! The rate limiter's stored record. Versioned: only ever add variants.

use serde::{Deserialize, Serialize};

use super::window::Counts;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum StoredCounts {
    V1(CountsV1),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CountsV1 {
    pub(crate) window_ms: u64,
    pub(crate) start: u64,
    pub(crate) current: u64,
    pub(crate) previous: u64,
}

impl From<CountsV1> for Counts {
    fn from(c: CountsV1) -> Counts {
        Counts {
            window_ms: c.window_ms,
            start: c.start,
            current: c.current,
            previous: c.previous,
        }
    }
}

impl From<Counts> for CountsV1 {
    fn from(c: Counts) -> CountsV1 {
        CountsV1 {
            window_ms: c.window_ms,
            start: c.start,
            current: c.current,
            previous: c.previous,
        }
    }
}

impl From<StoredCounts> for Counts {
    fn from(stored: StoredCounts) -> Counts {
        let StoredCounts::V1(c) = stored;
        c.into()
    }
}

impl From<Counts> for StoredCounts {
    fn from(c: Counts) -> StoredCounts {
        StoredCounts::V1(c.into())
    }
}

/// Decodes a stored counts record (for the fuzz targets).
#[cfg(feature = "testing")]
pub(crate) fn decode_counts_record(bytes: &[u8]) -> crate::Result<()> {
    let StoredCounts::V1(_) = crate::store::codec::decode("rate_limits", bytes)?;
    Ok(())
}
