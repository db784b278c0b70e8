//! The sender thread: batches queued events into frames and hands them to its [`Outlet`], never
//! letting the outlet block it for long, so `flush` and `shutdown` stay responsive while no daemon
//! listens. It also adds the `ziggy.dropped` reports to the stream.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::Queue;
use super::outlet::{Outlet, Sent};
use crate::body::{Body, Op, Value};
use crate::counters::COUNTERS;
use crate::encode::{self, now_unix};

/// The `ziggy.dropped` events: how many events were dropped since the previous report.
pub(super) struct DropReports {
    interval: Duration,
    last_check: Instant,
    reported: u64,
    since: f64,
}

impl DropReports {
    pub(super) fn new(interval: Duration) -> DropReports {
        DropReports {
            interval,
            last_check: Instant::now(),
            reported: COUNTERS.dropped.load(Ordering::Relaxed),
            since: now_unix(),
        }
    }

    /// Appends a report to `frame` when one is due; true if it did.
    fn append_due(&mut self, frame: &mut Vec<u8>) -> bool {
        if self.last_check.elapsed() < self.interval {
            return false;
        }
        self.last_check = Instant::now();
        let total = COUNTERS.dropped.load(Ordering::Relaxed);
        if total == self.reported {
            return false;
        }
        let now = now_unix();
        let mut body = Body::new();
        let dropped = (total - self.reported) as i64;
        body.write("dropped", Value::I64(dropped), Op::Set);
        body.write("dropped_total", Value::I64(total as i64), Op::Set);
        let Some(event) = encode::own_event("ziggy.dropped", self.since, now, &body) else {
            return false;
        };
        frame.extend_from_slice(&event);
        self.reported = total;
        self.since = now;
        true
    }
}

pub(super) fn run(
    mut outlet: Outlet,
    queue: Queue,
    stop: Arc<AtomicBool>,
    max_batch: usize,
    mut reports: DropReports,
) {
    let mut frame: Vec<u8> = Vec::with_capacity(max_batch.max(1024));
    let mut in_frame: u64 = 0;
    // The frame holds a drop report (not an application event: not in the counters).
    let mut has_report = false;
    loop {
        if in_frame == 0 && !has_report {
            has_report = reports.append_due(&mut frame);
            // Batch whatever is queued, up to the frame size.
            while let Some(event) = queue.pop() {
                frame.extend_from_slice(&event);
                encode::recycle(event);
                in_frame += 1;
                if frame.len() >= max_batch {
                    break;
                }
            }
            if in_frame == 0 && !has_report {
                if stop.load(Ordering::Acquire) {
                    break;
                }
                // Idle: look again shortly. Producers never wake this thread, so emitting costs
                // them no system call.
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
        }
        match outlet.send(&frame) {
            Sent::Done => {
                COUNTERS.sent.0.fetch_add(in_frame, Ordering::Relaxed);
                COUNTERS.taken.0.fetch_add(in_frame, Ordering::Release);
                frame.clear();
                in_frame = 0;
                has_report = false;
            }
            Sent::Busy => {
                // No peer or peer slow: wait a little for room, but keep hearing `stop`.
                if stop.load(Ordering::Acquire) {
                    break;
                }
                outlet.wait_for_room();
            }
            Sent::Refused => {
                // A frame the outlet refuses outright cannot be retried usefully.
                COUNTERS.dropped.fetch_add(in_frame, Ordering::Relaxed);
                COUNTERS.taken.0.fetch_add(in_frame, Ordering::Release);
                frame.clear();
                in_frame = 0;
                has_report = false;
            }
        }
    }
    // Whatever could not be handed to ZeroMQ before stopping is dropped, and counted.
    let mut left = in_frame;
    while queue.pop().is_some() {
        left += 1;
    }
    COUNTERS.dropped.fetch_add(left, Ordering::Relaxed);
    COUNTERS.taken.0.fetch_add(left, Ordering::Release);
    drop(outlet); // a socket closes with the configured linger, delivering what ZeroMQ holds
}
