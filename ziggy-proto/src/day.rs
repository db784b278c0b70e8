//! UTC days and the file layout (docs/PROTOCOL.md §6): `DIR/YYYYMMDD/<channel>.YYYYMMDD.bson`,
//! the day being the UTC date of the event's `start`.

use std::fmt;
use std::path::{Path, PathBuf};

/// A UTC day, counted from 1970-01-01 (day 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(pub i64);

impl Day {
    /// The UTC day of a Unix time in seconds. Clamped to ±1e9 days, so a corrupt time of 1e300
    /// cannot overflow the calendar arithmetic; NaN counts as the epoch.
    ///
    /// ```
    /// use ziggy_proto::day::Day;
    /// assert_eq!(Day::from_unix(0.0).to_string(), "19700101");
    /// assert_eq!(Day::from_unix(1_709_164_800.5).to_string(), "20240229");
    /// ```
    pub fn from_unix(unix_secs: f64) -> Day {
        let days = (unix_secs / 86_400.0).floor();
        Day(if days.is_nan() {
            0
        } else {
            (days as i64).clamp(-1_000_000_000, 1_000_000_000)
        })
    }

    /// Unix seconds at the start of this day.
    pub fn start_unix(self) -> f64 {
        self.0 as f64 * 86_400.0
    }

    /// The `(year, month, day)` civil date.
    ///
    /// ```
    /// use ziggy_proto::day::Day;
    /// assert_eq!(Day::from_unix(951_782_400.0).civil(), (2000, 2, 29));
    /// ```
    pub fn civil(self) -> (i64, u32, u32) {
        // Howard Hinnant's days-to-civil algorithm: exact for the proleptic Gregorian calendar.
        let z = self.0 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let y = yoe + era * 400;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        (if m <= 2 { y + 1 } else { y }, m, d)
    }

    /// The day of a civil date, if it is one (`2023, 2, 29` is not).
    pub fn from_civil(year: i64, month: u32, day: u32) -> Option<Day> {
        if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
            return None;
        }
        // Hinnant's days-from-civil, checked by the round trip below.
        let y = if month <= 2 { year - 1 } else { year };
        let era = y.div_euclid(400);
        let yoe = y.rem_euclid(400);
        let mp = (i64::from(month) + 9) % 12;
        let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let found = Day(era * 146_097 + doe - 719_468);
        (found.civil() == (year, month, day)).then_some(found)
    }

    /// Parses `YYYYMMDD`.
    ///
    /// ```
    /// use ziggy_proto::day::Day;
    /// assert_eq!(Day::parse("20240229").unwrap().to_string(), "20240229");
    /// assert!(Day::parse("20230229").is_none());
    /// assert!(Day::parse("2024-02-29").is_none());
    /// ```
    pub fn parse(text: &str) -> Option<Day> {
        if text.len() != 8 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let year = text[..4].parse().ok()?;
        let month = text[4..6].parse().ok()?;
        let day = text[6..].parse().ok()?;
        Day::from_civil(year, month, day)
    }

    /// The next day.
    pub fn next(self) -> Day {
        Day(self.0 + 1)
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.civil();
        write!(f, "{y:04}{m:02}{d:02}")
    }
}

/// The file one channel's events of one day live in: `DIR/YYYYMMDD/<channel>.YYYYMMDD.bson`.
///
/// `channel` must have passed [`crate::channel::validate_channel_name`]: a valid name holds no
/// `/` and no `..`, so the path cannot leave `dir`.
///
/// ```
/// use ziggy_proto::day::{Day, log_file_path};
/// let day = Day::parse("20240229").unwrap();
/// let p = log_file_path("/var/log/ziggy".as_ref(), "request.sql", day);
/// assert_eq!(p, std::path::Path::new("/var/log/ziggy/20240229/request.sql.20240229.bson"));
/// ```
pub fn log_file_path(dir: &Path, channel: &str, day: Day) -> PathBuf {
    dir.join(day.to_string())
        .join(format!("{channel}.{day}.bson"))
}

/// The channel of a file name laid out as `<channel>.YYYYMMDD.bson` for `day`, if it is one.
pub fn channel_of_file_name(name: &str, day: Day) -> Option<&str> {
    name.strip_suffix(&format!(".{day}.bson"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_round_trip_over_centuries() {
        for d in (-800_000..800_000).step_by(997) {
            let day = Day(d);
            let (y, m, dd) = day.civil();
            assert_eq!(Day::from_civil(y, m, dd), Some(day));
            assert_eq!(
                Day::parse(&day.to_string()).filter(|_| (0..=9999).contains(&y)),
                (0..=9999).contains(&y).then_some(day)
            );
        }
        assert_eq!(Day::from_unix(1e300), Day(1_000_000_000));
        assert_eq!(Day::from_unix(f64::NAN), Day(0));
        assert_eq!(Day::from_unix(-1.0).to_string(), "19691231");
    }

    #[test]
    fn file_names_carry_their_channel() {
        let day = Day::parse("20231114").unwrap();
        assert_eq!(
            channel_of_file_name("request.sql.20231114.bson", day),
            Some("request.sql")
        );
        assert_eq!(channel_of_file_name("request.sql.20231115.bson", day), None);
    }
}
