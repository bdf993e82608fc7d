//! [`UpsertEntry`]: an upsert being built, stored when awaited.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::time::Duration;

use super::core::EphemeralCore;
use super::options::EphemeralOptions;
use super::storage::{EphemeralStorage, EphemeralUpsert};
use crate::clock::millis;
use crate::error::{Error, Result, check_name, check_ttl};

/// An upsert being prepared; `.await` it to store the entry (durable when it returns). Its
/// value is the change's position in the set's change stream.
#[must_use = "an upsert does nothing until it is awaited"]
#[derive(Debug)]
pub struct UpsertEntry<'s> {
    core: &'s EphemeralCore,
    set: &'s str,
    options: &'s EphemeralOptions,
    key: String,
    value: Vec<u8>,
    ttl: Duration,
}

impl<'s> UpsertEntry<'s> {
    pub(crate) fn new(
        core: &'s EphemeralCore,
        set: &'s str,
        options: &'s EphemeralOptions,
        key: String,
        value: Vec<u8>,
    ) -> Self {
        UpsertEntry {
            core,
            set,
            options,
            key,
            value,
            ttl: options.ttl,
        }
    }

    /// How long the entry lives unless touched or upserted again. Default: the set's
    /// [`EphemeralOptions::ttl`].
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    async fn run(self) -> Result<u64> {
        check_name("ephemeral key", &self.key)?;
        check_ttl("ttl", self.ttl)?;
        let limit = self.options.payload_limit;
        if self.value.len() > limit {
            return Err(Error::PayloadTooLarge {
                size: self.value.len(),
                limit,
            });
        }
        let upsert = EphemeralUpsert {
            set: self.set.to_string(),
            key: self.key,
            value: self.value,
            ttl_ms: millis(self.ttl),
            capacity: self.options.capacity,
        };
        self.core.backend.upsert(upsert).await
    }
}

impl<'s> IntoFuture for UpsertEntry<'s> {
    type Output = Result<u64>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<u64>> + Send + 's>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}
