//! Named mutexes with fencing: a lease with an owner and a fencing token that grows with every
//! acquisition (of any mutex of the file, across restarts), so a resource guarded by the mutex
//! can refuse a writer whose lease has been taken over.

mod backend;
pub(crate) mod core;
mod handle;
mod lease;
mod ops;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
pub(crate) mod record;
mod redb;
mod storage;
pub(crate) mod tables;

pub use handle::FencedMutex;
pub use lease::MutexLease;
