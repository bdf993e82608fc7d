//! Recover, at open: every leased message belonged to a process that is gone.

use redb::ReadableTable;

use super::maintain::{Maintained, end_leases};
use crate::error::Result;
use crate::queue::record::{MessageState, StoredMessage};
use crate::queue::tables::{QUEUE_AGE, QUEUE_MESSAGES};
use crate::store::TxCtx;
use crate::store::codec::decode;

/// The meta key set once the age index holds every live message (files written before the
/// index existed get it built at their first open by this build).
const AGE_INDEXED: &str = "index:queue_age";

/// Builds the age index of a file written before it existed: one entry per live message.
fn index_ages_once(ctx: &mut TxCtx<'_>) -> Result<()> {
    if crate::store::meta::read_counter(ctx.tx, AGE_INDEXED)? != 0 {
        return Ok(());
    }
    let live: Vec<(u64, u64)> =
        ctx.tx
            .open_table(QUEUE_MESSAGES)?
            .iter()?
            .map(|e| {
                let (k, v) = e?;
                let m = decode::<StoredMessage>("queue_messages", v.value())?.into_message();
                Ok((!matches!(m.state, MessageState::Dead { .. }))
                    .then(|| (m.expires_at(), k.value())))
            })
            .filter_map(Result::transpose)
            .collect::<Result<_>>()?;
    let mut age = ctx.tx.open_table(QUEUE_AGE)?;
    for key in live {
        age.insert(key, ())?;
    }
    drop(age);
    crate::store::meta::write_counter(ctx.tx, AGE_INDEXED, 1)
}

/// At open: every leased message belonged to a process that is gone, so it is redelivered now.
pub(crate) fn recover(ctx: &mut TxCtx<'_>) -> Result<usize> {
    index_ages_once(ctx)?;
    crate::queue::rows::tally_once(ctx)?;
    let mut out = Maintained::default();
    let mut total = 0;
    loop {
        let n = end_leases(
            ctx,
            u64::MAX,
            10_000,
            "the process holding the lease ended",
            &mut out,
        )?;
        total += n;
        if n < 10_000 {
            return Ok(total);
        }
    }
}
