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

use std::collections::{BTreeMap, HashSet};
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

    /// The replies' channel, to wait on together with other channels.
    pub fn replies(&self) -> &crossbeam_channel::Receiver<Reply> {
        &self.replies
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

/// A batch whose messages are out: those not yet acknowledged, by message id.
struct Pending {
    last_seq: u64,
    outstanding: HashSet<String>,
}

/// The outcome of one message's publish.
struct Outcome {
    generation: u64,
    first_seq: u64,
    id: String,
    result: Result<bool, String>,
}

/// What the link knows of the batches it was given.
#[derive(Default)]
struct Window {
    /// Batches not yet confirmed, by first seq.
    pending: BTreeMap<u64, Pending>,
    /// Bumped whenever the batches in flight no longer matter (a refusal, a resend, a new sender
    /// id): outcomes of an older generation are ignored.
    generation: u64,
    /// The sender id of the batches.
    sender: String,
    /// The highest seq confirmed under `sender`: what the forwarder had confirmed when it sent
    /// the first batch (its first seq − 1), then every confirmation since. A refusal names it as
    /// the mark, and a batch is confirmed only once every seq before it is: a batch sent after a
    /// failed one (before the forwarder heard of the failure) must not confirm the failed one's
    /// events with it.
    confirmed: Option<u64>,
}

impl Window {
    /// Takes a new batch in; a batch that starts at or before one in flight is the forwarder
    /// sending again (after a timeout or a refusal), so what was in flight no longer counts.
    fn take(&mut self, sender: &str, first_seq: u64, last_seq: u64, ids: HashSet<String>) {
        if !self.arrived(sender, first_seq)
            && self
                .pending
                .last_key_value()
                .is_some_and(|(&first, _)| first_seq <= first)
        {
            self.pending.clear();
            self.generation += 1;
        }
        self.pending.insert(
            first_seq,
            Pending {
                last_seq,
                outstanding: ids,
            },
        );
    }

    /// Notes a batch of `sender` starting at `first_seq`, whether or not it can be published:
    /// a new sender id starts afresh, and the first batch under a sender id sets the floor (the
    /// forwarder sends from its confirmed mark + 1). True when the window started afresh.
    fn arrived(&mut self, sender: &str, first_seq: u64) -> bool {
        let fresh = sender != self.sender;
        if fresh {
            *self = Window {
                generation: self.generation + 1,
                sender: sender.to_owned(),
                ..Window::default()
            };
        }
        self.confirmed.get_or_insert(first_seq.saturating_sub(1));
        fresh
    }

    /// Records an acknowledged message; returns the seq to confirm, if the batches at the front
    /// are now all acknowledged.
    fn acknowledged(&mut self, first_seq: u64, id: &str) -> Option<u64> {
        if let Some(p) = self.pending.get_mut(&first_seq) {
            p.outstanding.remove(id);
        }
        self.confirm_front()
    }

    /// The seq up to which every batch at the front is acknowledged, if that moved.
    fn confirm_front(&mut self) -> Option<u64> {
        let mut moved = None;
        let mut confirmed = self.confirmed?;
        while let Some(entry) = self.pending.first_entry() {
            let contiguous = *entry.key() <= confirmed.saturating_add(1);
            if !contiguous || !entry.get().outstanding.is_empty() {
                break;
            }
            confirmed = confirmed.max(entry.remove().last_seq);
            moved = Some(confirmed);
        }
        self.confirmed = Some(confirmed);
        moved
    }

    /// A publish failed: everything in flight goes again from the confirmed mark.
    fn failed(&mut self) -> u64 {
        self.pending.clear();
        self.generation += 1;
        self.confirmed.unwrap_or(0)
    }
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
            // Only a malformed address gets here (connecting retries forever): refuse every batch,
            // confirming nothing.
            while batches.recv().await.is_some() {
                let _ = replies.send(Reply::nak(0, Refusal::WriteFailed, &e.to_string()));
            }
            return;
        }
    };
    let js = async_nats::jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(5))
        .build(client.clone());
    let mut partitions = None;
    let mut window = Window::default();
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
                            window.arrived(&batch.sender, batch.first_seq);
                            let mark = window.failed();
                            let _ = replies.send(Reply::nak(mark, Refusal::WriteFailed, &e.to_string()));
                            continue;
                        }
                    }
                }
                let messages = split(&batch, partitions.unwrap_or(1), &config.prefix);
                let last_seq = messages.first().map_or(batch.first_seq, |m| m.last_seq);
                let ids = messages.iter().map(|m| m.id.clone()).collect();
                window.take(&batch.sender, batch.first_seq, last_seq, ids);
                if let Some(seq) = window.confirm_front() {
                    let _ = replies.send(Reply::Ack { seq });
                }
                for message in messages {
                    stats.in_flight.fetch_add(1, Ordering::Relaxed);
                    let js = js.clone();
                    let first_seq = batch.first_seq;
                    let generation = window.generation;
                    outcomes.push(async move {
                        let id = message.id.clone();
                        let result = publish(&js, message).await;
                        Outcome { generation, first_seq, id, result }
                    });
                }
            }
            Some(outcome) = outcomes.next(), if !outcomes.is_empty() => {
                stats.in_flight.fetch_sub(1, Ordering::Relaxed);
                match outcome.result {
                    Ok(duplicate) => {
                        stats.acked.fetch_add(1, Ordering::Relaxed);
                        if duplicate {
                            stats.duplicates.fetch_add(1, Ordering::Relaxed);
                        }
                        if outcome.generation != window.generation {
                            continue;
                        }
                        if let Some(seq) = window.acknowledged(outcome.first_seq, &outcome.id) {
                            let _ = replies.send(Reply::Ack { seq });
                        }
                    }
                    Err(reason) => {
                        stats.failed.fetch_add(1, Ordering::Relaxed);
                        if outcome.generation != window.generation {
                            continue;
                        }
                        let mark = window.failed();
                        let _ = replies.send(Reply::nak(mark, Refusal::WriteFailed, &reason));
                    }
                }
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> HashSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn confirms_in_batch_order_only_what_every_message_of_has() {
        let mut w = Window::default();
        w.take("s", 1, 10, ids(&["a0", "a1"]));
        w.take("s", 11, 20, ids(&["b0"]));
        assert_eq!(
            w.acknowledged(11, "b0"),
            None,
            "the batch before is not in yet"
        );
        assert_eq!(w.acknowledged(1, "a0"), None);
        assert_eq!(w.acknowledged(1, "a1"), Some(20));
        assert_eq!(w.confirmed, Some(20));
    }

    #[test]
    fn a_batch_after_a_failed_one_does_not_confirm_it() {
        let mut w = Window::default();
        w.take("s", 1, 10, ids(&["a"]));
        assert_eq!(w.acknowledged(1, "a"), Some(10));
        w.take("s", 11, 20, ids(&["b"]));
        assert_eq!(w.failed(), 10, "b failed: everything from 11 goes again");
        // c was sent before the forwarder read the refusal; it is acknowledged first.
        w.take("s", 21, 30, ids(&["c"]));
        assert_eq!(
            w.acknowledged(21, "c"),
            None,
            "11..20 are not in the stream"
        );
        // The forwarder sends again from 11 (a resend: what was in flight no longer counts).
        w.take("s", 11, 20, ids(&["b"]));
        w.take("s", 21, 30, ids(&["c"]));
        assert_eq!(w.acknowledged(21, "c"), None);
        assert_eq!(w.acknowledged(11, "b"), Some(30));
    }

    #[test]
    fn a_batch_refused_before_the_stream_is_known_sets_the_floor() {
        let mut w = Window::default();
        // The first batch cannot be published (no stream yet); the second can.
        w.arrived("s", 1);
        assert_eq!(w.failed(), 0);
        w.take("s", 2001, 4000, ids(&["b"]));
        assert_eq!(
            w.acknowledged(2001, "b"),
            None,
            "1..2000 are not in the stream"
        );
    }

    #[test]
    fn the_first_batch_sets_the_floor() {
        let mut w = Window::default();
        // After a restart the forwarder resumes at its confirmed mark + 1.
        w.take("s", 5001, 6000, ids(&["a"]));
        assert_eq!(w.acknowledged(5001, "a"), Some(6000));
    }

    #[test]
    fn a_refusal_names_only_what_was_confirmed() {
        let mut w = Window::default();
        // Before anything is confirmed the mark is 0: it confirms nothing.
        w.take("s", 1, 10, ids(&["a"]));
        w.take("s", 11, 20, ids(&["b"]));
        assert_eq!(w.failed(), 0);
        w.take("s", 1, 10, ids(&["a"]));
        assert_eq!(w.acknowledged(1, "a"), Some(10));
        w.take("s", 11, 20, ids(&["b"]));
        assert_eq!(w.failed(), 10);
    }

    #[test]
    fn a_resend_cut_differently_waits_for_its_own_messages() {
        let mut w = Window::default();
        w.take("s", 1, 1000, ids(&["s.1-1000.p0", "s.1-1000.p1"]));
        let old = w.generation;
        // The forwarder sends again from 1, cut longer: the old messages no longer count.
        w.take("s", 1, 2000, ids(&["s.1-2000.p0", "s.1-2000.p1"]));
        assert_ne!(w.generation, old);
        assert_eq!(w.acknowledged(1, "s.1-2000.p0"), None);
        assert_eq!(w.acknowledged(1, "s.1-2000.p1"), Some(2000));
    }

    #[test]
    fn a_new_sender_id_starts_afresh() {
        let mut w = Window::default();
        w.take("s", 1, 10, ids(&["a"]));
        assert_eq!(w.acknowledged(1, "a"), Some(10));
        w.take("t", 1, 5, ids(&["b"]));
        assert_eq!(w.failed(), 0);
    }
}
