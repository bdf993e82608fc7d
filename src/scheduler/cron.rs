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
