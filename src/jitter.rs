//! Spreading delays: one place that turns a seed into a jitter factor, for job backoff and the
//! retry helper alike.

/// SplitMix64's finalizer: spreads a seed over all 64 bits.
fn mix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `delay_ms` moved up or down by at most `fraction` (0 to 1) of itself, as chosen by `seed`.
pub(crate) fn jittered_ms(delay_ms: f64, fraction: f64, seed: u64) -> u64 {
    // A uniform value in [-1, 1] from the seed.
    let unit = (mix(seed) >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
    let fraction = fraction.clamp(0.0, 1.0);
    (delay_ms * (1.0 + fraction * unit)).round().max(0.0) as u64
}
