//! The publishing side: a forwarder's batches onto the stream, answered as a master would answer.
//!
//! The forwarder talks to a [`JetStreamLink`] exactly as to a master's forward socket: it sends
//! `ZGB1` batches and reads `ACK1` / `NAK1` replies, so its spool, windows, resends and backoff are
//! the same code for both upstreams. A batch is split into one message per partition it has
//! events for; it is confirmed (`ACK1` up to its last seq, in batch order) once JetStream has
//! acknowledged every one of them, a `duplicate` answer counting as an acknowledgement. A failed
//! publish answers `NAK1 write_failed`: the forwarder keeps the events and sends them again after
//! its backoff, under the same message ids when the batch is cut the same way (JetStream drops the
//! repeat), and the writers' coverage catches a repeat cut differently.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use ziggy_proto::forward::{Batch, Refusal, Reply};
use ziggy_proto::jetstream::{
    RANGE_HEADER, SENDER_HEADER, encode, message_id, partition_of, range_header, subject,
};
use ziggy_proto::validate::validate_event;

use super::{
    JetStreamConfig, JetStreamError, JetStreamStats, connect, ensure_stream, note_server, runtime,
};

/// A batch as the link's thread receives it.
struct OwnedBatch {
    sender: String,
    first_seq: u64,
    payload: Vec<u8>,
}

/// The forwarder's upstream when it publishes to JetStream.
pub struct JetStreamLink {
    batches: tokio::sync::mpsc::UnboundedSender<OwnedBatch>,
    replies: crossbeam_channel::Receiver<Reply>,
    stats: Arc<JetStreamStats>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for JetStreamLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JetStreamLink").finish_non_exhaustive()
    }
}

impl JetStreamLink {
    /// Starts the link's thread; it connects in the background and keeps trying. Its counters
    /// go into `daemon`'s STATUS.
    pub fn start(
        config: JetStreamConfig,
        daemon: &crate::stats::DaemonStats,
    ) -> Result<Arc<JetStreamLink>, JetStreamError> {
        config.check()?;
        let stats = Arc::new(JetStreamStats::new(&config.stream));
        let _ = daemon.jetstream.set(stats.clone());
        let runtime = runtime()?;
        let (batches, batch_rx) = tokio::sync::mpsc::unbounded_channel();
        let (reply_tx, replies) = crossbeam_channel::unbounded();
        let thread_stats = stats.clone();
        let thread = std::thread::Builder::new()
            .name("jetstream-publish".into())
            .spawn(move || {
                runtime.block_on(publish_loop(config, batch_rx, reply_tx, thread_stats));
            })
            .map_err(|e| JetStreamError::Nats(format!("cannot start a thread: {e}")))?;
        Ok(Arc::new(JetStreamLink {
            batches,
            replies,
            stats,
            thread: Some(thread),
        }))
    }

    /// Sends a batch (never blocks; the forwarder bounds how many are in flight).
    pub fn send(&self, batch: &Batch) {
        let _ = self.batches.send(OwnedBatch {
            sender: batch.sender.to_owned(),
            first_seq: batch.first_seq,
            payload: batch.payload.to_vec(),
        });
    }

    /// The next reply, waiting at most `timeout`.
    pub fn recv(&self, timeout: Duration) -> Option<Reply> {
        self.replies.recv_timeout(timeout).ok()
    }

    /// A reply if one is waiting.
    pub fn try_recv(&self) -> Option<Reply> {
        self.replies.try_recv().ok()
    }

    /// Whether the client is connected to a server now.
    pub fn connected(&self) -> bool {
        self.stats.connected.load(Ordering::Relaxed)
    }
}

