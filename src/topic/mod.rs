//! Topics: append-only event streams with per-topic sequence numbers, live subscriptions, and
//! consumer groups with a durable committed cursor and redelivery of what was not committed.

mod backend;
pub(crate) mod core;
mod group;
mod handle;
mod info;
mod ops;
mod options;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
mod publish;
pub(crate) mod record;
mod redb;
mod rows;
mod storage;
pub(crate) mod tables;

pub use group::ConsumerGroup;
pub use handle::{Topic, TopicStream};
pub use info::{GroupDelivery, GroupSummary, Published, StartAt, TopicEvent, TopicSummary};
pub use options::TopicOptions;
pub use publish::PublishEvent;
