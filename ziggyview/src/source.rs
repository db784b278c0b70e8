//! Which files to read: the day folders and channel files of SPEC §4, and the channel pattern.

use std::path::{Path, PathBuf};

/// `request` (exact) or `request*` (prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelPattern {
    /// Every channel.
    Any,
    /// Exactly this channel.
    Exact(String),
    /// Every channel starting with this.
    Prefix(String),
}

impl ChannelPattern {
    /// Parses `request`, `request*` or `*`.
    pub fn parse(s: &str) -> Result<ChannelPattern, String> {
        if s == "*" || s.is_empty() {
            return Ok(ChannelPattern::Any);
        }
        let (name, prefix) = match s.strip_suffix('*') {
            Some(p) => (p, true),
            None => (s, false),
        };
        let check = name.trim_end_matches('.');
        if !check.is_empty() {
            ziggy::channel::validate_channel_name(check)
                .map_err(|e| format!("bad channel pattern {s:?}: {e}"))?;
        }
        Ok(if prefix {
            ChannelPattern::Prefix(name.to_owned())
        } else {
            ChannelPattern::Exact(name.to_owned())
        })
    }

    /// Whether `channel` matches.
    pub fn matches(&self, channel: &str) -> bool {
        match self {
            ChannelPattern::Any => true,
            ChannelPattern::Exact(c) => channel == c,
            ChannelPattern::Prefix(p) => channel.starts_with(p.as_str()),
        }
    }

    /// Whether a channel given as bytes matches (no UTF-8 check needed: patterns are ASCII).
    pub fn matches_bytes(&self, channel: &[u8]) -> bool {
        match self {
            ChannelPattern::Any => true,
            ChannelPattern::Exact(c) => channel == c.as_bytes(),
            ChannelPattern::Prefix(p) => channel.starts_with(p.as_bytes()),
        }
    }

    /// The ZeroMQ subscription prefix that covers the pattern.
    pub fn subscription(&self) -> &str {
        match self {
            ChannelPattern::Any => "",
            ChannelPattern::Exact(c) | ChannelPattern::Prefix(c) => c,
        }
    }
}

/// Parses `YYYYMMDD` into a day number (days since 1970-01-01).
pub fn parse_day(s: &str) -> Result<i64, String> {
    let bad = || format!("bad date {s:?}: expected YYYYMMDD, e.g. 20240229");
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let y: i64 = s[..4].parse().map_err(|_| bad())?;
    let m: u32 = s[4..6].parse().map_err(|_| bad())?;
    let d: u32 = s[6..].parse().map_err(|_| bad())?;
    if !(1..=12).contains(&m) || d == 0 {
        return Err(bad());
    }
    // Days from civil (Howard Hinnant), checked by a round trip so 20230230 is refused.
    let yy = if m <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 } as i64;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    if ziggy::channel::utc_day(days as f64 * 86_400.0) != s {
        return Err(bad());
    }
    Ok(days)
}

/// Today's day number (UTC).
pub fn today() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    (secs / 86_400) as i64
}

/// The files of channels matching `pattern` in the day folders from `start` to `end` inclusive
/// (default: today UTC). Errors when the log path or every day folder of the range is missing;
/// single missing days of a longer range are reported on stderr.
pub fn files_for_range(
    log_path: &Path,
    pattern: &str,
    start: Option<&str>,
    end: Option<&str>,
) -> Result<Vec<PathBuf>, String> {
    let pattern = ChannelPattern::parse(pattern)?;
    let first = start.map(parse_day).transpose()?.unwrap_or_else(today);
    let last = end
        .map(parse_day)
        .transpose()?
        .unwrap_or(if start.is_some() {
            first.max(today())
        } else {
            first
        });
    if last < first {
        return Err(format!(
            "--end-date is before --start-date ({last} < {first} in days)"
        ));
    }
    if !log_path.is_dir() {
        return Err(format!(
            "log path {} is not a readable directory",
            log_path.display()
        ));
    }
    let mut files = Vec::new();
    let mut missing = Vec::new();
    for day in first..=last {
        let name = ziggy::channel::utc_day(day as f64 * 86_400.0);
        let folder = log_path.join(&name);
        let entries = match std::fs::read_dir(&folder) {
            Ok(e) => e,
            Err(_) => {
                missing.push(folder);
                continue;
            }
        };
        let suffix = format!(".{name}.bson");
        let mut day_files: Vec<PathBuf> = entries
            .flatten()
            .filter_map(|e| {
                let file_name = e.file_name().into_string().ok()?;
                let channel = file_name.strip_suffix(&suffix)?;
                pattern.matches(channel).then(|| e.path())
            })
            .collect();
        day_files.sort();
        files.extend(day_files);
    }
    if missing.len() as i64 == last - first + 1 {
        return Err(match missing.as_slice() {
            [one] => format!("no day folder {}", one.display()),
            _ => format!(
                "no day folder between {} and {}",
                missing[0].display(),
                missing[missing.len() - 1].display()
            ),
        });
    }
    for folder in missing {
        eprintln!("ziggyview: no day folder {}, skipped", folder.display());
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_round_trip_and_reject_nonsense() {
        assert_eq!(parse_day("19700101"), Ok(0));
        assert_eq!(
            parse_day("20240229").map(|d| ziggy::channel::utc_day(d as f64 * 86400.0)),
            Ok("20240229".into())
        );
        for bad in [
            "2024022",
            "20230229",
            "20241301",
            "2024-1-01",
            "abcdefgh",
            "20240100",
        ] {
            assert!(parse_day(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn patterns() {
        let p = ChannelPattern::parse("request*").unwrap();
        assert!(p.matches("request") && p.matches("request.sql") && !p.matches("job"));
        let e = ChannelPattern::parse("request").unwrap();
        assert!(e.matches("request") && !e.matches("request.sql"));
        assert!(ChannelPattern::parse("Bad*").is_err());
    }
}
