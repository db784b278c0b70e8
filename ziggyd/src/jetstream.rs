//! NATS JetStream between host daemons and file writers (feature `jetstream`).
//!
//! A forwarding daemon started with `--publish nats://…` hands its spool batches to a
//! [`publish::JetStreamLink`] instead of a master's forward socket; writer daemons
//! (`--consume nats://…`) take them off the stream with [`consume`] and write the same files a
//! master writes. The messages are `ziggy_proto::jetstream`'s; the stream is created by whichever
//! daemon comes first, with [`JetStreamConfig::stream_config`].
//!
//! Each side runs its NATS client on its own thread with a single-threaded tokio runtime: the rest
//! of the daemon stays synchronous and never waits on the network.

pub mod consume;
mod coverage;
pub mod publish;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use ziggy_proto::jetstream::{partitions_in_description, stream_description};

pub use crate::config::{JetStreamConfig, JetStreamConfigError};

/// Why the JetStream side cannot start or go on.
#[derive(Debug, thiserror::Error)]
pub enum JetStreamError {
    /// A setting cannot be used.
    #[error(transparent)]
    Config(#[from] JetStreamConfigError),
    /// The stream exists but was not made by ziggyd.
    #[error(
        "stream {stream} exists but its description {description:?} does not name its \
         partitions: it was not created by ziggyd (choose another --nats-stream)"
    )]
    ForeignStream {
        /// The stream's name.
        stream: String,
        /// What its description says.
        description: String,
    },
    /// A partition this writer was given is not in the stream.
    #[error("--partitions {partition}: stream {stream} has partitions 0 to {last}")]
    NoSuchPartition {
        /// The partition asked for.
        partition: u32,
        /// The stream.
        stream: String,
        /// Its last partition.
        last: u32,
    },
    /// A partition's record or lock cannot be used.
    #[error("{0}")]
    Partition(String),
    /// The NATS client failed.
    #[error("NATS: {0}")]
    Nats(String),
}

/// The stream a daemon creates when it is missing: file storage, work-queue retention (a message
/// leaves the stream once its writer has acknowledged it), new publishes refused when full (so
/// nothing is discarded: the events wait in the publishers' spools), no age limit.
fn stream_config(config: &JetStreamConfig) -> stream::Config {
    stream::Config {
        name: config.stream.clone(),
        description: Some(stream_description(config.partitions)),
        subjects: vec![format!("{}.>", config.prefix)],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::WorkQueue,
        discard: stream::DiscardPolicy::New,
        num_replicas: config.replicas,
        duplicate_window: config.duplicate_window,
        max_bytes: config.max_bytes,
        ..Default::default()
    }
}

/// Counters of the JetStream side, in STATUS `jetstream`.
#[derive(Debug, Default)]
pub struct JetStreamStats {
    /// The stream's name.
    pub stream: String,
    /// The server connected to, if any.
    pub server: std::sync::Mutex<String>,
    /// Connected to a server now.
    pub connected: AtomicBool,
    /// Messages published and not yet acknowledged.
    pub in_flight: AtomicU64,
    /// Messages the stream acknowledged.
    pub acked: AtomicU64,
    /// Of those, acknowledged as a repeat of a message it has (not stored twice).
    pub duplicates: AtomicU64,
    /// Publishes that failed (the batch goes again).
    pub failed: AtomicU64,
    /// Messages a writer took off the stream.
    pub consumed: AtomicU64,
    /// Events a writer wrote from them.
    pub events_written: AtomicU64,
    /// Events a writer had already written (a publisher's resend or a redelivery), not written
    /// again.
    pub deduplicated: AtomicU64,
    /// Events written again because a crash came between their fsync and the record of it.
    pub possible_duplicates: AtomicU64,
    /// Messages a writer could not read (not ziggyd's format): acknowledged and dropped.
    pub malformed: AtomicU64,
    /// Events in readable messages that are not valid events: left out.
    pub invalid_events: AtomicU64,
    /// Messages waiting in the writer's consumers (from the last consumer info).
    pub pending: AtomicU64,
}

