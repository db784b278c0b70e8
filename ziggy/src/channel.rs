//! Channel names and the on-disk layout that `ziggyd` writes and `ziggyview` reads.

use std::path::{Path, PathBuf};

pub use crate::channel_rule::{
    ChannelNameError, MAX_CHANNEL_LEN, is_self_or_ancestor, validate_channel_name,
};

/// The day folder name (`YYYYMMDD`, UTC) for a Unix time in seconds.
///
/// ```
/// assert_eq!(ziggy::channel::utc_day(0.0), "19700101");
/// assert_eq!(ziggy::channel::utc_day(1_709_164_800.5), "20240229");
/// ```
pub fn utc_day(unix_secs: f64) -> String {
    let (y, m, d) = civil_from_unix(unix_secs);
    format!("{y:04}{m:02}{d:02}")
}

/// The `(year, month, day)` UTC civil date of a Unix time in seconds.
///
/// ```
/// assert_eq!(ziggy::channel::civil_from_unix(951_782_400.0), (2000, 2, 29));
/// assert!(ziggy::channel::validate_channel_name("request.sql").is_ok());
/// assert!(ziggy::channel::is_self_or_ancestor("request", "request.sql"));
/// ```
pub fn civil_from_unix(unix_secs: f64) -> (i64, u32, u32) {
    // Clamped to ±1e9 days (a corrupt `start` of 1e300 must not overflow the arithmetic below);
    // NaN counts as the epoch.
    let days = ((unix_secs / 86_400.0).floor() as i64).clamp(-1_000_000_000, 1_000_000_000);
    // Howard Hinnant's days-to-civil algorithm: exact for the proleptic Gregorian calendar.
    let z = days + 719_468;
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

/// The file one channel's events of one day live in: `DIR/YYYYMMDD/<channel>.YYYYMMDD.bson` (docs/PROTOCOL.md §6).
///
/// `channel` must have passed [`validate_channel_name`]: a valid name holds no `/` and no `..`, so the
/// path cannot leave `dir`.
///
/// ```
/// let p = ziggy::channel::log_file_path("/var/log/ziggy".as_ref(), "request.sql", "20240229");
/// assert_eq!(p, std::path::Path::new("/var/log/ziggy/20240229/request.sql.20240229.bson"));
/// ```
pub fn log_file_path(dir: &Path, channel: &str, day: &str) -> PathBuf {
    dir.join(day).join(format!("{channel}.{day}.bson"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names() {
        for ok in ["request", "request.sql", "a_b.c9.0", "x"] {
            assert_eq!(validate_channel_name(ok), Ok(()), "{ok}");
        }
        assert!(validate_channel_name(&"a".repeat(128)).is_ok());
    }

    #[test]
    fn invalid_names() {
        assert_eq!(validate_channel_name(""), Err(ChannelNameError::Empty));
        assert_eq!(
            validate_channel_name("a..b"),
            Err(ChannelNameError::EmptySegment { offset: 2 })
        );
        assert_eq!(
            validate_channel_name(".a"),
            Err(ChannelNameError::EmptySegment { offset: 0 })
        );
        assert_eq!(
            validate_channel_name("a."),
            Err(ChannelNameError::EmptySegment { offset: 2 })
        );
        assert_eq!(
            validate_channel_name("a/b"),
            Err(ChannelNameError::InvalidChar { ch: '/', offset: 1 })
        );
        assert_eq!(
            validate_channel_name("Request"),
            Err(ChannelNameError::InvalidChar { ch: 'R', offset: 0 })
        );
        assert!(matches!(
            validate_channel_name("a\0"),
            Err(ChannelNameError::InvalidChar { ch: '\0', .. })
        ));
        assert_eq!(
            validate_channel_name(&"a".repeat(129)),
            Err(ChannelNameError::TooLong(129))
        );
    }

    #[test]
    fn ancestry() {
        assert!(is_self_or_ancestor("request", "request"));
        assert!(is_self_or_ancestor("request", "request.sql"));
        assert!(is_self_or_ancestor("request", "request.sql.read"));
        assert!(!is_self_or_ancestor("request", "requests"));
        assert!(!is_self_or_ancestor("request.sql", "request"));
    }

    #[test]
    fn civil_dates() {
        assert_eq!(utc_day(0.0), "19700101");
        assert_eq!(utc_day(86_399.9), "19700101");
        assert_eq!(utc_day(86_400.0), "19700102");
        assert_eq!(utc_day(951_782_400.0), "20000229");
        assert_eq!(utc_day(1_735_689_599.0), "20241231");
        assert_eq!(utc_day(-1.0), "19691231");
        // Found by fuzzing the viewer: absurd times must not overflow.
        for wild in [1e300, -1e300, f64::INFINITY, f64::NEG_INFINITY, f64::NAN] {
            let _ = civil_from_unix(wild);
        }
    }
}
