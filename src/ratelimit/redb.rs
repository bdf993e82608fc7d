//! The rate limiter over the embedded file: each check one op sent to the writer, so checks
//! from many tasks share the group commit.

use std::sync::Arc;

use super::ops;
use super::storage::RateLimitStorage;
use super::window::{RateLimitCheck, Window};
use crate::error::Result;
use crate::store::{Store, TxCtx};
use crate::timer::Timer;

/// Identifiers' counts dropped in one timer pass.
const SWEEP_LIMIT: usize = 1_000;

/// The rate limiter's storage in the file.
#[derive(Debug)]
pub(crate) struct RedbRateLimits {
    store: Arc<Store>,
    /// When the next counts stop mattering.
    pub(crate) timer: Arc<Timer>,
}

impl RedbRateLimits {
    pub(crate) fn new(store: Arc<Store>) -> Self {
        RedbRateLimits {
            store,
            timer: Arc::new(Timer::new(None)),
        }
    }

    /// Counts that stopped mattering while no process held the file go now.
    pub(crate) fn recover(&self, ctx: &mut TxCtx<'_>) -> Result<()> {
        if let Some(at) = ops::sweep(ctx, usize::MAX)? {
            self.timer.lower(at);
        }
        Ok(())
    }
}

impl RateLimitStorage for RedbRateLimits {
    async fn check(&self, name: &str, key: &[u8], window: Window) -> Result<RateLimitCheck> {
        let (name, key, timer) = (name.to_string(), key.to_vec(), self.timer.clone());
        self.store
            .write(move |ctx| {
                let (check, expires_at) = ops::check(ctx, &name, &key, window)?;
                let timer = timer.clone();
                ctx.after_commit(move || timer.lower(expires_at));
                Ok(check)
            })
            .await
    }

    async fn reset(&self, name: &str, key: &[u8]) -> Result<bool> {
        let (name, key) = (name.to_string(), key.to_vec());
        self.store
            .write(move |ctx| ops::reset(ctx, &name, &key))
            .await
    }

    async fn sweep(&self) -> Result<Option<u64>> {
        self.store.write(|ctx| ops::sweep(ctx, SWEEP_LIMIT)).await
    }
}
