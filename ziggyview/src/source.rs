//! Which files to read: the day folders and channel files of docs/PROTOCOL.md §6, and the channel pattern.

use std::fmt;
use std::path::{Path, PathBuf};

use ziggy_proto::channel::{ChannelNameError, validate_channel_name};
use ziggy_proto::day::{Day, channel_of_file_name};

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

/// Why a channel pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// The empty pattern.
    #[error(
        "empty channel pattern: give a channel (`request`), a prefix (`request*`), or `*` for every channel"
    )]
    Empty,
    /// Not a channel name, or not the start of one.
    #[error("bad channel pattern {pattern:?}: {reason}")]
    BadName {
        /// The pattern as given.
        pattern: String,
        /// What the channel rule says.
        reason: ChannelNameError,
    },
}

impl ChannelPattern {
    /// Parses `request`, `request*` or `*`. An empty pattern is refused (it used to match
    /// everything, which `''` in a script rarely means).
    pub fn parse(s: &str) -> Result<ChannelPattern, PatternError> {
        if s.is_empty() {
            return Err(PatternError::Empty);
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
            validate_channel_name(check).map_err(|reason| PatternError::BadName {
                pattern: s.to_owned(),
                reason,
            })?;
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
    #[inline]
    pub fn matches_bytes(&self, channel: &[u8]) -> bool {
        match self {
            ChannelPattern::Any => true,
            ChannelPattern::Exact(c) => channel == c.as_bytes(),
            ChannelPattern::Prefix(p) => channel.starts_with(p.as_bytes()),
        }
    }

    /// The ZeroMQ subscription prefix that covers the pattern.
    pub(crate) fn subscription(&self) -> &str {
        match self {
            ChannelPattern::Any => "",
            ChannelPattern::Exact(c) | ChannelPattern::Prefix(c) => c,
        }
    }
}

/// A date that is not `YYYYMMDD`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad date {0:?}: expected YYYYMMDD, e.g. 20240229")]
pub struct BadDate(pub String);

/// Parses `YYYYMMDD`.
fn parse_day(s: &str) -> Result<Day, BadDate> {
    Day::parse(s).ok_or_else(|| BadDate(s.to_owned()))
}

/// Today (UTC).
fn today() -> Day {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Day((secs / 86_400) as i64)
}

/// Why a `--log-path` listing could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ListingError {
    /// `--start-date` or `--end-date` is not a date.
    #[error(transparent)]
    Date(#[from] BadDate),
    /// The range is backwards.
    #[error("--end-date is before --start-date ({} < {} in days)", .last.0, .first.0)]
    EndBeforeStart {
        /// The start date.
        first: Day,
        /// The end date.
        last: Day,
    },
    /// The log path cannot be listed.
    #[error("log path {} is not a readable directory", .0.display())]
    Unreadable(PathBuf),
    /// The one day of the range has no folder.
    #[error("no day folder {}", .0.display())]
    NoDayFolder(PathBuf),
    /// No day of the range has a folder.
    #[error("no day folder between {} and {}", .first.display(), .last.display())]
    NoDayFolders {
        /// The first day's folder.
        first: PathBuf,
        /// The last day's folder.
        last: PathBuf,
    },
}

/// A day folder of the range.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct DayFolder {
    day: Day,
    path: PathBuf,
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
/// (`YYYYMMDD`, default: today UTC). Errors when the log path or every day folder of the range
/// is missing; when only some are, one summary line goes to stderr. The log path is listed once
/// (not probed day by day), so a range of centuries costs no more than the folders that exist.
pub fn files_for_range(
    log_path: &Path,
    pattern: &ChannelPattern,
    start: Option<&str>,
    end: Option<&str>,
) -> Result<Listing, ListingError> {
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
        return Err(ListingError::EndBeforeStart { first, last });
    }
    let unreadable = || ListingError::Unreadable(log_path.to_owned());
    if !log_path.is_dir() {
        return Err(unreadable());
    }
    // Day folders in the range, in order.
    let mut days: Vec<DayFolder> = std::fs::read_dir(log_path)
        .map_err(|_| unreadable())?
        .flatten()
        .filter_map(|e| {
            let day = parse_day(e.file_name().to_str()?).ok()?;
            let path = e.path();
            ((first..=last).contains(&day) && path.is_dir()).then_some(DayFolder { day, path })
        })
        .collect();
    days.sort();
    let total = last.0 - first.0 + 1;
    let missing = total - days.len() as i64;
    if days.is_empty() {
        let folder = |day: Day| log_path.join(day.to_string());
        return Err(if total == 1 {
            ListingError::NoDayFolder(folder(first))
        } else {
            ListingError::NoDayFolders {
                first: folder(first),
                last: folder(last),
            }
        });
    }
    if missing > 0 {
        eprintln!(
            "ziggyview: no day folder for {missing} of {total} days in {first}..{last} under {}{}",
            log_path.display(),
            missing_days(first, last, &days)
        );
    }
    let mut listing = Listing::default();
    for DayFolder { day, path: folder } in days {
        let Ok(found) = day_files(&folder, day, pattern) else {
            eprintln!("ziggyview: cannot list {}, skipped", folder.display());
            listing.skipped += 1;
            continue;
        };
        for (path, why) in found.skipped {
            eprintln!(
                "ziggyview: {}: {why}, skipped",
                crate::safe::escape(&path.display().to_string())
            );
            listing.skipped += 1;
        }
        listing.files.extend(found.files);
    }
    Ok(listing)
}

/// The channel files of one day folder.
#[derive(Debug, Default)]
pub(crate) struct DayFiles {
    /// Regular files of matching channels, by name.
    pub files: Vec<PathBuf>,
    /// Matching entries that are not regular files, and why (never opened).
    pub skipped: Vec<(PathBuf, String)>,
}

/// The files of channels matching `pattern` in the folder of `day` (laid out as
/// `<channel>.YYYYMMDD.bson`); nothing is printed. Errors only when the folder cannot be listed.
pub(crate) fn day_files(
    folder: &Path,
    day: Day,
    pattern: &ChannelPattern,
) -> std::io::Result<DayFiles> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(folder)?
        .flatten()
        .filter_map(|e| {
            let file_name = e.file_name().into_string().ok()?;
            let channel = channel_of_file_name(&file_name, day)?;
            pattern.matches(channel).then(|| e.path())
        })
        .collect();
    names.sort();
    let mut found = DayFiles::default();
    for path in names {
        match regular_file(&path) {
            Ok(()) => found.files.push(path),
            Err(why) => found.skipped.push((path, why.to_string())),
        }
    }
    Ok(found)
}

