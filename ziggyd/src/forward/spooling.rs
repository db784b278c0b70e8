//! The forwarder's intake: batches from the collector go into the spool, which is written and
//! fsynced every sync interval (and retried on that timer when a write fails).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};

use super::Forwarder;
use crate::batch::Batch;
use crate::spool::Spool;

/// Longest wait for input in one turn (confirmations and timers are looked at in between).
const TURN: Duration = Duration::from_millis(20);
/// Batches taken from the collector per turn, so that confirmations keep flowing.
const BATCHES_PER_TURN: usize = 64;
/// At shutdown, how long a failing spool write is retried before its events are given up.
const SHUTDOWN_SYNC_RETRY: Duration = Duration::from_secs(5);
/// The age of the oldest unconfirmed event is known to this precision: one mark per interval.
const AGE_RESOLUTION: Duration = Duration::from_millis(100);

/// When a spooled event was appended (one mark per [`AGE_RESOLUTION`]).
#[derive(Debug, Clone, Copy)]
struct Appended {
    seq: u64,
    at: Instant,
}

/// What the intake keeps between turns.
#[derive(Debug)]
pub(super) struct Intake {
    /// Events appended to the spool by this run.
    appended: u64,
    last_sync: Instant,
    /// Marks of unconfirmed events, oldest first.
    ages: VecDeque<Appended>,
}

impl Intake {
    pub(super) fn new() -> Intake {
        Intake {
            appended: 0,
            last_sync: Instant::now(),
            ages: VecDeque::new(),
        }
    }

    /// Notes `count` events appended from `first` on (one clock read per batch, not per event).
    fn appended(&mut self, first: u64, count: u64) {
        self.appended += count;
        if count > 0
            && self
                .ages
                .back()
                .is_none_or(|a| a.at.elapsed() > AGE_RESOLUTION)
        {
            self.ages.push_back(Appended {
                seq: first,
                at: Instant::now(),
            });
        }
    }

    /// How long the oldest event still in `spool` has waited for its confirmation.
    pub(super) fn oldest_unconfirmed(&mut self, spool: &Spool) -> Option<Duration> {
        while self
            .ages
            .front()
            .is_some_and(|a| a.seq <= spool.acked_seq())
        {
            self.ages.pop_front();
        }
        if spool.depth() == 0 {
            return None;
        }
        self.ages.front().map(|a| a.at.elapsed())
    }
}

impl Forwarder {
    /// Appends what the collector sent to the spool; true when the collector is gone.
    ///
    /// Back-pressure: while too much waits for the disk, batches stay in the channel (the
    /// collector blocks, ZeroMQ pushes back to the apps). At shutdown everything is taken in, so
    /// that the collector can finish.
    pub(super) fn take_in(&mut self, batches: &Receiver<Arc<Batch>>, shutting_down: bool) -> bool {
        let idle = self.link.as_ref().is_none_or(|l| !l.awaiting_answers());
        let until_sync = if self.spool.pending_events() > 0 {
            self.config
                .sync_interval
                .saturating_sub(self.intake.last_sync.elapsed())
                .min(TURN)
        } else {
            TURN
        };
        if self.spool.over_bound() && !shutting_down {
            if idle {
                std::thread::sleep(until_sync);
            }
            return false;
        }
        for i in 0..BATCHES_PER_TURN {
            let next = if i == 0 && idle {
                batches.recv_timeout(until_sync).map_err(|e| match e {
                    RecvTimeoutError::Timeout => TryRecvError::Empty,
                    RecvTimeoutError::Disconnected => TryRecvError::Disconnected,
                })
            } else {
                batches.try_recv()
            };
            let batch = match next {
                Ok(batch) => batch,
                Err(TryRecvError::Empty) => return false,
                Err(TryRecvError::Disconnected) => return true,
            };
            let (mut first, mut count) = (None, 0);
            for event in batch.bytes() {
                match self.spool.append(event) {
                    Ok(seq) => {
                        first.get_or_insert(seq);
                        count += 1;
                    }
                    Err(e) => self
                        .log
                        .log("spool", || format!("cannot spool an event: {e}")),
                }
            }
            self.intake.appended(first.unwrap_or_default(), count);
        }
        false
    }

    /// Writes the spool when the sync interval is up (also with no new input: a write that
    /// failed is retried on this timer), or at once when the collector is gone.
    pub(super) fn sync_when_due(&mut self, collector_gone: bool) {
        if self.spool.pending_events() > 0
            && (self.intake.last_sync.elapsed() >= self.config.sync_interval || collector_gone)
        {
            self.sync_spool();
            self.intake.last_sync = Instant::now();
        }
        self.stats.forward.spooled.store(
            self.intake
                .appended
                .saturating_sub(self.spool.pending_events()),
            Ordering::Relaxed,
        );
    }

    /// Writes what is pending to the spool; true if it all got there.
    fn sync_spool(&mut self) -> bool {
        let Err(e) = self.spool.sync() else {
            return true;
        };
        self.stats
            .forward
            .spool_write_errors
            .fetch_add(1, Ordering::Relaxed);
        let (events, bytes) = (self.spool.pending_events(), self.spool.pending_bytes());
        let (dir, every) = (self.spool.dir().display(), self.config.sync_interval);
        self.log.log("spool-write", || {
            format!(
                "cannot write the spool in {dir}: {}; {events} events ({bytes} bytes) wait in \
                 memory and the write is retried every {every:?}; past {} MiB no more input is \
                 taken (the applications' queues fill and count their drops)",
                crate::files::describe_io_error(&e),
                crate::spool::PENDING_BOUND >> 20
            )
        });
        false
    }

    /// At shutdown: retries a failing spool write for a while, then says what is lost.
    pub(super) fn final_sync(&mut self) {
        let deadline = Instant::now() + SHUTDOWN_SYNC_RETRY;
        while self.spool.pending_events() > 0 && !self.sync_spool() {
            if Instant::now() >= deadline {
                eprintln!(
                    "ziggyd: {} events received were never written to the spool in {} and are \
                     lost at shutdown",
                    self.spool.pending_events(),
                    self.spool.dir().display()
                );
                return;
            }
            std::thread::sleep(self.config.sync_interval.min(Duration::from_millis(200)));
        }
    }
}
