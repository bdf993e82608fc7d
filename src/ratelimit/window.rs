//! The sliding-window arithmetic, shared by every backend: what one identifier's counts are
//! at an instant, and what a check does to them. Windows are aligned to multiples of their
//! length since the Unix epoch; a check sees the current window's count plus the previous
//! window's count weighted by how much of the previous window the sliding window still
//! covers. All in integer milliseconds, so results are exact and repeatable.

use std::time::Duration;

/// One identifier's counts, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Counts {
    /// The window length these counts were taken with (ms).
    pub(crate) window_ms: u64,
    /// The start of the window `current` counts (ms since the epoch).
    pub(crate) start: u64,
    /// Checks counted in the window starting at `start`.
    pub(crate) current: u64,
    /// Checks counted in the window before it.
    pub(crate) previous: u64,
}

impl Counts {
    /// When these counts stop mattering: once two windows have passed, they weigh nothing.
    pub(crate) fn expires_at(&self) -> u64 {
        self.start.saturating_add(self.window_ms.saturating_mul(2))
    }
}

/// What one check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitCheck {
    /// The check was over the limit: the caller should not go ahead.
    pub limited: bool,
    /// How many more checks would pass now (after this one was counted).
    pub remaining: u64,
    /// Time until the current window ends and its count becomes the previous window's.
    pub reset_in: Duration,
    /// Time until a check would pass again, if no other check is made meanwhile: zero while
    /// `remaining` is above zero.
    pub retry_in: Duration,
}

/// The sliding window's rule for `limit` checks per `window_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub(crate) limit: u64,
    pub(crate) window_ms: u64,
}

impl Window {
    /// The counts as they stand at `now`: rolled forward to the window holding `now`.
    fn at(&self, stored: Option<Counts>, now: u64) -> Counts {
        let w = self.window_ms;
        let start = now - now % w;
        let fresh = Counts {
            window_ms: w,
            start,
            current: 0,
            previous: 0,
        };
        match stored {
            Some(c) if c.window_ms == w && c.start >= start => c,
            Some(c) if c.window_ms == w && c.start.saturating_add(w) == start => Counts {
                previous: c.current,
                ..fresh
            },
            _ => fresh,
        }
    }

    /// The previous window's count weighted by the share of it the sliding window still
    /// covers `elapsed` ms into the current window, rounded down.
    fn weighted(&self, previous: u64, elapsed: u64) -> u64 {
        let w = u128::from(self.window_ms);
        let covered = w - u128::from(elapsed.min(self.window_ms));
        (u128::from(previous) * covered / w) as u64
    }

    /// The counts as they stand at `now`, and how many checks would pass now.
    pub(crate) fn room(&self, stored: Option<Counts>, now: u64) -> (Counts, u64) {
        let counts = self.at(stored, now);
        let elapsed = now.saturating_sub(counts.start);
        let used = self.weighted(counts.previous, elapsed) + counts.current;
        (counts, self.limit.saturating_sub(used))
    }

    /// Milliseconds from `now` until a check would pass with `counts` (rolled to `now` by
    /// [`room`](Self::room)), if no other check is made meanwhile: 0 if one passes now.
    pub(crate) fn wait(&self, counts: &Counts, now: u64) -> u64 {
        self.retry_in(counts, now.saturating_sub(counts.start))
    }

    /// Counts one check at `now` (limited or not: every check counts) and says how it went.
    /// Returns the counts to store.
    pub(crate) fn check(&self, stored: Option<Counts>, now: u64) -> (Counts, RateLimitCheck) {
        let (mut counts, room) = self.room(stored, now);
        counts.current = counts.current.saturating_add(1);
        let check = RateLimitCheck {
            limited: room == 0,
            remaining: room.saturating_sub(1),
            reset_in: Duration::from_millis(counts.start + self.window_ms - now),
            retry_in: Duration::from_millis(self.wait(&counts, now)),
        };
        (counts, check)
    }

    /// Milliseconds from `elapsed` into the window of `counts` until a check would pass.
    fn retry_in(&self, counts: &Counts, elapsed: u64) -> u64 {
        let w = self.window_ms;
        if self.weighted(counts.previous, elapsed) + counts.current < self.limit {
            return 0;
        }
        // Still in this window, once enough of the previous one has slid out.
        if counts.current < self.limit {
            let room = self.limit - counts.current;
            if let Some(at) = self.first_passing(counts.previous, room)
                && at < w
            {
                return at.max(elapsed) - elapsed;
            }
        }
        // In the next window, where this window's count is the previous one.
        let at = self.first_passing(counts.current, self.limit).unwrap_or(0);
        (w - elapsed) + at.min(w)
    }

