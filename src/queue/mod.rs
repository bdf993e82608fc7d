//! The queue: raw work distribution with leases, redelivery and a dead-letter list.
//!
//! A message is sent, received under a lease, and then acknowledged (gone), nacked (back in
//! line, optionally after a delay) or dead-lettered. A lease that runs out redelivers the
//! message; after `max_deliveries` deliveries, or past `max_age`, it moves to the dead-letter
//! list with its reason and last error.

pub(crate) mod backend;
pub(crate) mod core;
mod delivery;
mod handle;
mod info;
pub(crate) mod ops;
mod options;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
pub(crate) mod record;
mod redb;
mod rows;
mod send;
pub(crate) mod storage;
pub(crate) mod tables;

pub use delivery::Delivery;
pub use handle::Queue;
pub use info::{DeadLetter, MessageInfo, MessageStatus, QueueStats, QueueSummary, SendReceipt};
pub use options::QueueOptions;
pub use record::DeadReason;
pub use send::SendMessage;
