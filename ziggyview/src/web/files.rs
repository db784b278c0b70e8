//! The log directory as the web view reads it: the day folders and channel files of a range,
//! each opened only once it is known to lie under the log path.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use ziggy_proto::channel::validate_channel_name;
use ziggy_proto::day::{Day, channel_of_file_name, log_file_path};

use crate::source::{ChannelPattern, day_files};
use crate::web::params::{ApiError, DayRange};

/// The log directory, resolved once (symbolic links followed) at start.
#[derive(Debug)]
pub(crate) struct LogRoot {
    root: PathBuf,
}

/// One channel file of one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogFile {
    pub day: Day,
    pub channel: String,
    pub path: PathBuf,
}

/// The files of a range, and what could not be read (said to the page, never printed).
#[derive(Debug, Default)]
pub(crate) struct RangeFiles {
    pub files: Vec<LogFile>,
    pub problems: Vec<String>,
}

/// A place in a range's files: a file and a byte offset in it. Written `YYYYMMDD/channel/offset`
/// (the `next` cursor of a search page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Position {
    pub day: Day,
    pub channel: String,
    pub offset: u64,
}

impl Position {
    /// Parses a cursor: a day, a valid channel name and an offset, nothing else (so no path).
    pub fn parse(cursor: &str) -> Result<Position, ApiError> {
        let bad = |why: &str| ApiError::bad(format!("bad cursor {cursor:?}: {why}"));
        let mut parts = cursor.split('/');
        let (Some(day), Some(channel), Some(offset), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("expected YYYYMMDD/channel/offset"));
        };
        let day = Day::parse(day).ok_or_else(|| bad("not a YYYYMMDD day"))?;
        validate_channel_name(channel).map_err(|e| bad(&e.to_string()))?;
        let offset = offset
            .parse::<u64>()
            .map_err(|_| bad("the offset is not a whole number"))?;
        Ok(Position {
            day,
            channel: channel.to_owned(),
            offset,
        })
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.day, self.channel, self.offset)
    }
}

impl LogRoot {
    /// The directory at `path`, which must exist.
    pub fn open(path: &Path) -> io::Result<LogRoot> {
        let root = std::fs::canonicalize(path)?;
        if !root.is_dir() {
            return Err(io::Error::other("not a directory"));
        }
        Ok(LogRoot { root })
    }

    /// The newest day that has a folder, if any.
    pub fn latest_day(&self) -> Option<Day> {
        self.days().into_iter().next_back()
    }

    /// Every day that has a folder, oldest first.
    pub fn days(&self) -> Vec<Day> {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut days: Vec<Day> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir() || t.is_symlink()))
            .filter_map(|e| Day::parse(e.file_name().to_str()?))
            .collect();
        days.sort();
        days
    }

    /// The files of channels matching `pattern` over `range`, by day, then name.
    pub fn files(&self, pattern: &ChannelPattern, range: DayRange) -> RangeFiles {
        let mut found = RangeFiles::default();
        for day in range.days() {
            let folder = self.root.join(day.to_string());
            if !folder.is_dir() {
                continue;
            }
            let listed = match day_files(&folder, day, pattern) {
                Ok(listed) => listed,
                Err(e) => {
                    found.problems.push(format!("{day}: cannot list: {e}"));
                    continue;
                }
            };
            for (path, why) in listed.skipped {
                found
                    .problems
                    .push(format!("{}: {why}, skipped", self.shown(&path)));
            }
            for path in listed.files {
                let channel = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| channel_of_file_name(n, day));
                // A listed name is `<channel>.YYYYMMDD.bson`; one that is not a channel is
                // something else put there, and is not read.
                match channel.filter(|c| validate_channel_name(c).is_ok()) {
                    Some(channel) => found.files.push(LogFile {
                        day,
                        channel: channel.to_owned(),
                        path: log_file_path(&self.root, channel, day),
                    }),
                    None => found.problems.push(format!(
                        "{}: not a channel file, skipped",
                        self.shown(&path)
                    )),
                }
            }
        }
        found
    }

    /// A path as the page may see it: relative to the log path.
    pub fn shown(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .display()
            .to_string()
    }

    /// Opens a listed file for reading: non-blocking (a FIFO swapped in is not waited on), and
    /// refused unless it is a regular file whose real path lies under the log path (a symbolic
    /// link out of it is not followed).
    pub fn open_file(&self, file: &LogFile) -> io::Result<File> {
        use std::os::unix::fs::OpenOptionsExt;
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&file.path)?;
        let real = real_path(&opened, &file.path)?;
        if !real.starts_with(&self.root) {
            return Err(io::Error::other("leads outside the log path, not read"));
        }
        if !opened.metadata()?.is_file() {
            return Err(io::Error::other("not a regular file, not read"));
        }
        Ok(opened)
    }
}

/// Where an open file really is: what its descriptor points at (so a link swapped in after the
/// open cannot fool the check), or, without /proc, its canonical path.
fn real_path(file: &File, path: &Path) -> io::Result<PathBuf> {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .or_else(|_| std::fs::canonicalize(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_hold_a_day_a_channel_and_an_offset_only() {
        let p = Position::parse("20240229/request.sql/1234").unwrap();
        assert_eq!(p.to_string(), "20240229/request.sql/1234");
        for bad in [
            "",
            "20240229/request",
            "20240229/../etc/passwd/0",
            "20240229/..%2Fetc/0",
            "/etc/passwd",
            "20240229/request/12/3",
            "20240230/request/0",
            "20240229/Request/0",
            "20240229/request/-1",
            "20240229/../0",
        ] {
            assert!(Position::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_link_out_of_the_log_path_is_not_read() {
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("secret.bson");
        std::fs::write(&secret, b"secret").unwrap();
        let logs = tempfile::tempdir().unwrap();
        let day = Day::parse("20240229").unwrap();
        std::fs::create_dir(logs.path().join("20240229")).unwrap();
        std::fs::write(logs.path().join("20240229/request.20240229.bson"), b"").unwrap();
        std::os::unix::fs::symlink(&secret, logs.path().join("20240229/leak.20240229.bson"))
            .unwrap();
        let root = LogRoot::open(logs.path()).unwrap();
        let range = DayRange {
            first: day,
            last: day,
        };
        let listed = root.files(&ChannelPattern::Any, range);
        let channels: Vec<&str> = listed.files.iter().map(|f| f.channel.as_str()).collect();
        assert_eq!(channels, ["leak", "request"]);
        let err = root.open_file(&listed.files[0]).unwrap_err();
        assert!(err.to_string().contains("outside the log path"), "{err}");
        assert!(root.open_file(&listed.files[1]).is_ok());
    }
}
