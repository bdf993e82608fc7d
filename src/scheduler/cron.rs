//! Cron expressions and time zones: parsing with typed errors, and the next slot after an
//! instant, in UTC milliseconds. Daylight saving is croner's: a local time skipped by the
//! clock change runs once at the end of the gap; a repeated local time runs once.

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
