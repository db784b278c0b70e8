//! Command-line interface of `ziggyview`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::source::{ChannelPattern, files_for_range};
use crate::view::{ViewError, ViewOptions, Viewer};

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: an input was truncated, corrupt or unreadable, or the daemon did not answer.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code: bad flags, dates, channel patterns or paths.
pub const EXIT_USAGE: u8 = 2;

/// When to colour readable output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless NO_COLOR is set.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// ziggyview shows ziggy events from files, stdin, or a live ziggyd.
///
/// `cat FILE.bson | ziggyview`, `ziggyview FILE...`, `ziggyview --log-path DIR CHANNEL`,
/// `ziggyview -H HOST:PORT CHANNEL`. CHANNEL is exact (`request`) or a prefix (`request*`).
#[derive(Debug, Parser)]
#[command(name = "ziggyview", version, about)]
pub struct Cli {
    /// With --log-path or -H: the CHANNEL (exact, or `prefix*`). Otherwise: BSON files to read
    /// (`-` for stdin; none reads stdin).
    #[arg(value_name = "CHANNEL | FILE")]
    pub args: Vec<String>,

    /// Live: the daemon's control endpoint (HOST:PORT), or its collect address (the control
    /// endpoint is then the port below, as in the default 3514/3513 layout); streams until
    /// interrupted or --count.
    #[arg(short = 'H', long = "host", value_name = "HOST:PORT")]
    pub host: Option<String>,

    /// Read the channel's files under this directory (DIR/YYYYMMDD/TYPE.YYYYMMDD.bson).
    #[arg(long, value_name = "DIR")]
    pub log_path: Option<PathBuf>,

    /// First day to read (UTC, YYYYMMDD); default today.
    #[arg(long, value_name = "YYYYMMDD", requires = "log_path")]
    pub start_date: Option<String>,

    /// Last day to read, inclusive (UTC, YYYYMMDD); default today.
    #[arg(long, value_name = "YYYYMMDD", requires = "log_path")]
    pub end_date: Option<String>,

    /// With files or stdin: only events of this channel (exact, or `prefix*`).
    #[arg(long, value_name = "CHANNEL")]
    pub channel: Option<String>,

    /// One JSON object per line (for jq) instead of readable blocks.
    #[arg(long)]
    pub json: bool,

    /// Colours in readable output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    /// Only these body keys (comma-separated, dotted paths allowed: `a,b.c`).
    #[arg(long, value_name = "KEYS", value_delimiter = ',')]
    pub fields: Option<Vec<String>>,

    /// Join events sharing an id into one tree (parent with its sub-contexts, in start order).
    #[arg(long)]
    pub group: bool,

    /// With --group: a group is printed once no event of it came within this many seconds of the
    /// newest event read (bounds memory on huge inputs).
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    pub group_window: f64,

    /// Count, min, p50, p90, p99, max and a histogram of this numeric body key, per channel.
    #[arg(long, value_name = "KEY")]
    pub stats: Option<String>,

    /// Stop after this many matching events.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,

    /// Live: how long to wait for the daemon's control endpoint, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 3000)]
    pub timeout_ms: u64,
}

fn usage(message: &str) -> ExitCode {
    eprintln!("ziggyview: {message}");
    ExitCode::from(EXIT_USAGE)
}

fn failure(message: &str) -> ExitCode {
    eprintln!("ziggyview: {message}");
    ExitCode::from(EXIT_FAILURE)
}

/// Runs the command line; returns the exit code.
pub fn main_with(cli: Cli) -> ExitCode {
    let channel_mode = cli.host.is_some() || cli.log_path.is_some();
    let pattern_text = if channel_mode {
        match cli.args.as_slice() {
            [channel] => channel.clone(),
            [] => return usage("give the CHANNEL to read, e.g. `request` or `request*`"),
            _ => return usage("with --log-path or -H, give exactly one CHANNEL"),
        }
    } else {
        cli.channel.clone().unwrap_or_else(|| "*".into())
    };
    let pattern = match ChannelPattern::parse(&pattern_text) {
        Ok(p) => p,
        Err(e) => return usage(&e),
    };
    let color = match cli.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
        }
    };
    let options = ViewOptions {
        pattern: pattern.clone(),
        json: cli.json,
        color,
        fields: cli.fields.clone(),
        group_window: cli.group.then_some(cli.group_window),
        stats_key: cli.stats.clone(),
        count: cli.count,
    };
    let stdout = std::io::stdout().lock();
    let mut viewer = Viewer::new(std::io::BufWriter::with_capacity(1 << 16, stdout), options);

    if let Some(host) = &cli.host {
        return match crate::live::run(
            host,
            &mut viewer,
            pattern.subscription(),
            Duration::from_millis(cli.timeout_ms),
        ) {
            Ok(()) => ExitCode::from(EXIT_OK),
            Err(e) => failure(&e.to_string()),
        };
    }
    let inputs: Vec<PathBuf> = match &cli.log_path {
        Some(dir) => match files_for_range(
            dir,
            &pattern_text,
            cli.start_date.as_deref(),
            cli.end_date.as_deref(),
        ) {
            Ok(files) => files,
            Err(e) => return usage(&e),
        },
        None => cli.args.iter().map(PathBuf::from).collect(),
    };
    let result = if inputs.is_empty() {
        viewer.read_file(std::io::stdin().lock(), "<stdin>")
    } else {
        read_files(&mut viewer, &inputs)
    };
    let finished = viewer.finish();
    match (result, finished) {
        (Err(ViewError::Output(e)), _) | (Ok(()), Err(e))
            if e.kind() == std::io::ErrorKind::BrokenPipe =>
        {
            ExitCode::from(EXIT_OK)
        }
        (Err(e), _) => failure(&e.to_string()),
        (Ok(()), Err(e)) => failure(&format!("writing output: {e}")),
        (Ok(()), Ok(())) => ExitCode::from(EXIT_OK),
    }
}

fn read_files<W: Write>(viewer: &mut Viewer<W>, files: &[PathBuf]) -> Result<(), ViewError> {
    for path in files {
        if viewer.done() {
            break;
        }
        let name = path.display().to_string();
        if name == "-" {
            viewer.read_file(std::io::stdin().lock(), "<stdin>")?;
            continue;
        }
        let file = std::fs::File::open(path).map_err(|error| crate::reader::ReadError::Io {
            source_name: name.clone(),
            error,
        })?;
        viewer.read_file(file, &name)?;
    }
    Ok(())
}
