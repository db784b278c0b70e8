//! Command-line interface: `ziggyd [OPTIONS]` runs a daemon; `ziggyd status|shutdown` talk to one.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use ziggyd::client::control_request;
use ziggyd::config::{
    ConsumeFrom, CurveClient, CurveServer, DaemonConfig, ForwardTo, JetStreamConfig,
    parse_partitions,
};
use ziggyd::validate::Limits;
use ziggyd::{Daemon, OpenFileLimit};

/// Exit code: the daemon ran and stopped cleanly, or the command succeeded.
pub const EXIT_OK: u8 = 0;
/// Exit code: a runtime failure (no daemon answered, a control request was refused).
pub const EXIT_FAILURE: u8 = 1;
/// Exit code: bad flags, or an address the daemon cannot bind.
pub const EXIT_USAGE: u8 = 2;

/// How long the other threads get to write out what they hold after one died.
const DEATH_GRACE: Duration = Duration::from_secs(10);

/// ziggyd collects ziggy events over ZeroMQ, writes them to per-channel BSON files and streams
/// them live.
#[derive(Debug, Parser)]
#[command(name = "ziggyd", version, about, long_about = None)]
pub struct Cli {
    /// Address to collect events on (ZeroMQ PULL): HOST:PORT, where HOST is a host name
    /// (localhost, a machine name), an IP ([::1] for IPv6) or * (every interface); or a tcp:// /
    /// ipc:// endpoint. Port 0 picks a free port.
    #[arg(
        short = 'H',
        long,
        value_name = "HOST:PORT",
        default_value = "127.0.0.1:3514"
    )]
    pub collect: String,

    /// Control endpoint (ZeroMQ REP, BSON requests {cmd: STATUS|SOCK_STREAM|SOCK_COLLECT|
    /// SOCK_FORWARD|SHUTDOWN}). Default: the collect host, the collect port minus one
    /// (127.0.0.1:3513 by default). `status` and `shutdown` ask it.
    #[arg(long, value_name = "HOST:PORT")]
    pub control: Option<String>,

    /// Live stream endpoint (ZeroMQ PUB, frames [type, event]); port 0 picks a free port, which
    /// SOCK_STREAM reports.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:0")]
    pub stream: String,

    /// Forward every valid event to another ziggyd, given by its collect address, or publish it
    /// to a NATS JetStream stream (nats://HOST:PORT[,HOST:PORT...], ziggyd built with the
    /// jetstream feature). Events are spooled to disk first and leave the spool only when that
    /// daemon (or the stream) confirms they are durable.
    #[arg(
        long,
        visible_alias = "forward",
        value_name = "HOST:PORT|nats://HOST:PORT,..."
    )]
    pub publish: Option<String>,

    /// Be a writer of a NATS JetStream stream (nats://HOST:PORT[,HOST:PORT...]): write what its
    /// partitions carry into --log-path, as a master writes what daemons forward. Events sent to
    /// this daemon's collect socket are counted and streamed live, not kept.
    #[arg(long, value_name = "nats://HOST:PORT,...", conflicts_with_all = ["publish", "stream_only"])]
    pub consume: Option<String>,

    /// The stream partitions this writer owns, e.g. 0,2 (default: all). Each partition must have
    /// exactly one writer; its channels' files are written by that writer alone.
    #[arg(long, value_name = "N,...", requires = "consume")]
    pub partitions: Option<String>,

    /// The JetStream stream's name.
    #[arg(long, value_name = "NAME", default_value = ziggy_proto::jetstream::DEFAULT_STREAM)]
    pub nats_stream: String,

    /// Partitions of the stream when this daemon creates it (an existing stream keeps its own):
    /// how many writers can share the load. From 1 to 64.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub nats_partitions: u32,

    /// Replicas of the stream when this daemon creates it (default: the servers listed, at most 3).
    #[arg(long, value_name = "N")]
    pub nats_replicas: Option<usize>,

    /// Most bytes the stream holds (events no writer has written yet) when this daemon creates
    /// it; beyond it publishes are refused and events wait in the spools.
    #[arg(long, value_name = "BYTES", default_value_t = 10 << 30)]
    pub nats_max_bytes: i64,

    /// The upstream's control endpoint, asked for its forward port (default: the --publish port
    /// minus one, as in the default layout 3514/3513).
    #[arg(long, value_name = "HOST:PORT", requires = "publish")]
    pub publish_control: Option<String>,

    /// Where forwarding daemons connect to this one (needs --log-path). Default: the collect
    /// host, a free port; SOCK_FORWARD announces the port.
    #[arg(long, value_name = "HOST:PORT")]
    pub forward_listen: Option<String>,

    /// Write every event, byte for byte, to DIR/YYYYMMDD/TYPE.YYYYMMDD.bson (UTC date of start).
    #[arg(long, value_name = "DIR")]
    pub log_path: Option<PathBuf>,

    /// Spool directory for forwarding (default /var/tmp/ziggyd/spool-PORT, PORT being the collect port).
    #[arg(long, value_name = "DIR", requires = "publish")]
    pub spool_dir: Option<PathBuf>,

    /// Largest spool on disk; when full, the oldest segment is dropped and its events counted
    /// as dropped in STATUS (collection is never refused).
    /// At least one segment (--spool-segment-bytes).
    #[arg(long, value_name = "BYTES", default_value_t = 10 << 30, requires = "publish")]
    pub spool_max_bytes: u64,

    /// Size at which a spool segment is closed and a new one started (a segment is deleted once
    /// all its events are confirmed).
    /// From 4096 bytes to 1 GiB.
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 20, requires = "publish",
          value_parser = clap::value_parser!(u64).range(4096..=1 << 30))]
    pub spool_segment_bytes: u64,

    /// This daemon's CURVE key pair (a file written by `ziggyd keygen`, mode 0600). With
    /// --log-path it encrypts the forward socket and admits only the keys in --curve-allow; with
    /// --publish it encrypts forwarding and proves this daemon's identity to the master.
    #[arg(long, value_name = "FILE")]
    pub curve_secret_key: Option<PathBuf>,

    /// Directory of public key files (`*.public` from `ziggyd keygen`) of the daemons allowed to
    /// forward here. Read again at every connection: adding a file admits that daemon at once.
    #[arg(long, value_name = "DIR", requires = "curve_secret_key")]
    pub curve_allow: Option<PathBuf>,

    /// The master's public key file: forwarding connects only to a daemon holding its secret.
    #[arg(long, value_name = "FILE", requires_all = ["curve_secret_key", "publish"])]
    pub curve_master_key: Option<PathBuf>,

    /// Largest event accepted, in bytes (BSON's own limit is 16 MiB).
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_event_bytes)]
    pub max_event_bytes: usize,

    /// Largest frame accepted (one event or several concatenated), in bytes. A frame over 4 times
    /// this makes ZeroMQ close its connection (counted as collect_in.cut_oversized in STATUS).
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_frame_bytes)]
    pub max_frame_bytes: usize,

    /// Flush files at least this often, in milliseconds.
    /// From 1 to 60000.
    #[arg(long, value_name = "MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub flush_ms: u64,

    /// Close a file after this many seconds without a write.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub idle_close_secs: u64,

    /// Run with neither --log-path nor --publish: events are validated, counted and streamed
    /// live (SOCK_STREAM), and nothing keeps them. Without this flag such a daemon refuses to
    /// start, since it would silently discard everything.
    #[arg(long, conflicts_with_all = ["log_path", "publish"])]
    pub stream_only: bool,

    /// Log more (start-up addresses, shutdown summary).
    #[arg(short, long)]
    pub verbose: bool,

    /// Talk to a running daemon instead of starting one.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Operator commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a running daemon's STATUS.
    Status {
        /// Print the raw STATUS as one JSON object.
        #[arg(long)]
        json: bool,
        /// Give up after this many milliseconds without an answer.
        #[arg(long, value_name = "MS", default_value_t = 2000)]
        timeout_ms: u64,
    },
    /// Ask a running daemon to write out what it holds and exit.
    Shutdown {
        /// Give up after this many milliseconds without an answer.
        #[arg(long, value_name = "MS", default_value_t = 2000)]
        timeout_ms: u64,
    },
    /// Write a new CURVE key pair: NAME.secret (mode 0600, for --curve-secret-key) and
    /// NAME.public (for the master's --curve-allow directory, or --curve-master-key).
    Keygen {
        /// Path and base name of the two files; existing files are never overwritten.
        #[arg(value_name = "NAME")]
        name: PathBuf,
    },
}

