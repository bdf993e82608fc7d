//! The mutex's write ops, one file per write, applied inside the writer's transaction. An op
//! may run again after an abandoned batch, so it acts only on its transaction; the release's
//! wake-up happens after the commit.

pub(crate) mod acquire;
pub(crate) mod extend;
pub(crate) mod release;

use redb::ReadableTable;

use super::record::{LeaseV1, StoredLease};
use super::tables::MUTEXES;
use crate::error::Result;
use crate::store::TxCtx;
use crate::store::codec::{decode, encode};

/// The stored lease of `name` if it is still live at the batch's time.
pub(crate) fn live_holder(ctx: &TxCtx<'_>, name: &str) -> Result<Option<LeaseV1>> {
    let table = ctx.tx.open_table(MUTEXES)?;
    let Some(bytes) = table.get(name)? else {
        return Ok(None);
    };
    let StoredLease::V1(lease) = decode("mutexes", bytes.value())?;
    Ok((lease.expires_at > ctx.now).then_some(lease))
}

/// Stores `lease` as the holder of `name`.
pub(crate) fn store_lease(ctx: &TxCtx<'_>, name: &str, lease: LeaseV1) -> Result<()> {
    let bytes = encode(&StoredLease::V1(lease));
    ctx.tx.open_table(MUTEXES)?.insert(name, bytes.as_slice())?;
    Ok(())
}
