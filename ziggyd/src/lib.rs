//! # ziggyd, the ziggy daemon
//!
//! Collects events (ZeroMQ PULL), validates them on their raw bytes, writes them to
//! `DIR/YYYYMMDD/<type>.YYYYMMDD.bson`, publishes them live (PUB, `[type, event]`), and answers a
//! control endpoint (REP, BSON `{cmd}`). The data flow reads off the modules: [`collect`] →
//! [`validate`] → ([`files`], [`spool`] → [`forward`], stream) with [`control`] and [`stats`]
//! beside; [`daemon`] wires them.
//!
//! ## Forwarding protocol
//! A daemon started with `--publish` spools every valid event ([`spool`]) and sends batches from
//! a DEALER socket to the upstream's ROUTER, whose port the upstream's control endpoint announces
//! (`SOCK_FORWARD`): `["ZGB1", sender id, first seq (u64 LE), concatenated events]`. The upstream
//! writes the new events, fsyncs, records the sender's mark in its ledger, and answers
//! `["ACK1", seq (u64 LE)]`, meaning every event of that sender up to `seq` is durable; the sender
//! then drops them from its spool. See [`receive`] for deduplication after crashes.
//!
//! Embedding, e.g. in a test or a demo:
//! ```
//! let daemon = ziggyd::Daemon::start(ziggyd::DaemonConfig::ephemeral()).unwrap();
//! let status = ziggyd::client::control_request(
//!     &daemon.control_endpoint, "STATUS", std::time::Duration::from_secs(2)).unwrap();
//! assert_eq!(status.get_i64("events_in").unwrap(), 0);
//! daemon.stop();
//! ```

#![warn(missing_docs)]

pub mod batch;
pub mod bson_walk;
pub mod cli;
pub mod client;
pub mod collect;
pub mod config;
pub mod connections;
pub mod control;
pub mod curve;
pub mod daemon;
pub mod files;
pub mod forward;
pub mod gate;
pub mod ledger;
pub mod ratelog;
pub mod receive;
pub mod spool;
pub mod stats;
pub mod tail;
pub mod validate;

pub use config::DaemonConfig;
pub use daemon::{Daemon, StartError};

use bson::{Bson, Document};

/// One line summing up a STATUS reply.
pub fn format_status_line(status: &Document) -> String {
    format!(
        "{} events in, {} written, {} invalid, {} files open",
        int(status, "events_in"),
        int(status, "events_written"),
        int(status, "invalid_total"),
        int(status, "files_open")
    )
}

fn int(doc: &Document, key: &str) -> i64 {
    match doc.get(key) {
        Some(Bson::Int64(v)) => *v,
        Some(Bson::Int32(v)) => *v as i64,
        Some(Bson::Double(v)) => *v as i64,
        _ => 0,
    }
}

/// A readable table of a STATUS reply.
pub fn format_status_table(status: &Document) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let secs = |k: &str| status.get_f64(k).ok();
    let _ = writeln!(
        out,
        "{:<16} {}",
        "collect",
        status.get_str("collect").unwrap_or("?")
    );
    let _ = writeln!(
        out,
        "{:<16} {}",
        "stream",
        status.get_str("stream").unwrap_or("?")
    );
    let _ = writeln!(
        out,
        "{:<16} {:.1} s",
        "uptime",
        secs("uptime").unwrap_or(0.0)
    );
    for key in [
        "events_in",
        "frames_in",
        "events_written",
        "write_errors",
        "files_open",
        "invalid_total",
    ] {
        let _ = writeln!(out, "{key:<16} {}", int(status, key));
    }
    match secs("lag") {
        Some(lag) => {
            let _ = writeln!(out, "{:<16} {lag:.3} s", "lag");
        }
        None => {
            let _ = writeln!(out, "{:<16} no events yet", "lag");
        }
    }
    for section in [
        "invalid",
        "channels",
        "hosts",
        "collect_in",
        "forward",
        "forward_in",
    ] {
        if let Ok(doc) = status.get_document(section) {
            let _ = writeln!(out, "{section}:");
            for (k, v) in doc {
                let _ = writeln!(out, "  {k:<30} {}", scalar(v));
            }
        }
    }
    out
}

fn scalar(value: &Bson) -> String {
    match value {
        Bson::Double(v) => format!("{v:.3}"),
        Bson::String(s) => s.clone(),
        Bson::Null => "-".into(),
        Bson::Int32(_) | Bson::Int64(_) | Bson::Boolean(_) => value.to_string(),
        other => other.clone().into_relaxed_extjson().to_string(),
    }
}
