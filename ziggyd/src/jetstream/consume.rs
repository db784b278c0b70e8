//! The writer side: events off the stream into the log files a master writes.
//!
//! A writer owns some partitions of the stream (all by default). For each it uses one durable pull
//! consumer, `ziggy-writer-p<N>`, with explicit acknowledgements; a message is acknowledged only
//! once its events are written and fsynced and the partition's record ([`super::coverage`]) says
//! so. A partition has one consumer, and its channels' files are written only from it, so two
//! writers owning different partitions never write the same event or the same file; two writers
//! claiming the same partition on one log directory are refused (the partition's record is
//! locked).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use async_nats::jetstream::consumer::{self, PullConsumer};
use futures::StreamExt;
use ziggy_proto::forward::valid_sender_id;
use ziggy_proto::jetstream::{RANGE_HEADER, SENDER_HEADER, decode, parse_range, subject};
use ziggy_proto::validate::validate_event;

use super::coverage::{self, Coverage};
use super::{
    JetStreamConfig, JetStreamError, JetStreamStats, connect, ensure_stream, note_server, runtime,
};
use crate::batch::{Batch, EventSpan, ForwardMark};
use crate::config::{ConsumeFrom, DaemonConfig};
use crate::files::WriteOutcome;
use crate::files::{FileWriter, LogPathError};
use crate::lock::DirLock;
use crate::ratelog::RateLimitedLog;
use crate::runtime::Shared;

/// Most messages taken per fetch.
const FETCH_MESSAGES: usize = 64;
/// How long a fetch waits for messages.
const FETCH_WAIT: Duration = Duration::from_millis(250);
/// How long JetStream waits for an acknowledgement before it redelivers.
const ACK_WAIT: Duration = Duration::from_secs(60);
/// How long a message whose events could not be written waits before it is redelivered.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// A partition this writer owns.
struct Partition {
    number: u32,
    /// Its consumer, once the stream is reachable.
    consumer: Option<PullConsumer>,
    coverage: Coverage,
    record: PathBuf,
    _lock: DirLock,
}

impl Partition {
    /// Locks the partition within the log directory and reads its record.
    fn claim(dir: &Path, stream: &str, number: u32) -> Result<Partition, JetStreamError> {
        let lock_name = format!(".ziggyd-jetstream-{stream}-p{number}.lock");
        let lock = DirLock::acquire_file(dir, &lock_name)
            .map_err(|e| JetStreamError::Partition(format!("partition {number}: {e}")))?;
        let record = coverage::record_path(dir, stream, number);
        let coverage =
            coverage::load(&record).map_err(|e| JetStreamError::Partition(e.to_string()))?;
        Ok(Partition {
            number,
            consumer: None,
            coverage,
            record,
            _lock: lock,
        })
    }
}

/// A writer daemon's JetStream part: its partitions, its file writer, its counters.
pub struct JetStreamWriter {
    config: JetStreamConfig,
    /// The partitions asked for (all when `None`, claimed once the stream is known).
    asked: Option<Vec<u32>>,
    partitions: Vec<Partition>,
    dir: PathBuf,
    files: FileWriter,
    outcomes: Receiver<WriteOutcome>,
    stats: Arc<JetStreamStats>,
    shutdown: Arc<AtomicBool>,
}

impl JetStreamWriter {
    /// The writer of a daemon with `--consume` and `--log-path` `dir`: locks the directory
    /// shared and the partitions asked for, reads their records, and puts its counters in STATUS.
    pub fn build(
        shared: &Shared,
        config: &DaemonConfig,
        consume: &ConsumeFrom,
        dir: &Path,
    ) -> Result<JetStreamWriter, WriterBuildError> {
        consume.jetstream.check().map_err(JetStreamError::from)?;
        let (outcomes_tx, outcomes) = crossbeam_channel::unbounded();
        let files = FileWriter::build_shared(shared, config, dir, outcomes_tx)?;
        let stream = &consume.jetstream.stream;
        let mut partitions = Vec::new();
        for &number in consume.partitions.iter().flatten() {
            partitions.push(Partition::claim(dir, stream, number)?);
        }
        let stats = Arc::new(JetStreamStats::new(stream));
        let _ = shared.stats.jetstream.set(stats.clone());
        Ok(JetStreamWriter {
            config: consume.jetstream.clone(),
            asked: consume.partitions.clone(),
            partitions,
            dir: dir.to_owned(),
            files,
            outcomes,
            stats,
            shutdown: shared.shutdown.clone(),
        })
    }

