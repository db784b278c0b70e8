//! Command-line interface of `ziggyview`.

use std::fmt::Display;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use ziggyview::web::{WebConfig, WebError};
use ziggyview::{
    ChannelPattern, LiveError, ReadError, ViewError, ViewOptions, Viewer, escape, files_for_range,
};

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
/// `ziggyview -H HOST:PORT CHANNEL`. CHANNEL is exact (`request`), a prefix (`request*`) or `*`.
/// A corrupt or unreadable file is reported (file, byte offset) and the next one is read; the
/// exit status is then 1. Text from events is printed with control characters escaped.
/// `ziggyview serve --log-path DIR [-H HOST:PORT]` serves the web view instead.
#[derive(Debug, Parser)]
#[command(
    name = "ziggyview",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// `serve`: the web view. Taken as a command only as the first word: `ziggyview ./serve`
    /// reads a file of that name.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// With --log-path or -H: the CHANNEL (exact, or `prefix*`). Otherwise: BSON files to read
    /// (`-` for stdin; none reads stdin).
    #[arg(value_name = "CHANNEL | FILE")]
    pub args: Vec<String>,

    /// Live: the daemon's control endpoint (HOST:PORT), or its collect address (the control
    /// endpoint is then the port below, as in the default 3514/3513 layout). Streams until
    /// --count or SIGINT/SIGTERM (then prints what is held, flushes, exits 0); every event is
    /// flushed at once, for pipes. If the daemon stops answering, says so on stderr and keeps
    /// trying (following it to a new stream port); exits 1 only if it does not answer at the start.
    #[arg(short = 'H', long = "host", value_name = "HOST:PORT")]
    pub host: Option<String>,

    /// Read the channel's files under this directory (DIR/YYYYMMDD/TYPE.YYYYMMDD.bson). Entries
    /// that are not regular files (FIFOs, sockets) are skipped with a message, never opened.
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

    /// Live: how long to wait for each answer of the daemon's control endpoint, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 3000)]
    pub timeout_ms: u64,
}

/// Commands other than viewing.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the web view: search, one request as a waterfall, timer histograms, the live stream.
    ///
    /// The page and its JSON endpoints (docs/WEB.md) are served on loopback unless --listen says
    /// otherwise; there is no authentication, so keep it there (or behind a proxy that has one).
    /// Prints `serving http://ADDRESS/` once it accepts connections; SIGINT or SIGTERM stop it.
    Serve(ServeArgs),
}

/// The flags of `ziggyview serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The log directory to search (DIR/YYYYMMDD/TYPE.YYYYMMDD.bson).
    #[arg(long, value_name = "DIR")]
    pub log_path: Option<PathBuf>,

    /// A ziggyd to stream live from: its control endpoint, or its collect address.
    #[arg(short = 'H', long = "host", value_name = "HOST:PORT")]
    pub host: Option<String>,

    /// Where to serve the page (port 0: any free port).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:3516")]
    pub listen: String,

    /// Also answer requests whose Host is NAME (with the port, or alone on port 80), as well as
    /// the loopback names and the address listened on; repeatable.
    #[arg(long = "allow-host", value_name = "NAME", value_parser = host_name)]
    pub allow_host: Vec<String>,

    /// Live: how long to wait for each answer of the daemon's control endpoint, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 3000)]
    pub timeout_ms: u64,
}

/// A host name or address as a Host header holds it, without the port.
fn host_name(text: &str) -> Result<String, String> {
    let plain = text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    let ipv6 = text.starts_with('[')
        && text.ends_with(']')
        && text[1..text.len() - 1]
            .parse::<std::net::Ipv6Addr>()
            .is_ok();
    if !text.is_empty() && text.len() <= 253 && (plain || ipv6) {
        Ok(text.to_ascii_lowercase())
    } else {
        Err("a host name or address without the port: example.org, 10.0.0.5, [fd00::5]".into())
    }
}

fn usage(message: impl Display) -> ExitCode {
    eprintln!("ziggyview: {}", escape(&message.to_string()));
    ExitCode::from(EXIT_USAGE)
}

fn failure(message: impl Display) -> ExitCode {
    eprintln!("ziggyview: {}", escape(&message.to_string()));
    ExitCode::from(EXIT_FAILURE)
}

