//! Extend: the live lease, and only it, gets a later end.

use super::{live_holder, store_lease};
use crate::error::Result;
use crate::mutex::lease::MutexLease;
use crate::mutex::record::LeaseV1;
use crate::store::TxCtx;

pub(crate) fn extend(
    ctx: &mut TxCtx<'_>,
    held: &MutexLease,
    ttl_ms: u64,
) -> Result<Option<MutexLease>> {
    let current = live_holder(ctx, &held.name)?;
    if !current.is_some_and(|l| l.owner == held.owner && l.token == held.token) {
        return Ok(None);
    }
    let expires_at = ctx.now.saturating_add(ttl_ms);
    store_lease(
        ctx,
        &held.name,
        LeaseV1 {
            owner: held.owner.clone(),
            token: held.token,
            expires_at,
        },
    )?;
    Ok(Some(MutexLease {
        expires_at_ms: expires_at,
        ..held.clone()
    }))
}
