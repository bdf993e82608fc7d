//! [`PublishEvent`]: a publish being built, stored when awaited.

use std::future::{Future, IntoFuture};
use std::pin::Pin;

use super::core::TopicCore;
use super::info::Published;
use super::options::TopicOptions;
use super::storage::{TopicPublish, TopicStorage};
use crate::clock::millis;
use crate::error::{Error, Result, check_name};

/// A publish being prepared; `.await` it to store the event (durable when it returns).
#[must_use = "a publish does nothing until it is awaited"]
#[derive(Debug)]
pub struct PublishEvent<'t> {
    core: &'t TopicCore,
    topic: &'t str,
    options: &'t TopicOptions,
    payload: Vec<u8>,
    key: Option<String>,
}

impl<'t> PublishEvent<'t> {
    pub(crate) fn new(
        core: &'t TopicCore,
        topic: &'t str,
        options: &'t TopicOptions,
        payload: Vec<u8>,
    ) -> Self {
        PublishEvent {
            core,
            topic,
            options,
            payload,
            key: None,
        }
    }

    /// An idempotency key: while an event published with this key is retained, publishing
    /// again with it returns that event's sequence number (`deduplicated`) and stores nothing.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    async fn run(self) -> Result<Published> {
        if let Some(key) = &self.key {
            check_name("topic key", key)?;
        }
        let limit = self.options.payload_limit;
        if self.payload.len() > limit {
            return Err(Error::PayloadTooLarge {
                size: self.payload.len(),
                limit,
            });
        }
        let publish = TopicPublish {
            topic: self.topic.to_string(),
            key: self.key,
            payload: self.payload,
            retention_ms: millis(self.options.retention),
            max_events: self.options.max_events,
        };
        self.core.backend.publish(publish).await
    }
}

impl<'t> IntoFuture for PublishEvent<'t> {
    type Output = Result<Published>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<Published>> + Send + 't>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}
