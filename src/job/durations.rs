//! How long attempts ran, by definition and outcome: fixed-bucket histograms kept in memory
//! since the engine opened (not in the file), fed by the metric events after each commit.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::metrics::JobMetric;

/// The buckets' upper bounds, in ms; one more bucket holds the longer attempts.
const BOUNDS_MS: [u64; 14] = [
    5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000,
];

/// The attempts of one definition that ended one way, since the engine opened; see
/// [`Jobs::attempt_durations`](crate::Jobs::attempt_durations).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AttemptDurations {
    /// The definition name.
    pub name: String,
    /// How the attempts ended: `completed`, `failed` (retried or not) or `timed_out`.
    pub outcome: String,
    /// How many attempts.
    pub count: u64,
    /// Their total run time, in ms.
    pub sum_ms: u64,
    /// `(upper bound in ms, attempts in this bucket and no lower one)`, bounds ascending; the
    /// last bound is `u64::MAX`.
    pub buckets: Vec<(u64, u64)>,
}

#[derive(Debug, Default)]
struct Histogram {
    count: u64,
    sum_ms: u64,
    buckets: [u64; BOUNDS_MS.len() + 1],
}

/// The histograms of one engine.
/// The outcomes a histogram is kept for, in the order of [`Durations`]' arrays.
const OUTCOMES: [&str; 3] = ["completed", "failed", "timed_out"];

#[derive(Debug, Default)]
pub(crate) struct Durations {
    /// By definition name; one histogram per outcome.
    by: Mutex<BTreeMap<String, [Histogram; 3]>>,
}

impl Durations {
    /// Counts the attempt a metric event ends, if it ends one.
    pub(crate) fn observe(&self, event: &JobMetric) {
        let (name, outcome, run_ms) = match event {
            JobMetric::Completed { name, run_ms, .. } => (name, 0, *run_ms),
            JobMetric::Retried { name, run_ms, .. } | JobMetric::Failed { name, run_ms, .. } => {
                (name, 1, *run_ms)
            }
            JobMetric::TimedOut { name, run_ms, .. } => (name, 2, *run_ms),
            _ => return,
        };
        let bucket = BOUNDS_MS
            .iter()
            .position(|bound| run_ms <= *bound)
            .unwrap_or(BOUNDS_MS.len());
        let mut by = self.by.lock().unwrap_or_else(|p| p.into_inner());
        // Looked up by `&str`: a name is allocated once, at its first attempt.
        if !by.contains_key(name.as_str()) {
            by.insert(name.clone(), Default::default());
        }
        let Some(all) = by.get_mut(name.as_str()) else {
            return;
        };
        let h = &mut all[outcome];
        h.count += 1;
        h.sum_ms = h.sum_ms.saturating_add(run_ms);
        h.buckets[bucket] += 1;
    }

    /// Every histogram, by definition name and outcome.
    pub(crate) fn snapshot(&self) -> Vec<AttemptDurations> {
        let by = self.by.lock().unwrap_or_else(|p| p.into_inner());
        by.iter()
            .flat_map(|(name, all)| OUTCOMES.iter().zip(all).map(move |(o, h)| (name, o, h)))
            .filter(|(_, _, h)| h.count > 0)
            .map(|(name, outcome, h)| AttemptDurations {
                name: name.clone(),
                outcome: outcome.to_string(),
                count: h.count,
                sum_ms: h.sum_ms,
                buckets: BOUNDS_MS
                    .iter()
                    .copied()
                    .chain([u64::MAX])
                    .zip(h.buckets)
                    .collect(),
            })
            .collect()
    }
}
