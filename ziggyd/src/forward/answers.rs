//! The upstream's answers: confirmations (`ACK1`) drop events from the spool, refusals (`NAK1`)
//! pause and resend, shrink the batches, or start a new sender id.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ziggy_proto::forward::{Refusal, Reply};

use super::Forwarder;
use super::link::{BATCH_BYTES, Link};
use crate::bell::Input;
use crate::spool::Spool;

/// First pause after the upstream refuses a batch; it doubles at each refusal up to
/// `BACKOFF_MAX`, and an ACK resets it.
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Longest wait for answers while batches are in flight (new input ends it early).
const ANSWER_WAIT: Duration = Duration::from_millis(20);

/// The send path's state across links.
#[derive(Debug)]
pub(super) struct Flow {
    /// Highest local seq this process sent under the current sender id: a confirmation is never
    /// taken beyond it, so nothing unsent is ever confirmed (after a restart that may hold back
    /// a confirmation of what the previous run sent; it is sent again and confirmed again).
    pub(super) sent_max: u64,
    /// The pause after the last refusal; zero once an ACK came.
    backoff: Duration,
    /// No batch goes out before this.
    hold_until: Option<Instant>,
    /// What was on disk when this run started (or its sender id did): an earlier run may have
    /// sent up to here, so a confirmation up to here is not a stranger's.
    inherited: u64,
    /// Largest batch sent, in bytes: halved each time the upstream says `too_large` (its
    /// `--max-frame-bytes` is smaller), down to one event per batch.
    pub(super) batch_bytes: usize,
}

impl Flow {
    /// The flow of a run starting on `spool`.
    pub(super) fn new(spool: &Spool) -> Flow {
        Flow {
            sent_max: spool.acked_seq(),
            backoff: Duration::ZERO,
            hold_until: None,
            inherited: spool.synced_seq(),
            batch_bytes: BATCH_BYTES,
        }
    }

    /// Whether sending is paused after a refusal.
    pub(super) fn held(&self) -> bool {
        self.hold_until.is_some_and(|t| Instant::now() < t)
    }

    /// Starts the pause after a refusal and returns it; refusals of other batches of the same
    /// window, arriving during the pause, neither lengthen nor restart it.
    fn pause(&mut self) -> Duration {
        if let Some(left) = self
            .hold_until
            .and_then(|t| t.checked_duration_since(Instant::now()))
        {
            return left;
        }
        self.backoff = if self.backoff.is_zero() {
            BACKOFF_MIN
        } else {
            (self.backoff * 2).min(BACKOFF_MAX)
        };
        self.hold_until = Some(Instant::now() + self.backoff);
        self.backoff
    }
}

/// What one read of the upstream's answers brought.
#[derive(Debug, Default)]
struct Answers {
    /// The highest seq confirmed.
    highest: Option<u64>,
    /// The refusals.
    refusals: Vec<Nak>,
}

/// One refusal: the upstream's confirmed mark, and why.
#[derive(Debug)]
struct Nak {
    mark: u64,
    reason: String,
}

impl Forwarder {
    /// Reads the upstream's answers: confirmations (`ACK1`) and refusals (`NAK1`). Returns the
    /// reason when a refusal asks for a new sender id.
    pub(super) fn read_replies(&mut self, link: &mut Link, input: &Input) -> Option<String> {
        // Waiting ends early when the collector hands over a batch: the intake must not stall
        // behind the upstream's answers.
        let wait = if link.awaiting_answers() {
            ANSWER_WAIT
        } else {
            Duration::ZERO
        };
        // Every answer waiting is read first: one ledger write covers all confirmations.
        let mut answers = Answers::default();
        // While over its bound the spool takes no input (`take_in`): waiting batches are no
        // reason to stop waiting then.
        let input = (!self.spool.over_bound()).then_some(input);
        for parts in link.answers(wait, input) {
            match Reply::parse(&parts) {
                Some(Reply::Ack { seq }) => answers.highest = answers.highest.max(Some(seq)),
                Some(Reply::Nak { mark, reason }) => answers.refusals.push(Nak { mark, reason }),
                None => {
                    self.log.log("reply", || {
                        "ignored an answer from the upstream that is neither ACK1 nor NAK1".into()
                    });
                    continue;
                }
            }
            link.last_heard = Instant::now();
        }
        let mut new_sender_id = None;
        if let Some(seq) = answers.highest {
            self.flow.backoff = Duration::ZERO;
            if self.confirm(link, seq) {
                new_sender_id = Some(format!(
                    "the upstream confirmed seq {seq}, beyond anything this spool ever held under \
                     this sender id: another peer has used it"
                ));
            }
        }
        for Nak { mark, reason } in answers.refusals {
            self.stats.forward.refused.fetch_add(1, Ordering::Relaxed);
            if Refusal::of(&reason).needs_new_sender_id() {
                new_sender_id.get_or_insert(reason);
                continue;
            }
            self.refused(link, mark, &reason);
        }
        new_sender_id
    }