/// Runs the command line; returns the process exit code.
pub fn main_with(cli: Cli) -> ExitCode {
    let control = match &cli.control {
        Some(c) => c.clone(),
        None => match ziggyd::config::default_control(&cli.collect) {
            Ok(c) => c,
            Err(e) => return fail(EXIT_USAGE, &format!("-H/--collect: {e}")),
        },
    };
    match cli.command {
        Some(Command::Status { json, timeout_ms }) => {
            status(&control, json, Duration::from_millis(timeout_ms))
        }
        Some(Command::Shutdown { timeout_ms }) => {
            match control_request(&control, "SHUTDOWN", Duration::from_millis(timeout_ms)) {
                Ok(_) => ExitCode::from(EXIT_OK),
                Err(e) => fail(EXIT_FAILURE, &e.to_string()),
            }
        }
        Some(Command::Keygen { ref name }) => keygen(name),
        None => run_daemon(cli, control),
    }
}

fn keygen(name: &std::path::Path) -> ExitCode {
    let pair = match ziggyd::curve::generate() {
        Ok(pair) => pair,
        Err(e) => return fail(EXIT_FAILURE, &e.to_string()),
    };
    match ziggyd::curve::write_keypair(name, &pair) {
        Ok(files) => {
            println!(
                "secret key: {} (keep it on this host)",
                files.secret.display()
            );
            println!("public key: {}", files.public.display());
            println!("{}", ziggyd::curve::z85(&pair.public));
            ExitCode::from(EXIT_OK)
        }
        Err(e) => fail(EXIT_FAILURE, &e.to_string()),
    }
}

