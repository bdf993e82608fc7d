//! The admin API's JSON as text for a person: tables, times, sizes.

use chrono::DateTime;
use serde_json::Value;

/// `ms` (Unix milliseconds) as `2026-11-30 11:02:13 UTC`.
pub fn utc(ms: u64) -> String {
    match DateTime::from_timestamp_millis(ms as i64) {
        Some(t) => t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        None => format!("{ms} ms"),
    }
}

/// An optional instant, `-` when absent.
pub fn utc_opt(ms: &Value) -> String {
    ms.as_u64().map_or_else(|| "-".into(), utc)
}

/// `ms` in the IANA zone `zone`, as `2026-12-01 02:30 CET (Europe/Berlin)`.
pub fn in_zone(ms: u64, zone: &str) -> String {
    let Some(t) = DateTime::from_timestamp_millis(ms as i64) else {
        return format!("{ms} ms");
    };
    match zone.parse::<chrono_tz::Tz>() {
        Ok(tz) => format!(
            "{} ({zone})",
            t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z")
        ),
        Err(_) => utc(ms),
    }
}

/// `1234567` as `1,234,567`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A JSON number as a counted figure; `-` for anything else.
pub fn num(v: &Value) -> String {
    v.as_u64().map_or_else(|| "-".into(), count)
}

/// A size in bytes as `136.2 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut size = n as f64;
    let mut unit = 0;
    while size >= 1024.0 && unit < UNITS.len() - 1 {
        size /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} bytes")
    } else {
        format!("{size:.1} {}", UNITS[unit])
    }
}

/// Stored bytes (a JSON array of numbers) as text, lossily; `-` for none.
pub fn stored_text(v: &Value) -> String {
    match v.as_array() {
        Some(items) => {
            let raw: Vec<u8> = items
                .iter()
                .filter_map(|b| b.as_u64())
                .map(|b| b as u8)
                .collect();
            String::from_utf8_lossy(&raw).into_owned()
        }
        None => "-".into(),
    }
}

/// A string field, `-` when absent.
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// A failure (`{"code", "message", "attempt"}`) as `CODE: message (attempt N)`.
pub fn failure(v: &Value) -> String {
    if v.is_null() {
        return "-".into();
    }
    format!(
        "{}: {} (attempt {})",
        text(&v["code"]),
        text(&v["message"]),
        v["attempt"]
    )
}

/// A job's progress as `40% resizing`, with `(1,234 of 50,000)` when it counts items.
pub fn progress(v: &Value) -> String {
    if v.is_null() {
        return "-".into();
    }
    let mut out = format!("{}%", v["percent"]);
    if let Some(stage) = v["stage"].as_str().filter(|s| !s.is_empty()) {
        out.push(' ');
        out.push_str(stage);
    }
    if let (Some(done), Some(total)) = (v["done"].as_u64(), v["total"].as_u64()) {
        out.push_str(&format!(" ({} of {})", count(done), count(total)));
    }
    out
}

/// One job event as a line: sequence, time, kind and what it says.
pub fn event_line(e: &Value) -> String {
    let kind = e["kind"].as_str().unwrap_or("?");
    let detail = match kind {
        "started" => format!("attempt {} (epoch {})", e["attempt"], e["epoch"]),
        "step_completed" => format!("step {}", text(&e["step"])),
        "progress" => progress(e),
        "retry_scheduled" => format!(
            "next attempt at {}: {}",
            utc_opt(&e["next_at_ms"]),
            failure(&e["error"])
        ),
        "failed" | "timed_out" => failure(&e["error"]),
        "recovered" | "cancelled" => text(&e["reason"]),
        _ => String::new(),
    };
    format!(
        "{:>4}  {}  {kind:<15} {detail}",
        num(&e["seq"]),
        utc_opt(&e["at_ms"])
    )
    .trim_end()
    .to_string()
}

/// Columns aligned under their headers, numbers right-aligned.
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
    right: Vec<bool>,
}

impl Table {
    /// A table with these headers; a header ending in `>` is right-aligned (the `>` is dropped).
    pub fn new(headers: &[&'static str]) -> Self {
        Table {
            right: headers.iter().map(|h| h.ends_with('>')).collect(),
            headers: headers.iter().map(|h| h.trim_end_matches('>')).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as lines, each without trailing spaces.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: Vec<&str>| {
            let mut out = String::new();
            for (i, cell) in cells.iter().enumerate() {
                if i > 0 {
                    out.push_str("  ");
                }
                let pad = widths[i].saturating_sub(cell.chars().count());
                if self.right[i] {
                    out.push_str(&" ".repeat(pad));
                    out.push_str(cell);
                } else {
                    out.push_str(cell);
                    out.push_str(&" ".repeat(pad));
                }
            }
            out.trim_end().to_string()
        };
        let mut out = line(
            self.headers
                .iter()
                .map(|h| h.to_uppercase())
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str)
                .collect(),
        );
        for row in &self.rows {
            out.push('\n');
            out.push_str(&line(row.iter().map(String::as_str).collect()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_as_people_write_them() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(bytes(512), "512 bytes");
        assert_eq!(bytes(136 * 1024 * 1024 + 200 * 1024), "136.2 MiB");
        assert_eq!(utc(1_796_036_533_000), "2026-11-30 11:02:13 UTC");
        assert_eq!(
            in_zone(1_796_088_600_000, "Europe/Berlin"),
            "2026-12-01 02:30 CET (Europe/Berlin)"
        );
    }

    #[test]
    fn tables_align_columns() {
        let mut t = Table::new(&["name", "count>"]);
        t.row(vec!["mail".into(), "1,234".into()]);
        t.row(vec!["resize-images".into(), "7".into()]);
        assert_eq!(
            t.render(),
            "NAME           COUNT\nmail           1,234\nresize-images      7"
        );
    }
}
