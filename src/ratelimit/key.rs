//! How an identifier is stored: as itself when short, else as its SHA-256, so every stored
//! key has a bounded size whatever callers pass (a URL, a header, a token). A tag byte keeps
//! the two kinds apart.

use sha2::{Digest, Sha256};

/// Identifiers up to this many bytes are stored as they are.
pub(crate) const MAX_PLAIN: usize = 64;

const PLAIN: u8 = 0;
const HASHED: u8 = 1;

/// The stored key of `identifier`: at most 65 bytes.
pub(crate) fn identifier_key(identifier: &str) -> Vec<u8> {
    let bytes = identifier.as_bytes();
    let mut key = Vec::with_capacity(1 + MAX_PLAIN);
    if bytes.len() <= MAX_PLAIN {
        key.push(PLAIN);
        key.extend_from_slice(bytes);
    } else {
        key.push(HASHED);
        key.extend_from_slice(&Sha256::digest(bytes));
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_identifiers_are_kept_and_long_ones_hashed_to_a_fixed_size() {
        assert_eq!(identifier_key("ip:10.0.0.1"), b"\0ip:10.0.0.1".to_vec());
        let long = "x".repeat(MAX_PLAIN + 1);
        let huge = "y".repeat(1 << 20);
        assert_eq!(identifier_key(&long).len(), 33);
        assert_eq!(identifier_key(&huge).len(), 33);
        assert_ne!(identifier_key(&long), identifier_key(&huge));
        assert_eq!(identifier_key(&long), identifier_key(&long.clone()));
        assert_eq!(identifier_key(&"z".repeat(MAX_PLAIN)).len(), MAX_PLAIN + 1);
    }
}
