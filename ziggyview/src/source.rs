//! Which files to read: the day folders and channel files of docs/PROTOCOL.md §6, and the channel pattern.

use std::path::{Path, PathBuf};

use ziggy_proto::day::Day;

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
    /// Parses `request`, `request*` or `*`. An empty pattern is refused (it used to match
    /// everything, which `''` in a script rarely means).
    pub fn parse(s: &str) -> Result<ChannelPattern, String> {
        if s.is_empty() {
            return Err(
                "empty channel pattern: give a channel (`request`), a prefix (`request*`), or `*` for every channel"
                    .into(),
            );
        }
        if s == "*" {
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
    Day::parse(s).map(|day| day.0).ok_or_else(bad)
}

/// Today's day number (UTC).
pub fn today() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    (secs / 86_400) as i64
}

/// What a `--log-path` listing found.
#[derive(Debug, Default)]
pub struct Listing {
    /// The channel files to read, by day, then name.
    pub files: Vec<PathBuf>,
    /// Matching entries that are not regular files (FIFOs, sockets, devices, directories) or whose
    /// metadata could not be read: reported on stderr and skipped, never opened.
    pub skipped: u64,
}

/// The files of channels matching `pattern` in the day folders from `start` to `end` inclusive
/// (default: today UTC). Errors when the log path or every day folder of the range is missing;
/// when only some are, one summary line goes to stderr. The log path is listed once (not probed
/// day by day), so a range of centuries costs no more than the folders that exist.
pub fn files_for_range(
    log_path: &Path,
    pattern: &str,
    start: Option<&str>,
    end: Option<&str>,
) -> Result<Listing, String> {
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
    let unreadable = || {
        format!(
            "log path {} is not a readable directory",
            log_path.display()
        )
    };
    if !log_path.is_dir() {
        return Err(unreadable());
    }
    let day_name = |day: i64| Day(day).to_string();
    // Day folders in the range, in order.
    let mut days: Vec<(i64, PathBuf)> = std::fs::read_dir(log_path)
        .map_err(|_| unreadable())?
        .flatten()
        .filter_map(|e| {
            let day = parse_day(e.file_name().to_str()?).ok()?;
            let path = e.path();
            ((first..=last).contains(&day) && path.is_dir()).then_some((day, path))
        })
        .collect();
    days.sort();
    let total = last - first + 1;
    let missing = total - days.len() as i64;
    if days.is_empty() {
        return Err(if total == 1 {
            format!("no day folder {}", log_path.join(day_name(first)).display())
        } else {
            format!(
                "no day folder between {} and {}",
                log_path.join(day_name(first)).display(),
                log_path.join(day_name(last)).display()
            )
        });
    }
    if missing > 0 {
        eprintln!(
            "ziggyview: no day folder for {missing} of {total} days in {}..{} under {}{}",
            day_name(first),
            day_name(last),
            log_path.display(),
            missing_days(first, last, &days)
        );
    }
    let mut listing = Listing::default();
    for (day, folder) in days {
        let suffix = format!(".{}.bson", day_name(day));
        let Ok(entries) = std::fs::read_dir(&folder) else {
            eprintln!("ziggyview: cannot list {}, skipped", folder.display());
            listing.skipped += 1;
            continue;
        };
        let mut day_files: Vec<PathBuf> = entries
            .flatten()
            .filter_map(|e| {
                let file_name = e.file_name().into_string().ok()?;
                let channel = file_name.strip_suffix(&suffix)?;
                pattern.matches(channel).then(|| e.path())
            })
            .collect();
        day_files.sort();
        for path in day_files {
            match regular_file(&path) {
                Ok(()) => listing.files.push(path),
                Err(why) => {
                    eprintln!(
                        "ziggyview: {}: {why}, skipped",
                        crate::safe::escape(&path.display().to_string())
                    );
                    listing.skipped += 1;
                }
            }
        }
    }
    Ok(listing)
}

/// `: 20240102, 20240105` when at most five days are missing (found from the gaps between the
/// folders that exist, without walking the range), else nothing.
fn missing_days(first: i64, last: i64, found: &[(i64, PathBuf)]) -> String {
    let mut gaps = Vec::new();
    let mut next = first;
    for day in found.iter().map(|(d, _)| *d).chain([last + 1]) {
        if day - next + gaps.len() as i64 > 5 {
            return String::new();
        }
        gaps.extend(next..day);
        next = day + 1;
    }
    let names: Vec<String> = gaps.iter().map(|d| Day(*d).to_string()).collect();
    format!(": {}", names.join(", "))
}

/// `Ok` for a regular file (symbolic links followed), else what it is instead. Looks at metadata
/// only: a FIFO is never opened.
pub fn regular_file(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt;
    let kind = std::fs::metadata(path)
        .map_err(|e| e.to_string())?
        .file_type();
    if kind.is_file() {
        return Ok(());
    }
    let what = if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else if kind.is_dir() {
        "a directory"
    } else {
        "something else"
    };
    Err(format!("not a regular file ({what})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_round_trip_and_reject_nonsense() {
        assert_eq!(parse_day("19700101"), Ok(0));
        assert_eq!(
            parse_day("20240229").map(|d| Day(d).to_string()),
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
        assert!(ChannelPattern::parse("").is_err());
        assert_eq!(ChannelPattern::parse("*"), Ok(ChannelPattern::Any));
    }

    #[test]
    fn missing_days_are_named_only_when_few() {
        let found = |days: &[i64]| -> Vec<(i64, PathBuf)> {
            days.iter().map(|d| (*d, PathBuf::new())).collect()
        };
        assert_eq!(
            missing_days(0, 4, &found(&[1, 3])),
            ": 19700101, 19700103, 19700105"
        );
        assert_eq!(missing_days(0, 50_000, &found(&[7])), "");
    }
}
