//! [`SendMessage`]: a send being built, stored when awaited.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::core::QueueCore;
use super::info::SendReceipt;
use super::options::QueueOptions;
use super::storage::{NewMessage, QueueStorage};
use crate::clock::millis;
use crate::error::{Error, Result, check_key};

/// A send being prepared; `.await` it to store the message.
#[must_use = "a send does nothing until it is awaited"]
#[derive(Debug)]
pub struct SendMessage<'q> {
    core: &'q QueueCore,
    queue: &'q str,
    options: &'q QueueOptions,
    payload: Vec<u8>,
    priority: i32,
    key: Option<String>,
    delay: Option<Duration>,
    at_ms: Option<u64>,
}

impl<'q> SendMessage<'q> {
    pub(crate) fn new(
        core: &'q QueueCore,
        queue: &'q str,
        options: &'q QueueOptions,
        payload: Vec<u8>,
    ) -> Self {
        SendMessage {
            core,
            queue,
            options,
            payload,
            priority: 0,
            key: None,
            delay: None,
            at_ms: None,
        }
    }

    /// Higher priorities are delivered first; FIFO within one priority. Default 0.
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// An idempotency key: while a message sent with this key is stored (in line, leased or
    /// dead-lettered), sending again with it returns that message's id and stores nothing.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Makes the message ready only after `delay`.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Makes the message ready at `at_ms` (ms since the epoch). Wins over [`SendMessage::delay`].
    pub fn at_ms(mut self, at_ms: u64) -> Self {
        self.at_ms = Some(at_ms);
        self
    }

    /// Makes the message ready at `at`. Wins over [`SendMessage::delay`].
    pub fn at(self, at: SystemTime) -> Self {
        let ms = at.duration_since(UNIX_EPOCH).map(millis).unwrap_or(0);
        self.at_ms(ms)
    }

    async fn run(self) -> Result<SendReceipt> {
        let limit = self.options.payload_limit;
        if self.payload.len() > limit {
            return Err(Error::PayloadTooLarge {
                size: self.payload.len(),
                limit,
            });
        }
        check_key("idempotency key", self.key.as_deref())?;
        let now = self.core.clock.now_ms();
        let available_at = self
            .at_ms
            .or_else(|| self.delay.map(|d| now.saturating_add(millis(d))));
        let new = NewMessage {
            queue: self.queue.to_string(),
            payload: self.payload,
            priority: self.priority,
            key: self.key,
            available_at,
            max_age_ms: millis(self.options.max_age),
            max_deliveries: self.options.max_deliveries,
            dead_retention_ms: millis(self.options.dead_retention),
        };
        self.core.backend.send(new).await
    }
}

impl<'q> IntoFuture for SendMessage<'q> {
    type Output = Result<SendReceipt>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<SendReceipt>> + std::marker::Send + 'q>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}