/// The CURVE settings the flags ask for: as a master, as a forwarding daemon, or both.
#[derive(Debug, Default)]
struct CurveSettings {
    server: Option<CurveServer>,
    client: Option<CurveClient>,
}

/// Why the CURVE flags do not fit together.
#[derive(Debug, thiserror::Error)]
enum CurveFlagError {
    /// A key file cannot be read.
    #[error(transparent)]
    Key(#[from] ziggyd::curve::KeyError),
    #[error(
        "--curve-secret-key with --log-path needs --curve-allow DIR: the daemons allowed to \
         forward here"
    )]
    AllowNeeded,
    #[error(
        "--curve-allow needs --log-path: only a daemon that writes files accepts forwarded events"
    )]
    AllowWithoutLogPath,
    #[error(
        "--curve-secret-key with --publish needs --curve-master-key FILE: the master's public key"
    )]
    MasterKeyNeeded,
    #[error(
        "--curve-secret-key needs --log-path with --curve-allow (a master) or --publish with \
         --curve-master-key (a forwarding daemon)"
    )]
    NoRole,
}

/// The CURVE settings the flags ask for, checked against each other.
fn curve_settings(cli: &Cli) -> Result<CurveSettings, CurveFlagError> {
    let Some(secret) = &cli.curve_secret_key else {
        return Ok(CurveSettings::default());
    };
    let keys = ziggyd::curve::read_secret_file(secret)?;
    let server = match (&cli.log_path, &cli.curve_allow) {
        (Some(_), Some(dir)) => Some(CurveServer {
            keys: keys.clone(),
            allow_dir: dir.clone(),
        }),
        (Some(_), None) => return Err(CurveFlagError::AllowNeeded),
        (None, Some(_)) => return Err(CurveFlagError::AllowWithoutLogPath),
        (None, None) => None,
    };
    let client = match (&cli.publish, &cli.curve_master_key) {
        (Some(_), Some(master)) => Some(CurveClient {
            keys,
            upstream_public: ziggyd::curve::read_public_file(master)?,
        }),
        (Some(_), None) => return Err(CurveFlagError::MasterKeyNeeded),
        _ => None,
    };
    if server.is_none() && client.is_none() {
        return Err(CurveFlagError::NoRole);
    }
    Ok(CurveSettings { server, client })
}