impl JetStreamStats {
    /// Counters for the stream `stream`.
    pub fn new(stream: &str) -> JetStreamStats {
        JetStreamStats {
            stream: stream.to_owned(),
            ..Default::default()
        }
    }

    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// The STATUS section.
    pub fn status(&self) -> ziggy_proto::status::JetStreamStatus {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut s = ziggy_proto::status::JetStreamStatus::default();
        s.connected = self.connected.load(Ordering::Relaxed);
        s.server = if s.connected {
            self.server.lock().map(|s| s.clone()).unwrap_or_default()
        } else {
            String::new()
        };
        s.stream = self.stream.clone();
        s.in_flight = g(&self.in_flight);
        s.acked = g(&self.acked);
        s.duplicates = g(&self.duplicates);
        s.failed = g(&self.failed);
        s.consumed = g(&self.consumed);
        s.events_written = g(&self.events_written);
        s.deduplicated = g(&self.deduplicated);
        s.possible_duplicates = g(&self.possible_duplicates);
        s.malformed = g(&self.malformed);
        s.invalid_events = g(&self.invalid_events);
        s.pending = g(&self.pending);
        s
    }
}

/// A current-thread tokio runtime for one JetStream thread.
fn runtime() -> Result<tokio::runtime::Runtime, JetStreamError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| JetStreamError::Nats(format!("cannot start the NATS runtime: {e}")))
}

/// Connects, retrying in the background forever (a daemon starts whether the cluster is up or
/// not), with `connected` kept current.
async fn connect(
    config: &JetStreamConfig,
    name: &str,
    stats: &std::sync::Arc<JetStreamStats>,
) -> Result<async_nats::Client, JetStreamError> {
    let flag = stats.clone();
    async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(2))
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis((100 * attempts as u64).min(2_000))
        })
        .event_callback(move |event| {
            let flag = flag.clone();
            async move {
                match event {
                    async_nats::Event::Connected => flag.connected.store(true, Ordering::Relaxed),
                    async_nats::Event::Disconnected | async_nats::Event::Closed => {
                        flag.connected.store(false, Ordering::Relaxed)
                    }
                    _ => {}
                }
            }
        })
        .connect(config.servers.clone())
        .await
        .map_err(|e| JetStreamError::Nats(e.to_string()))
}

/// Records which server the client is connected to, for STATUS.
fn note_server(client: &async_nats::Client, stats: &JetStreamStats) {
    if let Some(info) = client.try_server_info() {
        let text = format!("{} ({}:{})", info.server_name, info.host, info.port);
        if let Ok(mut server) = stats.server.lock()
            && *server != text
        {
            *server = text;
        }
    }
}

/// Finds the stream, creating it as configured when missing, and returns its partition count.
async fn ensure_stream(
    js: &jetstream::Context,
    config: &JetStreamConfig,
) -> Result<u32, JetStreamError> {
    let mut stream = js
        .get_or_create_stream(stream_config(config))
        .await
        .map_err(|e| JetStreamError::Nats(format!("stream {}: {e}", config.stream)))?;
    let info = stream
        .info()
        .await
        .map_err(|e| JetStreamError::Nats(format!("stream {}: {e}", config.stream)))?;
    let description = info.config.description.clone().unwrap_or_default();
    let partitions =
        partitions_in_description(&description).ok_or(JetStreamError::ForeignStream {
            stream: config.stream.clone(),
            description,
        })?;
    if partitions != config.partitions {
        eprintln!(
            "ziggyd: stream {} has {partitions} partition(s), which it keeps; \
             --nats-partitions {} applies only to a stream this daemon creates",
            config.stream, config.partitions
        );
    }
    Ok(partitions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_lists_as_operators_type_them() {
        use crate::config::parse_nats_servers as parse;
        let s = parse("nats://127.0.0.1:4222,127.0.0.1:4223").unwrap();
        assert_eq!(s, ["nats://127.0.0.1:4222", "nats://127.0.0.1:4223"]);
        let s = parse("nats://a:1,nats://b:2").unwrap();
        assert_eq!(s, ["nats://a:1", "nats://b:2"]);
        for bad in [
            "127.0.0.1:4222",
            "nats://",
            "nats://h",
            "nats://h:x",
            "nats://h:1,",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let config = JetStreamConfig::from_urls("nats://a:1,b:2,c:3,d:4").unwrap();
        assert_eq!(config.replicas, 3);
        config.check().unwrap();
        let stream = stream_config(&config);
        assert_eq!(
            stream.description.as_deref(),
            Some("ziggy events; partitions=1")
        );
        assert_eq!(stream.subjects, ["ziggy.events.>"]);
    }
}
