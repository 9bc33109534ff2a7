//! Time as imgvault stores and shows it: stored as UTC microseconds since the Unix epoch (cheap to
//! order and compare), shown in the server's local time in the seed's two formats.

use chrono::{DateTime, Local, Utc};

/// Microseconds since the Unix epoch, UTC.
pub type Micros = i64;

pub fn now() -> Micros {
    Utc::now().timestamp_micros()
}

fn local(at: Micros) -> DateTime<Local> {
    DateTime::<Utc>::from_timestamp_micros(at)
        .unwrap_or_default()
        .with_timezone(&Local)
}

/// The local calendar fields of `at`. The formatters below write them out rather than through
/// strftime patterns, which chrono parses again on every call: every listed image, every status
/// answer and every upload formats a date.
struct Fields {
    year: i32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    micros: u32,
}

fn fields(at: Micros) -> Fields {
    use chrono::{Datelike, Timelike};
    let t = local(at);
    Fields {
        year: t.year(),
        month: t.month(),
        day: t.day(),
        hour: t.hour(),
        minute: t.minute(),
        second: t.second(),
        micros: t.timestamp_subsec_micros().min(999_999),
    }
}

/// `2025-06-13 18:45:30`: the seed's format for stored dates.
pub fn display(at: Micros) -> String {
    let f = fields(at);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        f.year, f.month, f.day, f.hour, f.minute, f.second
    )
}

/// Reads back what `display` wrote (local time); `None` if it is not in that format.
pub fn parse_display(text: &str) -> Option<Micros> {
    chrono::NaiveDateTime::parse_from_str(text.trim(), "%Y-%m-%d %H:%M:%S")
        .ok()?
        .and_local_timezone(Local)
        .earliest()
        .map(|t| t.timestamp_micros())
}

/// When the local calendar day `date` begins. Where a clock change skips midnight, the day
/// begins at the first local time that exists.
pub fn local_day_start(date: chrono::NaiveDate) -> Micros {
    let midnight = date.and_time(chrono::NaiveTime::MIN);
    (0..=24)
        .find_map(|hour| {
            (midnight + chrono::Duration::hours(hour))
                .and_local_timezone(Local)
                .earliest()
        })
        .map_or_else(
            || midnight.and_utc().timestamp_micros(),
            |t| t.timestamp_micros(),
        )
}

/// `2025-06-13T18:45:30.123456`: the seed's format for `/api/status`.
pub fn iso(at: Micros) -> String {
    let f = fields(at);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}",
        f.year, f.month, f.day, f.hour, f.minute, f.second, f.micros
    )
}

/// `2025-06-13T18:45:30.123456`, or `2025-06-13T18:45:30` when the microseconds are zero: what
/// Python's `datetime.isoformat()` writes, as the original server's file listings show times.
pub fn isoformat(at: Micros) -> String {
    let f = fields(at);
    let seconds = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        f.year, f.month, f.day, f.hour, f.minute, f.second
    );
    match f.micros {
        0 => seconds,
        micros => format!("{seconds}.{micros:06}"),
    }
}

/// `20250613_184530`: the date part of stored file names.
pub fn filename_stamp(at: Micros) -> String {
    let f = fields(at);
    format!(
        "{:04}{:02}{:02}_{:02}{:02}{:02}",
        f.year, f.month, f.day, f.hour, f.minute, f.second
    )
}

pub const SECOND: Micros = 1_000_000;
pub const HOUR: Micros = 3_600 * SECOND;
pub const DAY: Micros = 24 * HOUR;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_match_the_strftime_patterns_they_replace() {
        for at in [
            0,
            1_000_000,
            1_749_840_330_123_456,
            978_307_199_999_999,
            4_102_444_800_000_000,
            1_749_840_330_000_001,
        ] {
            let t = local(at);
            assert_eq!(iso(at), t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string());
            let python = match at.rem_euclid(SECOND) {
                0 => t.format("%Y-%m-%dT%H:%M:%S").to_string(),
                _ => t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
            };
            assert_eq!(isoformat(at), python);
            assert_eq!(filename_stamp(at), t.format("%Y%m%d_%H%M%S").to_string());
            let shown = display(at);
            assert_eq!(shown, t.format("%Y-%m-%d %H:%M:%S").to_string());
            assert_eq!(parse_display(&shown), Some(at - at.rem_euclid(SECOND)));
        }
    }

    #[test]
    fn a_day_starts_at_local_midnight() {
        let date = chrono::NaiveDate::from_ymd_opt(2025, 6, 13).unwrap();
        let start = local_day_start(date);
        assert_eq!(display(start), "2025-06-13 00:00:00");
        assert_eq!(display(start - 1), "2025-06-12 23:59:59");
    }
}
