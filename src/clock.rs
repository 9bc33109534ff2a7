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

/// `2025-06-13 18:45:30`: the seed's format for stored dates.
pub fn display(at: Micros) -> String {
    use chrono::{Datelike, Timelike};
    // Written out rather than through a strftime pattern, which is parsed again on every call:
    // every listed image shows one.
    let t = local(at);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
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

/// `2025-06-13T18:45:30.123456`: the seed's format for `/api/status`.
pub fn iso(at: Micros) -> String {
    local(at).format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

/// `20250613_184530`: the date part of stored file names.
pub fn filename_stamp(at: Micros) -> String {
    local(at).format("%Y%m%d_%H%M%S").to_string()
}

pub const SECOND: Micros = 1_000_000;
pub const HOUR: Micros = 3_600 * SECOND;
pub const DAY: Micros = 24 * HOUR;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_pads_like_the_seeds_format_and_reads_back() {
        for at in [
            0,
            1_000_000,
            1_749_840_330_123_456,
            978_307_199_999_999,
            4_102_444_800_000_000,
        ] {
            let shown = display(at);
            assert_eq!(shown, local(at).format("%Y-%m-%d %H:%M:%S").to_string());
            assert_eq!(parse_display(&shown), Some(at - at.rem_euclid(SECOND)));
        }
    }
}
