//! The rate limiter's storage seam: its named operations.

use super::window::{RateLimitCheck, Window};
use crate::error::Result;

/// The named operations of the rate limiter. `key` is the stored form of an identifier
/// (see [`super::key::identifier_key`]).
pub(crate) trait RateLimitStorage {
    /// Counts one check of `key` under limiter `name` with `window`'s rule.
    async fn check(&self, name: &str, key: &[u8], window: Window) -> Result<RateLimitCheck>;
    /// Forgets `key`'s counts under `name`; false if it had none.
    async fn reset(&self, name: &str, key: &[u8]) -> Result<bool>;
    /// Drops counts that no longer matter (bounded); returns when the next ones stop
    /// mattering.
    async fn sweep(&self) -> Result<Option<u64>>;
}