    /// Takes a refusal that keeps the sender id: halves the batches if they are too large
    /// (giving up one event the upstream never takes), then pauses and resends from the
    /// upstream's mark.
    fn refused(&mut self, link: &mut Link, mark: u64, reason: &str) {
        if Refusal::of(reason) == Refusal::TooLarge {
            let first_unconfirmed = self.spool.acked_seq() + 1;
            let single = link
                .in_flight
                .front()
                .is_some_and(|b| b.first == b.last && b.first == first_unconfirmed);
            if self.flow.batch_bytes > 1 {
                self.flow.batch_bytes /= 2;
            } else if single {
                // One event the upstream will never take: give it up, counted, so the rest can
                // go.
                self.stats
                    .forward
                    .refused_events
                    .fetch_add(1, Ordering::Relaxed);
                let wire = self.spool.wire_seq(first_unconfirmed);
                self.log.log("too_large", || {
                    format!(
                        "the upstream refuses event {wire} as too large ({reason}); it is dropped"
                    )
                });
                self.flow.sent_max = self.flow.sent_max.max(first_unconfirmed);
                let _ = self.spool.ack(first_unconfirmed);
            }
        }
        // The mark is the upstream's confirmed position: as good as an ACK.
        self.confirm(link, mark);
        let pause = self.flow.pause();
        let acked = self.spool.acked_seq();
        let resend = link.sent_up_to().saturating_sub(acked);
        self.stats
            .forward
            .resent
            .fetch_add(resend, Ordering::Relaxed);
        link.in_flight.clear();
        link.next_send = acked + 1;
        let from = self.spool.wire_seq(acked + 1);
        self.log.log("refused", || {
            format!(
                "the upstream refused a batch ({reason}); everything stays in the spool and \
                 is sent again from seq {from} in {pause:.1?}"
            )
        });
    }

    /// Takes the upstream's confirmation of everything up to `wire` (its numbering), never
    /// beyond what was sent under the current sender id.
    ///
    /// Returns true when the confirmation goes beyond anything this spool ever held under the
    /// sender id: another peer has used the id, and a new one must start.
    fn confirm(&mut self, link: &mut Link, wire: u64) -> bool {
        let flow = &self.flow;
        // Beyond anything sent under this id (by this run, or by an earlier one, which may have
        // sent all that is on disk): another peer used the id. Nothing is confirmed then: the
        // events it "confirms" were never written.
        let hijacked = self
            .spool
            .local_seq(wire)
            .is_none_or(|seq| seq > flow.sent_max.max(flow.inherited));
        if hijacked {
            self.stats
                .forward
                .acks_beyond_sent
                .fetch_add(1, Ordering::Relaxed);
            return true;
        }
        let seq = match self.spool.local_seq(wire) {
            Some(seq) if seq <= flow.sent_max => seq,
            _ => {
                self.stats
                    .forward
                    .acks_beyond_sent
                    .fetch_add(1, Ordering::Relaxed);
                let sent = self.spool.wire_seq(flow.sent_max);
                self.log.log("ack-beyond", || {
                    format!(
                        "the upstream confirmed seq {wire} but this run sent only up to {sent} \
                         under this sender id: taken as confirming those (after a restart, the \
                         previous run may have sent more)"
                    )
                });
                flow.sent_max
            }
        };
        let before = self.spool.acked_seq();
        if let Err(e) = self.spool.ack(seq) {
            self.log
                .log("ledger", || format!("cannot record a confirmation: {e}"));
            return hijacked;
        }
        let after = self.spool.acked_seq();
        self.stats
            .forward
            .confirmed
            .fetch_add(after.saturating_sub(before), Ordering::Relaxed);
        while link.in_flight.front().is_some_and(|b| b.last <= after) {
            link.in_flight.pop_front();
        }
        hijacked
    }

    /// Starts a new sender id after the upstream refused the old one's numbering.
    pub(super) fn start_epoch(&mut self, reason: &str) {
        let resent = self.flow.sent_max.saturating_sub(self.spool.acked_seq());
        match self.spool.new_epoch(reason) {
            Ok(epoch) => {
                let f = &self.stats.forward;
                f.epochs.fetch_add(1, Ordering::Relaxed);
                f.resent.fetch_add(resent, Ordering::Relaxed);
                eprintln!(
                    "ziggyd: spool {}: new sender id {} (was {}): the upstream answered {:?}; \
                     {} unconfirmed events go again under the new id",
                    self.spool.dir().display(),
                    epoch.new_id,
                    epoch.old_id.as_deref().unwrap_or("none"),
                    epoch.reason,
                    epoch.resent
                );
                self.flow.sent_max = self.spool.acked_seq();
                // Nothing was ever sent under the new id.
                self.flow.inherited = self.spool.acked_seq();
            }
            Err(e) => self.log.log("epoch", || {
                format!("cannot start a new sender id after the upstream's refusal ({reason}): {e}")
            }),
        }
        // Not at once: an upstream refusing every id must not be hammered.
        self.flow.pause();
    }
}
