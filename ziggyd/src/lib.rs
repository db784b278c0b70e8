//! # ziggyd, the ziggy daemon
//!
//! Collects events (ZeroMQ PULL), validates them on their raw bytes, writes them to
//! `DIR/YYYYMMDD/<type>.YYYYMMDD.bson`, publishes them live (XPUB, `[type, event]`), and answers a
//! control endpoint (REP, BSON `{cmd}`). The data flow reads off the modules: `collect` →
//! `validate` → (`files`, `forward` → `spool`, `stream`) with `control` and [`stats`] beside; on
//! a master `receive` takes forwarded batches to `files`; `daemon` builds each part from the
//! config (each with its own error) and `runtime` runs them on supervised threads.
//!
//! The public surface is what embedding the daemon needs: [`Daemon`], started from a
//! [`DaemonConfig`] (the rest of the settings in [`config`], CURVE key files in [`curve`]);
//! [`StartError`] and the errors of the parts it wraps; the counters in [`stats`], summed up by
//! [`format_status_line`] and [`format_status_table`]; and the control protocol's [`client`].
//! The `ziggyd` binary (its command line in `src/cli.rs`) uses nothing else.
//!
//! ## Forwarding protocol
//! A daemon started with `--publish` spools every valid event and sends batches from a DEALER
//! socket to the upstream's ROUTER, whose port the upstream's control endpoint announces
//! (`SOCK_FORWARD`): `["ZGB1", sender id, first seq (u64 LE), concatenated events]`. The upstream
//! writes the new events, fsyncs, records the sender's mark in its ledger, and answers
//! `["ACK1", seq (u64 LE)]`, meaning every event of that sender up to `seq` is durable; the sender
//! then drops them from its spool. A batch the upstream will not confirm is answered
//! `["NAK1", mark (u64 LE), reason]`, the reason starting with `write_failed:` (it cannot write
//! the events now: the sender keeps them and resends later), `seq_jump` (the first seq is far
//! beyond what it has from that sender id) or `sender_key` (with CURVE, that sender id belongs
//! to another key); on the last two the sender starts a new sender id. The receiving side
//! (`receive`) documents deduplication after crashes; `docs/PROTOCOL.md` is the contract.
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

mod batch;
mod bell;
mod collect;
pub mod config;
mod connections;
mod control;
pub mod curve;
mod daemon;
mod files;
mod forward;
mod gate;
#[cfg(feature = "jetstream")]
pub mod jetstream;
mod lock;
mod ratelog;
mod receive;
mod runtime;
mod sockets;
// Public for the fuzz targets and the input tests, which drive the spool directly.
#[doc(hidden)]
pub mod spool;
mod state_file;
pub mod stats;
mod stream;
mod tail;

pub use config::DaemonConfig;
pub use daemon::{Daemon, OpenFileLimit, StartError, raise_open_file_limit};
pub use files::LogPathError;
pub use forward::SpoolError;
pub use gate::CurveSetupError;
pub use lock::LockError;
pub use receive::ForwardInError;
pub use runtime::WorkerDied;
pub use sockets::BindError;
// Public for the input tests.
#[doc(hidden)]
pub use ziggy_proto::walk as bson_walk;
/// The format modules, from `ziggy-proto` (the daemon's own names for them): the control
/// protocol's client, and the event rules ([`validate::Limits`] is part of [`DaemonConfig`]).
pub use ziggy_proto::{client, status, validate};

use ziggy_proto::endpoint;

use bson::Bson;
use ziggy_proto::status::Status;

/// One line summing up a STATUS reply.
pub fn format_status_line(status: &Status) -> String {
    status.summary_line()
}

/// A readable table of a STATUS reply: every field, scalars first, then each section.
pub fn format_status_table(status: &Status) -> String {
    use std::fmt::Write;
    let status = status.to_document();
    let mut out = String::new();
    for (key, value) in &status {
        let shown = match (key.as_str(), value) {
            (_, Bson::Document(_)) => continue,
            ("lag", Bson::Null) => "no events yet".to_owned(),
            ("uptime" | "lag", Bson::Double(v)) => format!("{v:.3} s"),
            _ => scalar(value),
        };
        let _ = writeln!(out, "{key:<20} {shown}");
    }
    for (section, value) in &status {
        let Bson::Document(doc) = value else {
            continue;
        };
        let _ = writeln!(out, "{section}:");
        if doc.is_empty() {
            let _ = writeln!(out, "  (none)");
        }
        for (k, v) in doc {
            let _ = writeln!(out, "  {k:<30} {}", scalar(v));
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