    /// Runs until shutdown: connects, finds (or creates) the stream, and writes what its
    /// partitions carry. Panics (stopping the daemon, exit 1) only for what waiting cannot fix: a
    /// foreign stream, a partition the stream does not have, a damaged or locked record.
    pub fn run(self) {
        if let Err(e) = self.run_until_shutdown() {
            panic!("{e}");
        }
    }

    fn run_until_shutdown(mut self) -> Result<(), JetStreamError> {
        let rt = runtime()?;
        let result = rt.block_on(self.serve());
        self.files.close_all();
        result
    }

    async fn serve(&mut self) -> Result<(), JetStreamError> {
        let mut log = RateLimitedLog::new(Duration::from_secs(10));
        let client = connect(&self.config, "ziggyd-writer", &self.stats).await?;
        let js = async_nats::jetstream::ContextBuilder::new()
            .timeout(Duration::from_secs(5))
            .build(client.clone());
        // The stream may not be reachable yet: wait for it.
        let count = loop {
            match ensure_stream(&js, &self.config).await {
                Ok(n) => break n,
                Err(e @ JetStreamError::ForeignStream { .. }) => return Err(e),
                Err(e) => log.log("stream", || format!("{e}; retrying")),
            }
            if self.shutdown.load(Ordering::Acquire) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        if self.asked.is_none() {
            for number in 0..count {
                let claimed = Partition::claim(&self.dir, &self.config.stream, number)?;
                self.partitions.push(claimed);
            }
        }
        if let Some(p) = self.partitions.iter().find(|p| p.number >= count) {
            return Err(JetStreamError::NoSuchPartition {
                partition: p.number,
                stream: self.config.stream.clone(),
                last: count - 1,
            });
        }
        let mut last_tick = Instant::now();
        let mut last_gauges = Instant::now();
        while !self.shutdown.load(Ordering::Acquire) {
            let mut idle = true;
            for partition in &mut self.partitions {
                if partition.consumer.is_none() {
                    partition.consumer =
                        consumer(&js, &self.config, partition.number, &mut log).await;
                }
                let messages = fetch(partition, &mut log).await;
                if !messages.is_empty() {
                    idle = false;
                    write_messages(
                        partition,
                        messages,
                        &mut self.files,
                        &self.outcomes,
                        &self.stats,
                        &mut log,
                    )
                    .await;
                }
                self.files.tick_if_due(&mut last_tick);
            }
            if idle && self.partitions.iter().all(|p| p.consumer.is_none()) {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            if last_gauges.elapsed() >= Duration::from_secs(1) {
                last_gauges = Instant::now();
                note_server(&client, &self.stats);
                let mut pending = 0;
                for partition in &mut self.partitions {
                    if let Some(consumer) = &mut partition.consumer
                        && let Ok(info) = consumer.info().await
                    {
                        pending += info.num_pending + info.num_ack_pending as u64;
                    }
                }
                self.stats.pending.store(pending, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}

/// Why a writer cannot start.
#[derive(Debug, thiserror::Error)]
pub enum WriterBuildError {
    /// The log directory cannot be used, or a daemon that wants it alone holds it.
    #[error(transparent)]
    LogPath(#[from] LogPathError),
    /// The stream settings or a partition cannot be used.
    #[error(transparent)]
    JetStream(#[from] JetStreamError),
}

/// The durable consumer of a partition, created when missing; `None` (logged) while the stream
/// cannot be reached.
async fn consumer(
    js: &async_nats::jetstream::Context,
    config: &JetStreamConfig,
    number: u32,
    log: &mut RateLimitedLog,
) -> Option<PullConsumer> {
    let name = format!("ziggy-writer-p{number}");
    let consumer_config = consumer::pull::Config {
        durable_name: Some(name.clone()),
        filter_subject: subject(&config.prefix, number),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: ACK_WAIT,
        max_deliver: -1,
        max_ack_pending: 4 * FETCH_MESSAGES as i64,
        ..Default::default()
    };
    let found = async {
        let stream = js
            .get_stream(&config.stream)
            .await
            .map_err(|e| e.to_string())?;
        stream
            .get_or_create_consumer::<consumer::pull::Config>(&name, consumer_config)
            .await
            .map_err(|e| e.to_string())
    }
    .await;
    match found {
        Ok(consumer) => Some(consumer),
        Err(e) => {
            log.log("consumer", || format!("consumer {name}: {e}; retrying"));
            None
        }
    }
}

async fn fetch(
    partition: &mut Partition,
    log: &mut RateLimitedLog,
) -> Vec<async_nats::jetstream::Message> {
    let Some(consumer) = &partition.consumer else {
        return Vec::new();
    };
    let batch = consumer
        .fetch()
        .max_messages(FETCH_MESSAGES)
        .expires(FETCH_WAIT)
        .messages()
        .await;
    let mut batch = match batch {
        Ok(b) => b,
        Err(e) => {
            log.log("fetch", || format!("partition {}: {e}", partition.number));
            tokio::time::sleep(FETCH_WAIT).await;
            return Vec::new();
        }
    };
    let mut messages = Vec::new();
    while let Some(message) = batch.next().await {
        match message {
            Ok(m) => messages.push(m),
            Err(e) => {
                log.log("fetch", || format!("partition {}: {e}", partition.number));
                break;
            }
        }
    }
    messages
}

/// A message read: its events not yet written, as a batch for the file writer.
struct Read {
    stream_seq: u64,
    sender: String,
    range: (u64, u64),
    batch: Batch,
    skipped: u64,
    invalid: u64,
}

/// Reads a message; `None` when it is not a ziggyd message (counted, then acknowledged: it would
/// never become readable). An event in it that is not valid is counted and left out.
fn read(message: &async_nats::jetstream::Message, coverage: &Coverage) -> Option<Read> {
    let stream_seq = message.info().ok()?.stream_sequence;
    let headers = message.headers.as_ref()?;
    let sender = headers.get(SENDER_HEADER)?.as_str();
    if !valid_sender_id(sender.as_bytes()) {
        return None;
    }
    let range = parse_range(headers.get(RANGE_HEADER)?.as_str())?;
    let events = decode(&message.payload, range.0, range.1).ok()?;
    let mut frame = Vec::new();
    let mut metas = Vec::new();
    let mut skipped = 0;
    let mut invalid = 0;
    for (seq, bytes) in events {
        if coverage.covers(sender, seq) {
            skipped += 1;
            continue;
        }
        let Ok(meta) = validate_event(bytes) else {
            invalid += 1;
            continue;
        };
        let start = frame.len();
        frame.extend_from_slice(bytes);
        metas.push(EventSpan::copied_to(&meta, start));
    }
    Some(Read {
        stream_seq,
        sender: sender.to_owned(),
        range,
        batch: Batch {
            frame,
            events: metas,
            durable: Some(ForwardMark {
                identity: stream_seq.to_le_bytes().to_vec(),
                sender: sender.to_owned(),
                first_seq: range.0,
                last_seq: range.1,
            }),
        },
        skipped,
        invalid,
    })
}

/// Writes the messages of one fetch in order, records them, then acknowledges them. The first
/// message whose events cannot be written stops the fetch: it and those after it are redelivered.
async fn write_messages(
    partition: &mut Partition,
    messages: Vec<async_nats::jetstream::Message>,
    files: &mut FileWriter,
    outcomes: &Receiver<WriteOutcome>,
    stats: &JetStreamStats,
    log: &mut RateLimitedLog,
) {
    JetStreamStats::add(&stats.consumed, messages.len() as u64);
    let seqs: Vec<u64> = messages
        .iter()
        .filter_map(|m| m.info().ok().map(|i| i.stream_sequence))
        .collect();
    if let (Some(&lo), Some(&hi)) = (seqs.iter().min(), seqs.iter().max()) {
        // Saved before writing: a crash before the record of the write counts these again as
        // possible duplicates.
        let mut marked = partition.coverage.clone();
        marked.in_progress = Some(match partition.coverage.in_progress {
            Some((a, b)) => (a.min(lo), b.max(hi)),
            None => (lo, hi),
        });
        if let Err(e) = coverage::save(&partition.record, &marked) {
            log.log("record", || format!("{e}; the messages wait"));
            nak_all(&messages, partition.number, log).await;
            return;
        }
    }
    let mut done = Vec::new();
    let mut failed_at = None;
    for (i, message) in messages.iter().enumerate() {
        let Some(read) = read(message, &partition.coverage) else {
            JetStreamStats::add(&stats.malformed, 1);
            log.log("malformed", || {
                format!(
                    "partition {}: a message that is not a ziggyd batch was dropped",
                    partition.number
                )
            });
            done.push(i);
            continue;
        };
        JetStreamStats::add(&stats.deduplicated, read.skipped);
        JetStreamStats::add(&stats.invalid_events, read.invalid);
        if !read.batch.events.is_empty() {
            files.write_group(&[&read.batch]);
            // Confirmed only by the writer's own report that this batch is on disk.
            let reports: Vec<bool> = outcomes
                .try_iter()
                .filter(|o| o.mark.identity == read.stream_seq.to_le_bytes())
                .map(|o| o.result.is_ok())
                .collect();
            if reports.is_empty() || reports.contains(&false) {
                failed_at = Some(i);
                break;
            }
            let n = read.batch.events.len() as u64;
            JetStreamStats::add(&stats.events_written, n);
            if partition.coverage.maybe_written(read.stream_seq) {
                JetStreamStats::add(&stats.possible_duplicates, n);
            }
        }
        partition
            .coverage
            .cover(&read.sender, read.range.0, read.range.1);
        partition.coverage.stream_seq = partition.coverage.stream_seq.max(read.stream_seq);
        done.push(i);
    }
    if failed_at.is_none() {
        partition.coverage.in_progress = None;
    }
    if let Err(e) = coverage::save(&partition.record, &partition.coverage) {
        // Written but not recorded: not acknowledged, so redelivered; the coverage in memory skips
        // them then, and after a crash they count as possible duplicates.
        log.log("record", || format!("{e}; acknowledgements wait"));
        return;
    }
    for &i in &done {
        if let Err(e) = messages[i].ack().await {
            log.log("ack", || {
                format!("partition {}: ack: {e}", partition.number)
            });
        }
    }
    if let Some(i) = failed_at {
        log.log("write", || {
            format!(
                "partition {}: events could not be written; {} message(s) wait for redelivery",
                partition.number,
                messages.len() - i
            )
        });
        nak_all(&messages[i..], partition.number, log).await;
    }
}

async fn nak_all(
    messages: &[async_nats::jetstream::Message],
    partition: u32,
    log: &mut RateLimitedLog,
) {
    for message in messages {
        let nak = async_nats::jetstream::AckKind::Nak(Some(RETRY_DELAY));
        if let Err(e) = message.ack_with(nak).await {
            log.log("ack", || format!("partition {partition}: nak: {e}"));
        }
    }
}
