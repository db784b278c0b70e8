//! The forwarder of a local daemon (`--publish`): spool every valid event, send batches upstream,
//! drop them from the spool only when the upstream confirms they are durable there.
//!
//! Spooling (`forward/spooling`): events are appended to the spool's memory and written +
//! fsynced every `sync_interval`; only synced events are sent. A failed write (disk full, file
//! size limit) is counted (`spool_write_errors`), logged at most every 10 s ("disk full" when it
//! is), and retried every `sync_interval` whether or not new input comes; while more than
//! [`crate::spool::PENDING_BOUND`] bytes wait, no input is taken, so the collector blocks and
//! ZeroMQ's high-water marks push back to the applications (which count their drops): nothing
//! is dropped here unseen.
//!
//! Sending (`forward/link`): the upstream's forward endpoint is learnt from its control endpoint
//! (`SOCK_FORWARD`); at most `WINDOW` batches (32, and 16 MiB) are in flight. While it waits for
//! answers the forwarder also hears the collector's queue (`crate::bell`): new batches are
//! spooled at once, never left to block the collector behind an answer. After a silence of `ack_timeout` the
//! connection is dropped, the endpoint asked again (a restarted upstream has a new port) and
//! everything unconfirmed is resent from the spool. RAM stays flat however long the upstream is
//! away: the backlog lives on disk.
//!
//! Answers (`forward/answers`): `ACK1 seq` confirms everything up to `seq`; a seq beyond what was
//! sent confirms only what was sent (counted in `acks_beyond_sent`). `NAK1 mark reason` refuses a
//! batch (`refused`): `write_failed: …` (the upstream cannot write) keeps everything spooled,
//! pauses 1 s, doubling up to 30 s until the next ACK, then resends from the confirmed mark on
//! the same connection; `seq_jump` or `sender_key` (the upstream will not take this sender id's
//! numbering) starts a new sender id ([`Spool::new_epoch`], logged) and resends everything
//! unconfirmed under it, on a new socket so that answers meant for the old id are not taken for
//! the new one.

mod answers;
mod link;
mod spooling;

pub(crate) use link::MAX_EVENTS_IN_FLIGHT;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::bell::Input;
use crate::config::ForwardTo;
use crate::ratelog::RateLimitedLog;
use crate::runtime::Shared;
use crate::spool::{Recovery, Spool, SpoolConfig};
use crate::stats::DaemonStats;

use answers::Flow;
use link::{Discovery, Link};
use spooling::Intake;

/// Pause before connecting again after a refused handshake (the upstream re-reads its allowed
/// keys at every connection).
const HANDSHAKE_RETRY: Duration = Duration::from_secs(1);
/// Pause before asking again for an upstream that could not be reached.
const DISCOVERY_RETRY: Duration = Duration::from_millis(500);