impl Drop for JetStreamLink {
    fn drop(&mut self) {
        // Closing the batch channel ends the thread's loop; unacknowledged batches stay in the
        // spool.
        let (closed, _) = tokio::sync::mpsc::unbounded_channel();
        self.batches = closed;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A batch whose messages are out.
struct Pending {
    last_seq: u64,
    messages_left: usize,
}

/// The outcome of one message's publish.
struct Outcome {
    generation: u64,
    first_seq: u64,
    result: Result<bool, String>,
}

async fn publish_loop(
    config: JetStreamConfig,
    mut batches: tokio::sync::mpsc::UnboundedReceiver<OwnedBatch>,
    replies: crossbeam_channel::Sender<Reply>,
    stats: Arc<JetStreamStats>,
) {
    let client = match connect(&config, "ziggyd-publish", &stats).await {
        Ok(client) => client,
        Err(e) => {
            // Only a malformed address gets here (connecting retries forever): refuse every batch.
            while let Some(batch) = batches.recv().await {
                let _ = replies.send(Reply::nak(
                    batch.first_seq - 1,
                    Refusal::WriteFailed,
                    &e.to_string(),
                ));
            }
            return;
        }
    };
    let js = async_nats::jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(5))
        .build(client.clone());
    let mut partitions = None;
    let mut pending: BTreeMap<u64, Pending> = BTreeMap::new();
    let mut generation = 0u64;
    let mut outcomes = FuturesUnordered::new();
    loop {
        tokio::select! {
            batch = batches.recv() => {
                let Some(batch) = batch else { break };
                note_server(&client, &stats);
                if partitions.is_none() {
                    match ensure_stream(&js, &config).await {
                        Ok(n) => partitions = Some(n),
                        Err(e) => {
                            stats.failed.fetch_add(1, Ordering::Relaxed);
                            let _ = replies.send(Reply::nak(
                                batch.first_seq - 1,
                                Refusal::WriteFailed,
                                &e.to_string(),
                            ));
                            continue;
                        }
                    }
                }
                let messages = split(&batch, partitions.unwrap_or(1), &config.prefix);
                let last_seq = messages.first().map_or(batch.first_seq, |m| m.last_seq);
                pending.insert(batch.first_seq, Pending { last_seq, messages_left: messages.len() });
                if messages.is_empty() {
                    confirm_front(&mut pending, &replies);
                }
                for message in messages {
                    stats.in_flight.fetch_add(1, Ordering::Relaxed);
                    let js = js.clone();
                    let first_seq = batch.first_seq;
                    let sent_in = generation;
                    outcomes.push(async move {
                        Outcome { generation: sent_in, first_seq, result: publish(&js, message).await }
                    });
                }
            }
            Some(outcome) = outcomes.next(), if !outcomes.is_empty() => {
                stats.in_flight.fetch_sub(1, Ordering::Relaxed);
                if outcome.generation != generation {
                    continue;
                }
                match outcome.result {
                    Ok(duplicate) => {
                        stats.acked.fetch_add(1, Ordering::Relaxed);
                        if duplicate {
                            stats.duplicates.fetch_add(1, Ordering::Relaxed);
                        }
                        if let Some(p) = pending.get_mut(&outcome.first_seq) {
                            p.messages_left = p.messages_left.saturating_sub(1);
                        }
                        confirm_front(&mut pending, &replies);
                    }
                    Err(reason) => {
                        stats.failed.fetch_add(1, Ordering::Relaxed);
                        // Everything not confirmed goes again from the forwarder's mark, so the
                        // answers still in flight no longer matter.
                        let mark = pending.keys().next().map_or(outcome.first_seq, |&f| f) - 1;
                        pending.clear();
                        generation += 1;
                        let _ = replies.send(Reply::nak(mark, Refusal::WriteFailed, &reason));
                    }
                }
            }
        }
    }
}

/// Answers `ACK1` for every batch at the front whose messages are all acknowledged.
fn confirm_front(pending: &mut BTreeMap<u64, Pending>, replies: &crossbeam_channel::Sender<Reply>) {
    let mut confirmed = None;
    while let Some(entry) = pending.first_entry() {
        if entry.get().messages_left > 0 {
            break;
        }
        confirmed = Some(entry.remove().last_seq);
    }
    if let Some(seq) = confirmed {
        let _ = replies.send(Reply::Ack { seq });
    }
}

/// One message of a batch.
struct Message {
    subject: String,
    id: String,
    sender: String,
    first_seq: u64,
    last_seq: u64,
    payload: Vec<u8>,
}

/// Splits a batch by partition. Every message carries the batch's whole range, so a writer knows
/// which seqs of the sender it has seen for its partition.
fn split(batch: &OwnedBatch, partitions: u32, prefix: &str) -> Vec<Message> {
    let mut by_partition: BTreeMap<u32, Vec<(u64, &[u8])>> = BTreeMap::new();
    let mut last_seq = batch.first_seq;
    for (i, doc) in ziggy_proto::framing::documents(&batch.payload)
        .filter_map(Result::ok)
        .enumerate()
    {
        let seq = batch.first_seq + i as u64;
        last_seq = seq;
        // The spool holds only events validated on arrival; one that no longer reads goes to
        // partition 0, where the writer counts it.
        let partition = match validate_event(doc.1) {
            Ok(meta) => partition_of(meta.channel, partitions),
            Err(_) => 0,
        };
        by_partition
            .entry(partition)
            .or_default()
            .push((seq, doc.1));
    }
    by_partition
        .into_iter()
        .map(|(partition, events)| Message {
            subject: subject(prefix, partition),
            id: message_id(&batch.sender, batch.first_seq, last_seq, partition),
            sender: batch.sender.clone(),
            first_seq: batch.first_seq,
            last_seq,
            payload: encode(events),
        })
        .collect()
}

/// Publishes one message and waits for its acknowledgement: `Ok(duplicate)`.
async fn publish(js: &async_nats::jetstream::Context, message: Message) -> Result<bool, String> {
    let publish = async_nats::jetstream::message::PublishMessage::build()
        .payload(message.payload.into())
        .message_id(&message.id)
        .header(SENDER_HEADER, message.sender.as_str())
        .header(
            RANGE_HEADER,
            range_header(message.first_seq, message.last_seq).as_str(),
        );
    let ack = js
        .send_publish(message.subject, publish)
        .await
        .map_err(|e| format!("jetstream publish: {e}"))?;
    let ack = ack.await.map_err(|e| format!("jetstream publish: {e}"))?;
    Ok(ack.duplicate)
}
