//! Flow control of a definition: pausing and resuming it, and its start limit, which a claim
//! consults and counts in the same transaction as the attempts it starts.

use redb::ReadableTable;

use crate::error::Result;
use crate::job::effects::Effects;
use crate::job::record::{FlowV1, StoredFlow};
use crate::job::tables::JOB_FLOW;
use crate::store::TxCtx;
use crate::store::codec::{decode, encode};

/// The flow control of `name` (the default, neither paused nor limited, if none is stored).
pub(crate) fn load_flow(ctx: &mut TxCtx<'_>, name: &str) -> Result<FlowV1> {
    let table = ctx.table(JOB_FLOW)?;
    let flow = match table.get(name)? {
        Some(bytes) => {
            let StoredFlow::V1(flow) = decode("job_flow", bytes.value())?;
            flow
        }
        None => FlowV1::default(),
    };
    Ok(flow)
}

/// Stores the flow control of `name`, or drops it when it is the default.
pub(crate) fn save_flow(ctx: &mut TxCtx<'_>, name: &str, flow: FlowV1) -> Result<()> {
    let table = ctx.table(JOB_FLOW)?;
    if flow.paused_at.is_none() && flow.starts.is_none() {
        table.remove(name)?;
    } else {
        table.insert(name, encode(&StoredFlow::V1(flow)).as_slice())?;
    }
    Ok(())
}

/// Pauses or resumes `name`; false if it already was. A resume wakes the definition's
/// workers after the commit.
pub(crate) fn set_paused(
    ctx: &mut TxCtx<'_>,
    name: &str,
    paused: bool,
    fx: &mut Effects,
) -> Result<bool> {
    let mut flow = load_flow(ctx, name)?;
    if flow.paused_at.is_some() == paused {
        return Ok(false);
    }
    flow.paused_at = paused.then_some(ctx.now);
    save_flow(ctx, name, flow)?;
    if !paused {
        fx.ready.push(name.to_string());
    }
    Ok(true)
}

/// Every paused definition with the instant it was paused, by name.
pub(crate) fn paused_names(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    for entry in table.iter()? {
        let (name, bytes) = entry?;
        let StoredFlow::V1(flow) = decode("job_flow", bytes.value())?;
        if let Some(at) = flow.paused_at {
            out.push((name.value().to_string(), at));
        }
    }
    Ok(out)
}
