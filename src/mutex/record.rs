//! The mutex's stored record. Versioned: only ever add variants.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum StoredLease {
    V1(LeaseV1),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LeaseV1 {
    pub(crate) owner: String,
    pub(crate) token: u64,
    pub(crate) expires_at: u64,
}

/// Decodes a stored lease record (for the fuzz targets).
#[cfg(feature = "testing")]
pub(crate) fn decode_lease_record(bytes: &[u8]) -> crate::Result<()> {
    let StoredLease::V1(_) = crate::store::codec::decode("mutexes", bytes)?;
    Ok(())
}
