//! Cron expressions and time zones: parsing with typed errors, and the next slot after an
//! instant, in UTC milliseconds. Daylight saving is croner's: a local time skipped by the
//! clock change runs once at the end of the gap; a repeated local time runs once.

use std::collections::HashMap;

use chrono::{DateTime, TimeZone};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

use crate::error::{Error, Result};

/// A parsed schedule: the cron pattern and its zone.
#[derive(Debug, Clone)]
pub(crate) struct CronSchedule {
    cron: Cron,
    zone: Tz,
}

impl CronSchedule {
    /// Parses a 5-field expression (`0 * * * *`) or a 6-field one with seconds first, in the
    /// IANA zone `zone`.
    pub(crate) fn parse(expr: &str, zone: &str) -> Result<Self> {
        let fields = expr.split_whitespace().count();
        if !(5..=6).contains(&fields) {
            return Err(Error::invalid(
                "cron",
                format!(
                    "{expr:?} has {fields} fields; use 5 (minute hour day month weekday) or 6 (seconds first)"
                ),
            ));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build()
            .parse(expr)
            .map_err(|e| Error::invalid("cron", format!("{expr:?}: {e}")))?;
        let zone: Tz = zone.parse().map_err(|_| {
            Error::invalid(
                "time zone",
                format!(
                    "{zone:?} is not an IANA time zone name (like \"Europe/Berlin\" or \"UTC\")"
                ),
            )
        })?;
        Ok(CronSchedule { cron, zone })
    }

    /// The first slot strictly after `after_ms`, in UTC ms; `None` if the pattern never
    /// matches again.
    pub(crate) fn next_after(&self, after_ms: u64) -> Option<u64> {
        let after = i64::try_from(after_ms).ok()?;
        let start: DateTime<Tz> = self.zone.timestamp_millis_opt(after).single()?;
        let next = self.cron.find_next_occurrence(&start, false).ok()?;
        u64::try_from(next.timestamp_millis()).ok()
    }

    /// Whether any date from the one `from_ms` falls on, over a whole 400-year cycle of the
    /// calendar, has a slot. Checks the day and month fields date by date (every time of day
    /// has a slot once a date does), so an expression that can never match (February 30) is
    /// known in milliseconds, where searching for its next slot takes croner a long time.
    pub(crate) fn ever_matches(&self, from_ms: u64) -> bool {
        use chrono::Datelike;
        let Some(start) = i64::try_from(from_ms)
            .ok()
            .and_then(|ms| self.zone.timestamp_millis_opt(ms).single())
        else {
            return true;
        };
        let pattern = &self.cron.pattern;
        // The Gregorian calendar repeats its dates and weekdays every 400 years.
        start.date_naive().iter_days().take(146_097).any(|d| {
            pattern.month_match(d.month()).unwrap_or(true)
                && pattern
                    .day_match(
                        d.year(),
                        d.month(),
                        d.day(),
                        croner::Weekday::from_days_from_sunday(d.weekday().num_days_from_sunday()),
                    )
                    .unwrap_or(true)
        })
    }

    /// The last slot strictly before `before_ms`, in UTC ms; `None` if there is none.
    pub(crate) fn prev_before(&self, before_ms: u64) -> Option<u64> {
        // croner works in whole seconds: search from the next whole second, exclusive.
        let from = i64::try_from(before_ms.div_ceil(1_000).checked_mul(1_000)?).ok()?;
        let start: DateTime<Tz> = self.zone.timestamp_millis_opt(from).single()?;
        let prev = self.cron.find_previous_occurrence(&start, false).ok()?;
        u64::try_from(prev.timestamp_millis())
            .ok()
            .filter(|p| *p < before_ms)
    }

    /// How many slots fall in `from_ms..to_ms`, counted without listing them one by one when
    /// there are many: every 24-hour local day that has a slot has the same number of them
    /// (the time fields do not depend on the day), so only the partial first and last days,
    /// days of a daylight-saving change, and one sample day are walked slot by slot.
    pub(crate) fn count_between(&self, from_ms: u64, to_ms: u64) -> u64 {
        /// Below this many slots, walking them is cheaper than the day-by-day count.
        const WALK: u64 = 10_000;
        match self.walk_up_to(from_ms, to_ms, WALK) {
            (walked, Some(last)) => walked + self.count_by_day(last.saturating_add(1), to_ms),
            (walked, None) => walked,
        }
    }

    fn count_by_day(&self, from_ms: u64, to_ms: u64) -> u64 {
        const DAY_MS: u64 = 86_400_000;
        let mut per_day: Option<u64> = None;
        let mut count = 0;
        let mut start = from_ms;
        let mut at_midnight = false;
        while start < to_ms {
            let Some(end) = self.next_local_midnight(start) else {
                return count + self.walk(start, to_ms);
            };
            if at_midnight && end - start == DAY_MS && end <= to_ms {
                if self
                    .next_after(start.saturating_sub(1))
                    .is_some_and(|s| s < end)
                {
                    count += *per_day.get_or_insert_with(|| self.walk(start, end));
                }
            } else {
                count += self.walk(start, end.min(to_ms));
            }
            start = end;
            at_midnight = true;
        }
        count
    }

    /// The slots in `from_ms..to_ms`, one by one.
    fn walk(&self, from_ms: u64, to_ms: u64) -> u64 {
        self.walk_up_to(from_ms, to_ms, u64::MAX).0
    }

    /// The slots in `from_ms..to_ms`, one by one, stopping after `max`: the count, and the
    /// last slot counted if the walk stopped there.
    fn walk_up_to(&self, from_ms: u64, to_ms: u64, max: u64) -> (u64, Option<u64>) {
        let mut count = 0;
        let mut next = self.next_after(from_ms.saturating_sub(1));
        while let Some(slot) = next.filter(|s| *s < to_ms) {
            count += 1;
            if count == max {
                return (count, Some(slot));
            }
            next = self.next_after(slot);
        }
        (count, None)
    }

    /// The start of the local day after the one `at_ms` falls in (the first local time of
    /// that date that exists, for a date whose midnight a clock change skips).
    fn next_local_midnight(&self, at_ms: u64) -> Option<u64> {
        let at = self
            .zone
            .timestamp_millis_opt(i64::try_from(at_ms).ok()?)
            .single()?;
        let date = at.date_naive().succ_opt()?;
        (0..4).find_map(|hour| {
            let local = date.and_hms_opt(hour, 0, 0)?;
            let start = self.zone.from_local_datetime(&local).earliest()?;
            u64::try_from(start.timestamp_millis()).ok()
        })
    }
}

/// The most parsed schedules a [`CronCache`] keeps; past it, the cache starts over.
const CRON_CACHE_MAX: usize = 4_096;

/// Parsed schedules by zone and expression. Parsing is most of the CPU a dispatch pass spends
/// (croner builds a bit set for every field, about 30 µs), while a schedule fires the same
/// expression again and again: the pass parses each distinct one once.
#[derive(Debug, Default)]
pub(crate) struct CronCache {
    by_zone: HashMap<String, HashMap<String, CronSchedule>>,
    len: usize,
}

impl CronCache {
    /// The schedule of `expr` in `zone`, parsed at its first use. Errors are not kept: an
    /// expression this build cannot read fails again, the same way, at every use.
    pub(crate) fn get(&mut self, expr: &str, zone: &str) -> Result<&CronSchedule> {
        let cached = self
            .by_zone
            .get(zone)
            .is_some_and(|exprs| exprs.contains_key(expr));
        if !cached {
            let parsed = CronSchedule::parse(expr, zone)?;
            if self.len >= CRON_CACHE_MAX {
                self.by_zone.clear();
                self.len = 0;
            }
            self.by_zone
                .entry(zone.to_string())
                .or_default()
                .insert(expr.to_string(), parsed);
            self.len += 1;
        }
        self.by_zone
            .get(zone)
            .and_then(|exprs| exprs.get(expr))
            .ok_or_else(|| Error::Internal(format!("cron cache lost {expr:?} in {zone:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counting_by_day_gives_what_walking_gives() {
        let from = 1_795_392_000_500; // 2026-11-23T00:00:00.5Z
        for (expr, zone, days) in [
            ("* * * * * *", "UTC", 3),
            ("*/7 * * * * *", "Europe/Berlin", 2),
            ("* * * * *", "America/New_York", 40),
            ("30 2 * * *", "Europe/Berlin", 400),
            ("*/5 * * * *", "Australia/Lord_Howe", 200),
            ("0 9 * * MON-FRI", "Asia/Tokyo", 30),
        ] {
            let cron = CronSchedule::parse(expr, zone).expect("parses");
            let to = from + days * 86_400_000 + 12_345;
            assert_eq!(
                cron.count_by_day(from, to),
                cron.walk(from, to),
                "{expr} in {zone}"
            );
        }
        // Impossible dates are known without a search; possible rare ones are found.
        for (expr, possible) in [
            ("0 0 30 2 *", false),
            ("0 0 31 4,6,9,11 *", false),
            ("0 0 29 2 *", true),
            ("0 0 31 * *", true),
            ("0 0 L 2 *", true),
            ("0 0 13 * FRI", true),
        ] {
            let cron = CronSchedule::parse(expr, "UTC").expect("parses");
            let started = std::time::Instant::now();
            assert_eq!(cron.ever_matches(from), possible, "{expr}");
            eprintln!("{expr}: {:?}", started.elapsed());
        }
        // Two weeks of a per-second schedule, counted without walking all of them.
        let cron = CronSchedule::parse("* * * * * *", "UTC").expect("parses");
        let start = 1_795_392_000_000;
        assert_eq!(
            cron.count_between(start, start + 14 * 86_400_000),
            1_209_600
        );
        assert_eq!(cron.count_between(start + 1, start + 1_000), 0);
        assert_eq!(cron.count_between(start, start + 1_001), 2);
        assert_eq!(cron.prev_before(start + 1), Some(start));
        assert_eq!(cron.prev_before(start), Some(start - 1_000));
    }

    #[test]
    fn cache_gives_what_parse_gives_and_starts_over_when_full() {
        let mut cache = CronCache::default();
        let after = 1_795_392_000_000; // 2026-11-23T00:00:00Z
        for (expr, zone) in [
            ("0 9 * * MON-FRI", "Europe/Berlin"),
            ("0 9 * * MON-FRI", "America/New_York"),
            ("*/5 * * * *", "UTC"),
        ] {
            let fresh = CronSchedule::parse(expr, zone).expect("parses");
            for _ in 0..2 {
                let cached = cache.get(expr, zone).expect("parses");
                assert_eq!(cached.next_after(after), fresh.next_after(after));
            }
        }
        // One entry per (expression, zone): Berlin and New York are two.
        assert_eq!(cache.len, 3);
        assert_ne!(
            cache
                .get("0 9 * * MON-FRI", "Europe/Berlin")
                .expect("parses")
                .next_after(after),
            cache
                .get("0 9 * * MON-FRI", "America/New_York")
                .expect("parses")
                .next_after(after),
        );
        // Errors are typed and not kept.
        assert!(matches!(
            cache.get("0 9 * *", "UTC"),
            Err(Error::InvalidArgument { .. })
        ));
        assert!(matches!(
            cache.get("0 9 * * *", "Mars/Olympus"),
            Err(Error::InvalidArgument { .. })
        ));
        assert_eq!(cache.len, 3);
        for i in 0..CRON_CACHE_MAX - 3 {
            let expr = format!("{} {} {} * *", i % 60, i / 60 % 24, i / 1_440 + 1);
            cache.get(&expr, "Asia/Tokyo").expect("parses");
        }
        assert_eq!(cache.len, CRON_CACHE_MAX);
        let expected = CronSchedule::parse("7 7 * * *", "Europe/Paris").expect("parses");
        let got = cache
            .get("7 7 * * *", "Europe/Paris")
            .expect("parses")
            .next_after(after);
        assert_eq!(got, expected.next_after(after));
        assert_eq!(cache.len, 1, "a full cache starts over");
    }
}