/// `: 20240102, 20240105` when at most five days are missing (found from the gaps between the
/// folders that exist, without walking the range), else nothing.
fn missing_days(first: Day, last: Day, found: &[DayFolder]) -> String {
    let mut gaps = Vec::new();
    let mut next = first.0;
    for day in found.iter().map(|f| f.day.0).chain([last.0 + 1]) {
        if day - next + gaps.len() as i64 > 5 {
            return String::new();
        }
        gaps.extend(next..day);
        next = day + 1;
    }
    let names: Vec<String> = gaps.iter().map(|d| Day(*d).to_string()).collect();
    format!(": {}", names.join(", "))
}

/// Why a listed entry is not read.
#[derive(Debug, thiserror::Error)]
enum NotRegular {
    /// Its metadata could not be read.
    #[error(transparent)]
    Metadata(std::io::Error),
    /// It is something else.
    #[error("not a regular file ({0})")]
    Kind(FileKind),
}

/// What a listed entry is instead of a regular file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileKind {
    Fifo,
    Socket,
    Device,
    Directory,
    Other,
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::Fifo => "a FIFO",
            FileKind::Socket => "a socket",
            FileKind::Device => "a device",
            FileKind::Directory => "a directory",
            FileKind::Other => "something else",
        })
    }
}

/// `Ok` for a regular file (symbolic links followed), else what it is instead. Looks at metadata
/// only: a FIFO is never opened.
fn regular_file(path: &Path) -> Result<(), NotRegular> {
    use std::os::unix::fs::FileTypeExt;
    let kind = std::fs::metadata(path)
        .map_err(NotRegular::Metadata)?
        .file_type();
    if kind.is_file() {
        return Ok(());
    }
    Err(NotRegular::Kind(if kind.is_fifo() {
        FileKind::Fifo
    } else if kind.is_socket() {
        FileKind::Socket
    } else if kind.is_char_device() || kind.is_block_device() {
        FileKind::Device
    } else if kind.is_dir() {
        FileKind::Directory
    } else {
        FileKind::Other
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_round_trip_and_reject_nonsense() {
        assert_eq!(parse_day("19700101"), Ok(Day(0)));
        assert_eq!(
            parse_day("20240229").map(|d| d.to_string()),
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
        let found = |days: &[i64]| -> Vec<DayFolder> {
            days.iter()
                .map(|d| DayFolder {
                    day: Day(*d),
                    path: PathBuf::new(),
                })
                .collect()
        };
        assert_eq!(
            missing_days(Day(0), Day(4), &found(&[1, 3])),
            ": 19700101, 19700103, 19700105"
        );
        assert_eq!(missing_days(Day(0), Day(50_000), &found(&[7])), "");
    }
}