/// Runs the command line; returns the exit code.
pub fn main_with(cli: Cli) -> ExitCode {
    if let Some(Command::Serve(args)) = cli.command {
        return serve(args);
    }
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
        Err(e) => return usage(e),
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
        return live(&mut viewer, host, Duration::from_millis(cli.timeout_ms));
    }
    let result = match &cli.log_path {
        Some(dir) => {
            let listing = match files_for_range(
                dir,
                &pattern,
                cli.start_date.as_deref(),
                cli.end_date.as_deref(),
            ) {
                Ok(listing) => listing,
                Err(e) => return usage(e),
            };
            viewer.count_problems(listing.skipped);
            read_files(&mut viewer, &listing.files, true)
        }
        None if cli.args.is_empty() => read_one(&mut viewer, Path::new("-"), false),
        None => {
            let files: Vec<PathBuf> = cli.args.iter().map(PathBuf::from).collect();
            read_files(&mut viewer, &files, false)
        }
    };
    let finished = viewer.finish();
    match result.err().or(finished.err()) {
        Some(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::from(EXIT_OK),
        Some(e) => failure(format_args!("writing output: {e}")),
        None if viewer.problems() > 0 => ExitCode::from(EXIT_FAILURE),
        None => ExitCode::from(EXIT_OK),
    }
}

/// `ziggyview serve`: runs the web view until SIGINT or SIGTERM.
fn serve(args: ServeArgs) -> ExitCode {
    let config = WebConfig {
        log_path: args.log_path,
        live: args.host,
        listen: args.listen,
        allow_hosts: args.allow_host,
        timeout: Duration::from_millis(args.timeout_ms),
    };
    let ready = |addr: std::net::SocketAddr| {
        println!("serving http://{addr}/");
        let _ = std::io::stdout().flush();
    };
    match ziggyview::web::serve(config, ready) {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(
            e @ (WebError::NothingToServe | WebError::LogPath { .. } | WebError::Listen { .. }),
        ) => usage(e),
        Err(e) => failure(e),
    }
}

/// Live mode: SIGINT and SIGTERM stop the stream; what is held is printed and flushed, exit 0.
fn live<W: Write>(viewer: &mut Viewer<W>, host: &str, timeout: Duration) -> ExitCode {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal while stopping ends the process at once.
        let installed = signal_hook::flag::register_conditional_shutdown(
            signal,
            EXIT_FAILURE.into(),
            stop.clone(),
        )
        .and_then(|_| signal_hook::flag::register(signal, stop.clone()));
        if let Err(e) = installed {
            return failure(format_args!("cannot install the signal handler: {e}"));
        }
    }
    match viewer.follow(host, timeout, &stop) {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(LiveError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            ExitCode::from(EXIT_OK)
        }
        Err(e) => {
            let _ = viewer.finish();
            failure(e)
        }
    }
}

/// Reads every file in turn. A file that is unreadable, corrupt or truncated is reported (file,
/// byte offset) and the next one is read; only an output error stops the run. `listed` files come
/// from a `--log-path` listing and must be regular files.
fn read_files<W: Write>(
    viewer: &mut Viewer<W>,
    files: &[PathBuf],
    listed: bool,
) -> std::io::Result<()> {
    for path in files {
        if viewer.done() {
            break;
        }
        read_one(viewer, path, listed)?;
    }
    Ok(())
}

/// Reads one file (`-`: stdin, unless `listed`); see [`read_files`].
fn read_one<W: Write>(viewer: &mut Viewer<W>, path: &Path, listed: bool) -> std::io::Result<()> {
    let outcome = if path == Path::new("-") && !listed {
        viewer.read_file(std::io::stdin().lock(), "<stdin>")
    } else {
        let name = path.display().to_string();
        match open_input(path, listed) {
            Ok(file) => viewer.read_file(file, &name),
            Err(error) => Err(ViewError::Read(ReadError::Io {
                source_name: name,
                error,
            })),
        }
    };
    match outcome {
        Ok(()) => Ok(()),
        Err(ViewError::Read(problem)) => {
            viewer.report(&problem);
            Ok(())
        }
        Err(ViewError::Output(e)) => Err(e),
    }
}

/// Opens an input. A listed file is opened non-blocking (a FIFO put there after the listing does
/// not hang the open) and must still be a regular file once open. A file named on the command
/// line may be anything readable, a pipe included (`ziggyview <(zcat old.bson.gz)`).
fn open_input(path: &Path, listed: bool) -> std::io::Result<std::fs::File> {
    if !listed {
        return std::fs::File::open(path);
    }
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file, skipped"));
    }
    Ok(file)
}
