//! Acquire: a new lease with the next fencing token, if no live lease holds the mutex.

use super::{live_holder, store_lease};
use crate::error::Result;
use crate::mutex::lease::MutexLease;
use crate::mutex::record::LeaseV1;
use crate::mutex::storage::Acquired;
use crate::store::TxCtx;

/// Fencing tokens: one counter for every mutex of the file, so a token never repeats.
const FENCE_COUNTER: &str = "next:mutex_fence";

pub(crate) fn acquire(
    ctx: &mut TxCtx<'_>,
    name: &str,
    owner: &str,
    ttl_ms: u64,
) -> Result<Acquired> {
    if let Some(live) = live_holder(ctx, name)? {
        return Ok(Acquired::HeldUntil(live.expires_at));
    }
    let token = ctx.next_id(FENCE_COUNTER)?;
    let expires_at = ctx.now.saturating_add(ttl_ms);
    store_lease(
        ctx,
        name,
        LeaseV1 {
            owner: owner.to_string(),
            token,
            expires_at,
        },
    )?;
    Ok(Acquired::Lease(MutexLease {
        name: name.to_string(),
        owner: owner.to_string(),
        token,
        expires_at_ms: expires_at,
    }))
}