    /// The first offset into a window at which `previous`, weighted, is below `room`
    /// (`weighted < room`); `None` if `previous` is zero (always).
    fn first_passing(&self, previous: u64, room: u64) -> Option<u64> {
        if previous == 0 {
            return None;
        }
        // previous * (w - e) / w < room  <=>  w - e < ceil(room * w / previous)
        let w = u128::from(self.window_ms);
        let bound = (u128::from(room) * w).div_ceil(u128::from(previous));
        let at = (w + 1).saturating_sub(bound);
        Some(at.min(w) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Window = Window {
        limit: 10,
        window_ms: 1_000,
    };

    /// Checks `n` times at `now`, returning the last check.
    fn checks(stored: &mut Option<Counts>, now: u64, n: usize) -> RateLimitCheck {
        let mut last = None;
        for _ in 0..n {
            let (counts, check) = W.check(*stored, now);
            *stored = Some(counts);
            last = Some(check);
        }
        last.expect("at least one check")
    }

    #[test]
    fn within_one_window_the_limit_is_exact() {
        let mut s = None;
        let ninth = checks(&mut s, 10_250, 9);
        assert!(!ninth.limited);
        assert_eq!(ninth.remaining, 1);
        assert_eq!(ninth.reset_in, Duration::from_millis(750));
        assert_eq!(ninth.retry_in, Duration::ZERO);
        let tenth = checks(&mut s, 10_250, 1);
        assert!(!tenth.limited);
        assert_eq!(tenth.remaining, 0);
        // 10 in this window: passes again 1 ms into the next one (10 * 999 / 1000 = 9).
        assert_eq!(tenth.retry_in, Duration::from_millis(751));
        let eleventh = checks(&mut s, 10_250, 1);
        assert!(eleventh.limited);
        assert_eq!(eleventh.remaining, 0);
        assert_eq!(s.unwrap().current, 11, "a limited check is counted too");
    }

    #[test]
    fn the_previous_window_weighs_by_its_overlap_at_0_50_and_100_percent() {
        // 10 checks in window [0, 1000).
        let mut s = None;
        checks(&mut s, 500, 10);
        // At 0 % into the next window the previous one weighs fully: 10 of 10 used.
        let at_start = W.check(s, 1_000).1;
        assert!(at_start.limited);
        // At 50 %: 10 * 500 / 1000 = 5 used, so this check passes with 4 left after it.
        let half = W.check(s, 1_500).1;
        assert!(!half.limited);
        assert_eq!(half.remaining, 4);
        assert_eq!(half.reset_in, Duration::from_millis(500));
        // At 100 % (the start of the window after) the first window weighs nothing.
        let after = W.check(s, 2_000).1;
        assert!(!after.limited);
        assert_eq!(after.remaining, 9);
        // One ms before: 10 * 1 / 1000 rounds down to 0.
        assert_eq!(W.check(s, 1_999).1.remaining, 9);
    }

    #[test]
    fn a_burst_at_the_boundary_cannot_double_the_limit() {
        let mut s = None;
        // 10 at the very end of one window...
        assert!(!checks(&mut s, 999, 10).limited);
        // ...and the start of the next still sees them: nothing passes at 1000 ms.
        let mut passed = 0;
        let mut last = None;
        for _ in 0..10 {
            let (counts, check) = W.check(s, 1_000);
            s = Some(counts);
            passed += usize::from(!check.limited);
            last = Some(check);
        }
        assert_eq!(passed, 0);
        // The limited checks were counted: 10 in this window, so the next pass is 1 ms into
        // the following window (10 * 999 / 1000 rounds down to 9), 1001 ms away.
        assert_eq!(last.unwrap().retry_in, Duration::from_millis(1_001));
        assert!(W.check(s, 2_000).1.limited);
        assert!(!W.check(s, 2_001).1.limited);
    }

    #[test]
    fn retry_in_is_the_first_instant_a_check_passes() {
        // 10 in [0, 1000); 5 in [1000, 2000) at 1000 (limited ones, counted).
        let mut s = None;
        checks(&mut s, 0, 10);
        let fifth = checks(&mut s, 1_000, 5);
        assert!(fifth.limited);
        // In this window, weighted(prev) + 5 < 10 needs 10 * (1000 - e) / 1000 < 5 rounded
        // down, i.e. 10 * (1000 - e) < 5000: e > 500, so e = 501.
        assert_eq!(fifth.retry_in, Duration::from_millis(501));
        let at = 1_000 + fifth.retry_in.as_millis() as u64;
        assert!(!W.check(s, at).1.limited);
        assert!(W.check(s, at - 1).1.limited);
    }

    #[test]
    fn counts_older_than_the_previous_window_are_forgotten() {
        let mut s = None;
        checks(&mut s, 100, 10);
        assert_eq!(s.unwrap().expires_at(), 2_000);
        let later = W.check(s, 2_000).1;
        assert_eq!(later.remaining, 9);
        let (counts, _) = W.check(s, 5_300);
        assert_eq!(
            counts,
            Counts {
                window_ms: 1_000,
                start: 5_000,
                current: 1,
                previous: 0
            }
        );
    }

    #[test]
    fn a_changed_window_length_starts_afresh() {
        let mut s = None;
        checks(&mut s, 100, 10);
        let other = Window {
            limit: 10,
            window_ms: 500,
        };
        assert_eq!(other.check(s, 200).1.remaining, 9);
    }
}
