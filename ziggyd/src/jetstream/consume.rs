//! The writer side: events off the stream into the log files a master writes.
//!
//! A writer owns some partitions of the stream (all by default). For each it uses one durable pull
//! consumer, `ziggy-writer-p<N>`, with explicit acknowledgements; a message is acknowledged only
//! once its events are written and fsynced and the partition's record ([`super::coverage`]) says
//! so. A partition has one consumer, and its channels' files are written only from it, so two
//! writers owning different partitions never write the same event or the same file; two writers
//! claiming the same partition on one log directory are refused (the partition's record is
//! locked).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{self, PullConsumer};
use futures::StreamExt;
use ziggy_proto::day::Day;
use ziggy_proto::forward::valid_sender_id;
use ziggy_proto::jetstream::{RANGE_HEADER, SENDER_HEADER, decode, parse_range, subject};
use ziggy_proto::validate::validate_event;

use super::coverage::{self, Coverage};
use super::{
    JetStreamConfig, JetStreamError, JetStreamStats, connect, ensure_stream, note_server, runtime,
};
use crate::batch::{Batch, EventSpan, ForwardMark, WriteOutcome};
use crate::files::FileWriter;
use crate::lock::DirLock;
use crate::ratelog::RateLimitedLog;

/// Most messages taken per fetch.
const FETCH_MESSAGES: usize = 64;
/// How long a fetch waits for messages.
const FETCH_WAIT: Duration = Duration::from_millis(250);
/// How long JetStream waits for an acknowledgement before it redelivers.
const ACK_WAIT: Duration = Duration::from_secs(60);
/// How long a message whose events could not be written waits before it is redelivered.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// What a writer needs.
#[derive(Debug)]
pub struct WriterConfig {
    /// The stream.
    pub jetstream: JetStreamConfig,
    /// The partitions this writer owns (all when `None`).
    pub partitions: Option<Vec<u32>>,
    /// The log directory.
    pub dir: PathBuf,
}

/// A partition this writer owns.
struct Partition {
    number: u32,
    consumer: PullConsumer,
    coverage: Coverage,
    record: PathBuf,
    _lock: DirLock,
}

/// Runs until `shutdown`: connects, finds (or creates) the stream, and writes what its partitions
/// carry. Returns an error only for what waiting cannot fix (a foreign stream, a partition out of
/// range, a damaged or locked record).
pub fn run(
    config: WriterConfig,
    mut files: FileWriter,
    outcomes: Receiver<WriteOutcome>,
    stats: Arc<JetStreamStats>,
    shutdown: Arc<AtomicBool>,
) -> Result<(), JetStreamError> {
    config.jetstream.check()?;
    let rt = runtime()?;
    rt.block_on(async {
        let mut log = RateLimitedLog::new(Duration::from_secs(10));
        let client = connect(&config.jetstream, "ziggyd-writer", &stats).await?;
        let js = async_nats::jetstream::ContextBuilder::new()
            .timeout(Duration::from_secs(5))
            .build(client.clone());
        // The stream may not be reachable yet: wait for it.
        let count = loop {
            match ensure_stream(&js, &config.jetstream).await {
                Ok(n) => break n,
                Err(e @ JetStreamError::ForeignStream { .. }) => return Err(e),
                Err(e) => log.log("stream", || format!("{e}; retrying")),
            }
            if shutdown.load(Ordering::Acquire) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        let owned = match &config.partitions {
            Some(p) => p.clone(),
            None => (0..count).collect(),
        };
        let mut partitions = Vec::new();
        for number in owned {
            if number >= count {
                return Err(JetStreamError::Setting(format!(
                    "--partitions {number}: stream {} has partitions 0 to {}",
                    config.jetstream.stream,
                    count - 1
                )));
            }
            partitions.push(open_partition(&js, &config, number, &shutdown, &mut log).await?);
        }
        let mut last_tick = Instant::now();
        while !shutdown.load(Ordering::Acquire) {
            for partition in &mut partitions {
                let messages = fetch(partition, &mut log).await;
                if !messages.is_empty() {
                    write_messages(partition, messages, &mut files, &outcomes, &stats, &mut log)
                        .await;
                }
            }
            if last_tick.elapsed() >= Duration::from_secs(1) {
                files.tick(Duration::from_secs(60));
                last_tick = Instant::now();
                note_server(&client, &stats);
                let mut pending = 0;
                for partition in &mut partitions {
                    if let Ok(info) = partition.consumer.info().await {
                        pending += info.num_pending + info.num_ack_pending as u64;
                    }
                }
                stats.pending.store(pending, Ordering::Relaxed);
            }
        }
        files.close_all();
        Ok(())
    })
}

async fn open_partition(
    js: &async_nats::jetstream::Context,
    config: &WriterConfig,
    number: u32,
    shutdown: &AtomicBool,
    log: &mut RateLimitedLog,
) -> Result<Partition, JetStreamError> {
    let stream_name = &config.jetstream.stream;
    let record = coverage::record_path(&config.dir, stream_name, number);
    let lock_name = format!(".ziggyd-jetstream-{stream_name}-p{number}.lock");
    let lock = DirLock::acquire_file(&config.dir, &lock_name)
        .map_err(|e| JetStreamError::Setting(format!("partition {number}: {e}")))?;
    let coverage = coverage::load(&record).map_err(|e| JetStreamError::Setting(e.to_string()))?;
    let name = format!("ziggy-writer-p{number}");
    let consumer_config = consumer::pull::Config {
        durable_name: Some(name.clone()),
        filter_subject: subject(&config.jetstream.prefix, number),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: ACK_WAIT,
        max_deliver: -1,
        max_ack_pending: 4 * FETCH_MESSAGES as i64,
        ..Default::default()
    };
    loop {
        let consumer = async {
            let stream = js
                .get_stream(stream_name)
                .await
                .map_err(|e| e.to_string())?;
            stream
                .get_or_create_consumer::<consumer::pull::Config>(&name, consumer_config.clone())
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        match consumer {
            Ok(consumer) => {
                return Ok(Partition {
                    number,
                    consumer,
                    coverage,
                    record,
                    _lock: lock,
                });
            }
            Err(e) => log.log("consumer", || format!("consumer {name}: {e}; retrying")),
        }
        if shutdown.load(Ordering::Acquire) {
            return Err(JetStreamError::Nats("stopped before connecting".into()));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn fetch(
    partition: &mut Partition,
    log: &mut RateLimitedLog,
) -> Vec<async_nats::jetstream::Message> {
    let batch = partition
        .consumer
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
        metas.push(EventSpan {
            channel: meta.channel.to_owned(),
            day: Day::from_unix(meta.start),
            range: start..frame.len(),
        });
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

/// The partitions of a `--partitions` list (`0,2,3`).
pub fn parse_partitions(text: &str) -> Result<Vec<u32>, JetStreamError> {
    let mut seen = BTreeMap::new();
    for part in text.split(',') {
        let n: u32 = part.trim().parse().map_err(|_| {
            JetStreamError::Setting(format!(
                "--partitions {text:?}: expected partition numbers separated by commas, e.g. 0,2"
            ))
        })?;
        seen.insert(n, ());
    }
    Ok(seen.into_keys().collect())
}
