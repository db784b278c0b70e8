//! A queue of batches whose consumer can wait on it in the same `zmq::poll` as its sockets.
//!
//! The forwarder waits for two things at once: its upstream's answers (a ZeroMQ socket) and new
//! batches from the collector (a channel). Waiting on the socket alone left the collector blocked
//! on a full channel for as long as an answer took, and with it the applications behind it.
//! So the channel comes with a bell: a socket pair the poll watches, rung by the collector only
//! while the forwarder is about to sleep, so a busy pipeline pays no system call per batch.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering, fence};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use crate::batch::Batch;

/// The ringing side of a [`Bell`] and the waiting side share this.
#[derive(Debug)]
struct Bell {
    ring_end: UnixStream,
    wait_end: UnixStream,
    /// Set while the waiter may sleep in a poll: only then is the bell rung.
    armed: AtomicBool,
}

impl Bell {
    fn new() -> std::io::Result<Bell> {
        let (ring_end, wait_end) = UnixStream::pair()?;
        // A full socket buffer means the bell is already ringing; neither end ever blocks.
        ring_end.set_nonblocking(true)?;
        wait_end.set_nonblocking(true)?;
        Ok(Bell {
            ring_end,
            wait_end,
            armed: AtomicBool::new(false),
        })
    }

    fn ring(&self) {
        // Pairs with the fence in `Input::wait_with`: either the waiter sees the batch sent before
        // this fence, or this load sees it armed (store; fence; load on both sides).
        fence(Ordering::SeqCst);
        if self.armed.swap(false, Ordering::Relaxed) {
            let _ = (&self.ring_end).write(&[1]);
        }
    }

    fn silence(&self) {
        self.armed.store(false, Ordering::Relaxed);
        let mut rung = [0u8; 64];
        while matches!((&self.wait_end).read(&mut rung), Ok(n) if n > 0) {}
    }
}

/// The collector's end: batches go in, and the bell rings if the consumer is waiting.
#[derive(Debug, Clone)]
pub struct Output {
    batches: Sender<Arc<Batch>>,
    bell: Option<Arc<Bell>>,
}

impl Output {
    /// Hands `batch` over, blocking while the queue is full (back-pressure); false once the
    /// consumer is gone.
    pub fn send(&self, batch: Arc<Batch>) -> bool {
        let sent = self.batches.send(batch).is_ok();
        if let Some(bell) = &self.bell {
            bell.ring();
        }
        sent
    }
}

/// The consumer's end of a queue with a bell ([`queue_with_bell`]).
#[derive(Debug)]
pub struct Input {
    /// The batches, in the order the collector sent them.
    pub batches: Receiver<Arc<Batch>>,
    bell: Arc<Bell>,
}

impl Input {
    /// Runs `wait` (a poll that must include `item` among its items, returned by
    /// [`Input::poll_item`]) for up to `timeout` unless a batch is already waiting; the poll ends
    /// early when one arrives. Returns what `wait` returned, or `None` when it did not wait.
    pub fn wait_with<T>(&self, timeout: Duration, wait: impl FnOnce(Duration) -> T) -> Option<T> {
        if timeout.is_zero() {
            return None;
        }
        self.bell.armed.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if !self.batches.is_empty() {
            self.bell.silence();
            return None;
        }
        let waited = wait(timeout);
        self.bell.silence();
        Some(waited)
    }

    /// The poll item that becomes readable when the bell rings.
    pub fn poll_item(&self) -> zmq::PollItem<'static> {
        zmq::PollItem::from_fd(self.bell.wait_end.as_raw_fd(), zmq::POLLIN)
    }
}

/// A bounded queue of `capacity` batches whose consumer can wait on it in a `zmq::poll`.
pub fn queue_with_bell(capacity: usize) -> std::io::Result<(Output, Input)> {
    let (tx, rx) = crossbeam_channel::bounded(capacity);
    let bell = Arc::new(Bell::new()?);
    Ok((
        Output {
            batches: tx,
            bell: Some(bell.clone()),
        },
        Input { batches: rx, bell },
    ))
}

/// A bounded queue of `capacity` batches without a bell (its consumer waits on the channel).
pub fn queue(capacity: usize) -> (Output, Receiver<Arc<Batch>>) {
    let (tx, rx) = crossbeam_channel::bounded(capacity);
    (
        Output {
            batches: tx,
            bell: None,
        },
        rx,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn batch() -> Arc<Batch> {
        Arc::new(Batch {
            frame: Vec::new(),
            events: Vec::new(),
            durable: None,
        })
    }

    fn poll(input: &Input, timeout: Duration) -> i32 {
        let mut items = [input.poll_item()];
        zmq::poll(&mut items, timeout.as_millis() as i64).unwrap()
    }

    #[test]
    fn a_batch_sent_while_the_consumer_polls_ends_the_poll() {
        let (output, input) = queue_with_bell(4).unwrap();
        let started = Instant::now();
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(50));
                output.send(batch());
            });
            let woke = input.wait_with(Duration::from_secs(20), |t| poll(&input, t));
            assert_eq!(woke, Some(1), "the bell made the poll readable");
        });
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(input.batches.len(), 1);
    }

    #[test]
    fn a_waiting_batch_means_no_wait_and_a_silenced_bell_does_not_ring_again() {
        let (output, input) = queue_with_bell(4).unwrap();
        output.send(batch());
        assert_eq!(input.wait_with(Duration::from_secs(20), |_| ()), None);
        input.batches.recv().unwrap();
        // Rung while nobody waited: the next wait is not woken by it.
        output.send(batch());
        input.batches.recv().unwrap();
        assert_eq!(
            input.wait_with(Duration::from_millis(30), |t| poll(&input, t)),
            Some(0)
        );
    }

    #[test]
    fn many_batches_from_another_thread_each_end_a_wait_or_are_seen_before_it() {
        // Lost wake-ups would show as waits that run their whole (long) timeout.
        let (output, input) = queue_with_bell(1).unwrap();
        let started = Instant::now();
        std::thread::scope(|s| {
            s.spawn(|| {
                for _ in 0..2000 {
                    output.send(batch());
                }
            });
            let mut got = 0;
            while got < 2000 && started.elapsed() < Duration::from_secs(60) {
                input.wait_with(Duration::from_secs(5), |t| poll(&input, t));
                while input.batches.try_recv().is_ok() {
                    got += 1;
                }
            }
            assert_eq!(got, 2000);
        });
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "a wait ran its whole timeout: {:?}",
            started.elapsed()
        );
    }
}
