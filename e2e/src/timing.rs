//! Reads the timestamps the agent writes at the start of each log line
//! (`tracing`'s default: RFC 3339 in UTC, `2026-11-22T14:30:00.123456Z`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The time at the start of an agent log line.
pub fn line_time(line: &str) -> Option<SystemTime> {
    let stamp = line.split_whitespace().next()?;
    parse_rfc3339_utc(stamp)
}

/// The time of the first line of `log` that contains `needle`.
pub fn first_line_with(log: &str, needle: &str) -> Option<SystemTime> {
    log.lines()
        .filter(|line| line.contains(needle))
        .find_map(line_time)
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z`.
pub fn parse_rfc3339_utc(stamp: &str) -> Option<SystemTime> {
    let stamp = stamp.strip_suffix('Z')?;
    let (date, time) = stamp.split_once('T')?;
    let mut date = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (date.next()??, date.next()??, date.next()??);
    let (hms, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut hms = hms.splitn(3, ':').map(|p| p.parse::<u64>().ok());
    let (hour, minute, second) = (hms.next()??, hms.next()??, hms.next()??);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let nanos = if fraction.is_empty() {
        0
    } else {
        if fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        format!("{fraction:0<9}").parse::<u32>().ok()?
    };
    let days = days_from_civil(year, month, day);
    let seconds = u64::try_from(days).ok()? * 86_400 + hour * 3600 + minute * 60 + second;
    Some(UNIX_EPOCH + Duration::new(seconds, nanos))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// `later - earlier`, or `None` when `later` is before `earlier`.
pub fn between(earlier: SystemTime, later: SystemTime) -> Option<Duration> {
    later.duration_since(earlier).ok()
}

/// A duration in milliseconds with one decimal.
pub fn millis(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tracing_timestamps() {
        let t = parse_rfc3339_utc("1970-01-02T00:00:01.5Z").unwrap();
        assert_eq!(t, UNIX_EPOCH + Duration::from_millis(86_401_500));
        let t = parse_rfc3339_utc("2024-02-29T12:00:00.000001Z").unwrap();
        assert_eq!(
            t.duration_since(UNIX_EPOCH).unwrap(),
            Duration::new(1_709_208_000, 1_000)
        );
        assert!(parse_rfc3339_utc("2024-13-01T00:00:00Z").is_none());
        assert!(parse_rfc3339_utc("not a time").is_none());
        let log =
            "2024-02-29T12:00:00.000001Z  INFO waiting\n2024-02-29T12:00:01Z  INFO pushing a\n";
        assert_eq!(
            first_line_with(log, "pushing"),
            parse_rfc3339_utc("2024-02-29T12:00:01Z")
        );
    }
}