fn fail(code: u8, message: &str) -> ExitCode {
    eprintln!("ziggyd: {message}");
    ExitCode::from(code)
}

fn run_daemon(cli: Cli, control: String) -> ExitCode {
    if cli.spool_max_bytes < cli.spool_segment_bytes {
        return fail(
            EXIT_USAGE,
            &format!(
                "--spool-max-bytes {} is below one segment (--spool-segment-bytes {}): give at \
                 least {}",
                cli.spool_max_bytes, cli.spool_segment_bytes, cli.spool_segment_bytes
            ),
        );
    }
    let curve = match curve_settings(&cli) {
        Ok(settings) => settings,
        Err(e) => return fail(EXIT_USAGE, &e.to_string()),
    };
    if cli.consume.is_some() && cli.log_path.is_none() {
        return fail(
            EXIT_USAGE,
            "--consume needs --log-path DIR: the directory the writer writes the files into",
        );
    }
    let nats = |urls: &str| -> Result<JetStreamConfig, String> {
        let mut js = JetStreamConfig::from_urls(urls).map_err(|e| e.to_string())?;
        js.stream = cli.nats_stream.clone();
        js.partitions = cli.nats_partitions;
        js.max_bytes = cli.nats_max_bytes;
        if let Some(replicas) = cli.nats_replicas {
            js.replicas = replicas;
        }
        js.check().map_err(|e| e.to_string())?;
        Ok(js)
    };
    let consume = match &cli.consume {
        Some(urls) => {
            let partitions = match cli.partitions.as_deref().map(parse_partitions) {
                None => None,
                Some(Ok(p)) => Some(p),
                Some(Err(e)) => return fail(EXIT_USAGE, &e.to_string()),
            };
            match nats(urls) {
                Ok(jetstream) => Some(ConsumeFrom {
                    jetstream,
                    partitions,
                }),
                Err(e) => return fail(EXIT_USAGE, &e),
            }
        }
        None => None,
    };
    if cli.log_path.is_none() && cli.publish.is_none() && !cli.stream_only {
        return fail(
            EXIT_USAGE,
            "nothing would keep the events: give --log-path DIR (write files), --publish \
             HOST:PORT (forward to a master), or --stream-only (live stream only, nothing kept)",
        );
    }
    let forward = match &cli.publish {
        Some(publish) if publish.starts_with("nats://") => {
            let spool_dir = cli
                .spool_dir
                .clone()
                .unwrap_or_else(|| ziggyd::config::default_spool_dir(&cli.collect));
            match nats(publish) {
                Ok(js) => {
                    let mut f = ForwardTo::jetstream(js, spool_dir);
                    f.spool_max_bytes = cli.spool_max_bytes;
                    f.segment_bytes = cli.spool_segment_bytes;
                    Some(f)
                }
                Err(e) => return fail(EXIT_USAGE, &e),
            }
        }
        Some(publish) => {
            let spool_dir = cli
                .spool_dir
                .clone()
                .unwrap_or_else(|| ziggyd::config::default_spool_dir(&cli.collect));
            match ziggyd::config::ForwardTo::new(publish, cli.publish_control.as_deref(), spool_dir)
            {
                Ok(mut f) => {
                    f.spool_max_bytes = cli.spool_max_bytes;
                    f.segment_bytes = cli.spool_segment_bytes;
                    f.curve = curve.client;
                    Some(f)
                }
                Err(e) => return fail(EXIT_USAGE, &e.to_string()),
            }
        }
        None => None,
    };
    let forward_listen = match cli.forward_listen.clone() {
        Some(f) => f,
        None => match ziggyd::config::default_forward_listen(&cli.collect) {
            Ok(f) => f,
            Err(e) => return fail(EXIT_USAGE, &format!("-H/--collect: {e}")),
        },
    };
    let config = DaemonConfig {
        collect: cli.collect,
        control,
        stream: cli.stream,
        log_path: cli.log_path,
        limits: Limits {
            max_frame_bytes: cli.max_frame_bytes,
            max_event_bytes: cli.max_event_bytes,
        },
        flush_interval: Duration::from_millis(cli.flush_ms),
        idle_close: Duration::from_secs(cli.idle_close_secs),
        verbose: cli.verbose,
        forward,
        forward_listen,
        forward_curve: curve.server,
        consume,
        ..DaemonConfig::default()
    };
    let verbose = config.verbose;
    match ziggyd::raise_open_file_limit() {
        Ok(OpenFileLimit { before, after }) if verbose && after != before => {
            eprintln!("ziggyd: open-file limit raised from {before} to {after}")
        }
        Ok(OpenFileLimit { before: now, .. }) if verbose => {
            eprintln!("ziggyd: open-file limit {now} (the hard limit)")
        }
        Err(e) if verbose => eprintln!("ziggyd: cannot raise the open-file limit: {e}"),
        _ => {}
    }
    let daemon = match Daemon::start(config) {
        Ok(d) => d,
        Err(e) => return fail(EXIT_USAGE, &e.to_string()),
    };
    let flag = daemon.shutdown_flag();
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(signal, flag.clone()) {
            return fail(
                EXIT_FAILURE,
                &format!("cannot install the signal handler: {e}"),
            );
        }
    }
    // SIGHUP (logrotate's postrotate): reopen the log files, re-read the CURVE allow directory,
    // carry on.
    let reopen = daemon.reopen_handle();
    match signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP]) {
        Ok(mut signals) => {
            std::thread::Builder::new()
                .name("ziggyd-sighup".into())
                .spawn(move || {
                    for _ in signals.forever() {
                        reopen.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                    }
                })
                .expect("spawning the SIGHUP thread");
        }
        Err(e) => {
            return fail(
                EXIT_FAILURE,
                &format!("cannot install the SIGHUP handler: {e}"),
            );
        }
    }
    // A worker thread that died stops the daemon; if the others do not finish writing out
    // within the grace period, exit anyway so the supervisor restarts it.
    let death = daemon.death_watch();
    std::thread::Builder::new()
        .name("ziggyd-watchdog".into())
        .spawn(move || {
            let died = loop {
                match death() {
                    Some(died) => break died,
                    None => std::thread::sleep(Duration::from_millis(100)),
                }
            };
            std::thread::sleep(DEATH_GRACE);
            eprintln!("ziggyd: {died}; exiting");
            std::process::exit(EXIT_FAILURE.into());
        })
        .expect("spawning the watchdog thread");
    // Scripts read this line to learn the real ports when they asked for port 0.
    println!(
        "ziggyd: collect {} control {} stream {}",
        daemon.collect_endpoint, daemon.control_endpoint, daemon.stream_endpoint
    );
    let stats = daemon.stats().clone();
    let result = daemon.wait_for_exit();
    if verbose {
        eprintln!(
            "ziggyd: stopped; {}",
            ziggyd::format_status_line(&stats.status())
        );
    }
    match result {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(death) => fail(EXIT_FAILURE, &format!("{death}; exiting")),
    }
}

fn status(control: &str, json: bool, timeout: Duration) -> ExitCode {
    match control_request(control, "STATUS", timeout) {
        Ok(doc) => {
            if json {
                let value = bson::Bson::Document(doc).into_relaxed_extjson();
                println!("{value}");
                ExitCode::from(EXIT_OK)
            } else {
                match ziggyd::status::Status::from_document(&doc) {
                    Ok(status) => {
                        print!("{}", ziggyd::format_status_table(&status));
                        ExitCode::from(EXIT_OK)
                    }
                    Err(e) => fail(EXIT_FAILURE, &format!("{control}: {e}")),
                }
            }
        }
        Err(e) => fail(EXIT_FAILURE, &e.to_string()),
    }
}