/// Why the forwarder cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// The spool directory cannot be opened (or is another daemon's).
    #[error("cannot use spool directory {path}: {source}")]
    Open {
        /// The directory.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The forwarder thread's state: the spool and its intake, the link upstream, and the flow of
/// batches over it.
pub struct Forwarder {
    spool: Spool,
    /// Where and how to forward.
    config: ForwardTo,
    stats: Arc<DaemonStats>,
    shutdown: Arc<AtomicBool>,
    log: RateLimitedLog,
    ctx: zmq::Context,
    intake: Intake,
    /// The connection upstream, while there is one.
    link: Option<Link>,
    discovery: Discovery,
    /// No lookup of the upstream's forward endpoint before this.
    next_discovery: Instant,
    flow: Flow,
    /// Publishing to NATS JetStream instead of a master (`--publish nats://…`).
    #[cfg(feature = "jetstream")]
    jetstream: Option<Arc<crate::jetstream::publish::JetStreamLink>>,
}

impl Forwarder {
    /// The forwarder of a daemon with `--publish`: opens the spool (recovering what a crash or
    /// damage left, and telling the operator), with its gauges in STATUS from the start.
    pub fn build(shared: &Shared, forward: &ForwardTo) -> Result<Forwarder, SpoolError> {
        let spool_config = SpoolConfig {
            dir: forward.spool_dir.clone(),
            segment_bytes: forward.segment_bytes,
            max_bytes: forward.spool_max_bytes,
        };
        let (spool, recovery) = Spool::open(spool_config).map_err(|source| SpoolError::Open {
            path: forward.spool_dir.display().to_string(),
            source,
        })?;
        report_recovery(&forward.spool_dir, &recovery);
        // Gauges are right from the first STATUS, before the forwarder's first turn.
        let f = &shared.stats.forward;
        f.enabled.store(true, Ordering::Relaxed);
        f.spool_corrupt.store(recovery.corrupt, Ordering::Relaxed);
        f.spool_cut_bytes
            .store(recovery.bytes_cut, Ordering::Relaxed);
        f.spool_lost.store(recovery.lost, Ordering::Relaxed);
        f.epochs
            .store(recovery.epoch.is_some() as u64, Ordering::Relaxed);
        f.spool_events.store(spool.depth(), Ordering::Relaxed);
        f.spooled_seq.store(spool.synced_seq(), Ordering::Relaxed);
        f.spool_bytes.store(spool.bytes(), Ordering::Relaxed);
        Ok(Forwarder {
            flow: Flow::new(&spool),
            discovery: Discovery::new(forward.upstream_control.clone()),
            spool,
            config: forward.clone(),
            stats: shared.stats.clone(),
            shutdown: shared.shutdown.clone(),
            log: RateLimitedLog::new(Duration::from_secs(10)),
            ctx: zmq::Context::new(),
            intake: Intake::new(),
            link: None,
            next_discovery: Instant::now(),
            #[cfg(feature = "jetstream")]
            jetstream: None,
        })
    }

    /// Publishes through `link` to a NATS JetStream stream instead of a master.
    #[cfg(feature = "jetstream")]
    pub fn with_jetstream(
        mut self,
        link: Option<Arc<crate::jetstream::publish::JetStreamLink>>,
    ) -> Forwarder {
        self.jetstream = link;
        self
    }

    /// Forwards what arrives on `batches` until the collector is gone (after shutdown); leaves
    /// the spool synced.
    pub fn run(mut self, input: Input) {
        self.stats.forward.enabled.store(true, Ordering::Relaxed);
        loop {
            let shutting_down = self.shutdown.load(Ordering::Acquire);
            let collector_gone = self.take_in(&input.batches, shutting_down);
            self.sync_when_due(collector_gone);
            if collector_gone && shutting_down {
                break;
            }
            self.keep_linked();
            self.exchange(&input);
            self.publish_gauges();
        }
        self.final_sync();
        self.publish_spool_gauges();
    }

    /// Looks up the upstream's forward endpoint while there is no link, and connects to it once
    /// known.
    fn keep_linked(&mut self) {
        #[cfg(feature = "jetstream")]
        if let Some(js) = &self.jetstream {
            if self.link.is_none() && Instant::now() >= self.next_discovery {
                self.link = Some(self.over_jetstream(js.clone()));
            }
            return;
        }
        if self.link.is_none() && Instant::now() >= self.next_discovery {
            self.discovery.ask();
        }
        let Some(answer) = self.discovery.answer() else {
            return;
        };
        let linked = answer
            .map_err(link::LinkError::from)
            .and_then(|endpoint| self.connect(&endpoint));
        match linked {
            Ok(link) => self.link = Some(link),
            Err(e) => {
                self.log.log("upstream", || {
                    format!("upstream not reachable, spooling: {e}")
                });
                self.next_discovery = Instant::now() + DISCOVERY_RETRY;
            }
        }
    }

    /// One turn on the link: sends what the window allows, reads the answers, and drops or
    /// replaces the link when the upstream refused the handshake, the sender id, or fell silent.
    fn exchange(&mut self, input: &Input) {
        let Some(mut link) = self.link.take() else {
            return;
        };
        if !self.flow.held() {
            self.send_window(&mut link);
        }
        let new_sender_id = self.read_replies(&mut link, input);
        let refused = self.watch_handshakes(&link);
        let silent = link.last_heard.elapsed() > self.config.ack_timeout;
        if let Some(reason) = new_sender_id {
            self.start_epoch(&reason);
            // A new socket: answers still on their way for the old sender id must not be
            // taken for the new one (an ACK does not name the id).
            match self.connect(&link.endpoint) {
                Ok(new) => self.link = Some(new),
                Err(e) => {
                    self.log
                        .log("upstream", || format!("cannot reconnect upstream: {e}"));
                    self.next_discovery = Instant::now();
                }
            }
        } else if refused {
            // Unconfirmed batches go again on the next link.
            self.count_resent(&link);
            self.next_discovery = Instant::now() + HANDSHAKE_RETRY;
        } else if link.awaiting_answers() && silent {
            self.count_resent(&link);
            self.log.log("timeout", || {
                "no confirmation from upstream; reconnecting and resending".into()
            });
            self.next_discovery = Instant::now();
        } else {
            self.link = Some(link);
        }
    }

    /// Counts what a link sent and the upstream did not confirm: it goes again.
    fn count_resent(&self, link: &Link) {
        let resend = link.sent_up_to().saturating_sub(self.spool.acked_seq());
        self.stats
            .forward
            .resent
            .fetch_add(resend, Ordering::Relaxed);
    }

    /// The gauges of this turn in STATUS: the link, the oldest unconfirmed event, the spool.
    fn publish_gauges(&mut self) {
        let f = &self.stats.forward;
        let connected = self.link.as_ref().is_some_and(|l| l.connected());
        f.connected.store(connected, Ordering::Relaxed);
        let oldest = self.intake.oldest_unconfirmed(&self.spool);
        f.oldest_unconfirmed_ms.store(
            oldest.map_or(0, |age| age.as_millis() as u64),
            Ordering::Relaxed,
        );
        self.publish_spool_gauges();
    }

    /// The spool's gauges in STATUS.
    fn publish_spool_gauges(&self) {
        let f = &self.stats.forward;
        f.spool_events.store(self.spool.depth(), Ordering::Relaxed);
        f.spooled_seq
            .store(self.spool.synced_seq(), Ordering::Relaxed);
        f.spool_bytes.store(self.spool.bytes(), Ordering::Relaxed);
        f.spool_pending
            .store(self.spool.pending_events(), Ordering::Relaxed);
        f.spool_pending_bytes
            .store(self.spool.pending_bytes() as u64, Ordering::Relaxed);
        f.dropped.store(self.spool.dropped, Ordering::Relaxed);
    }
}

/// Tells the operator what opening the spool found: damage cut out, events lost, a new sender id.
fn report_recovery(dir: &std::path::Path, recovery: &Recovery) {
    let dir = dir.display();
    for d in &recovery.damage {
        let lost = if d.lost > 0 {
            format!("{} unconfirmed event(s) lost", d.lost)
        } else {
            "no unconfirmed event known lost".to_owned()
        };
        eprintln!(
            "ziggyd: spool {dir}: {}: damaged bytes {}..{} ({} bytes) cut out; {lost}",
            d.segment.file_name().unwrap_or_default().to_string_lossy(),
            d.start,
            d.end,
            d.end - d.start
        );
    }
    if recovery.corrupt > 0 {
        eprintln!(
            "ziggyd: spool {dir}: {} damaged place(s), {} bytes cut, {} events lost; {} records kept and will be forwarded",
            recovery.corrupt, recovery.bytes_cut, recovery.lost, recovery.records
        );
    }
    if let Some(epoch) = &recovery.epoch {
        eprintln!(
            "ziggyd: spool {dir}: new sender id {} (was {}): {}; {} unconfirmed events on disk go (again) under the new id, and none of the old id's sequence numbers is reused",
            epoch.new_id,
            epoch.old_id.as_deref().unwrap_or("unknown"),
            epoch.reason,
            epoch.resent
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// While the spool is over its bound (no input taken) and answers are awaited, a batch
    /// waiting in the collector's queue must not cut the wait for answers short: the forwarder
    /// would turn without pause (a whole core) instead of every 20 ms.
    #[test]
    fn over_bound_with_batches_queued_and_answers_awaited_does_not_spin() {
        let dir = tempfile::tempdir().unwrap();
        let shared = Shared::new();
        let config = ForwardTo {
            upstream_control: "tcp://127.0.0.1:1".into(),
            spool_dir: dir.path().join("spool"),
            spool_max_bytes: 10 << 30,
            segment_bytes: 64 << 20,
            sync_interval: Duration::from_secs(600),
            ack_timeout: Duration::from_secs(600),
            curve: None,
            jetstream: None,
        };
        let mut f = Forwarder::build(&shared, &config).unwrap();
        // An upstream that never answers.
        let ctx = zmq::Context::new();
        let router = ctx.socket(zmq::ROUTER).unwrap();
        router.bind("tcp://127.0.0.1:*").unwrap();
        let endpoint = router.get_last_endpoint().unwrap().unwrap();
        f.link = Some(f.connect(&endpoint).unwrap());
        let event = bson::doc! { "id": "i", "type": "request", "host": "h", "pid": 1,
        "start": 1.7e9, "end": 1.7e9, "body": {} }
        .to_vec()
        .unwrap();
        f.spool.append(&event).unwrap();
        f.spool.sync().unwrap();
        let mut link = f.link.take().unwrap();
        f.send_window(&mut link);
        assert!(link.awaiting_answers());
        f.link = Some(link);
        // Over the pending bound (e.g. the spool's disk is full and syncs fail).
        let big = vec![0u8; 1 << 20];
        while !f.spool.over_bound() {
            f.spool.append(&big).unwrap();
        }
        // The collector has a batch for the forwarder (and blocks behind it).
        let (output, input) = crate::bell::queue_with_bell(4).unwrap();
        let frame = event.clone();
        let metas = crate::validate::split_frame(&frame, crate::validate::Limits::default());
        let spans = metas
            .iter()
            .map(|m| crate::batch::EventSpan::locate(m.as_ref().unwrap(), &frame))
            .collect();
        output.send(Arc::new(crate::batch::Batch {
            frame: frame.clone(),
            events: spans,
            durable: None,
        }));
        // The forwarder's loop, as `run` turns it, for half a second.
        let started = Instant::now();
        let mut turns = 0u64;
        while started.elapsed() < Duration::from_millis(500) {
            let collector_gone = f.take_in(&input.batches, false);
            f.sync_when_due(collector_gone);
            f.keep_linked();
            f.exchange(&input);
            f.publish_gauges();
            turns += 1;
        }
        // Before bell.rs, each turn waited 20 ms in the answers' poll: ~25 turns.
        assert!(turns < 100, "{turns} turns in 500 ms: the forwarder spins");
    }
}
