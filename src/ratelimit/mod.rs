//! Rate limiting: named sliding-window limiters whose counts per identifier live in the file
//! (or the PostgreSQL schema), so limits hold across restarts and, on PostgreSQL, across
//! nodes.

mod backend;
pub(crate) mod core;
mod handle;
mod key;
mod ops;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
pub(crate) mod record;
mod redb;
mod storage;
pub(crate) mod tables;
pub(crate) mod window;

pub use handle::RateLimit;
pub use window::RateLimitCheck;
