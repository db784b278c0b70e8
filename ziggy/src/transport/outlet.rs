//! Where the sender thread puts its frames: a ZeroMQ PUSH socket (production) or JSON lines on
//! stderr or in a file (development without a daemon).

use std::io::Write;

/// What became of one frame.
pub(super) enum Sent {
    /// Handed over.
    Done,
    /// No room now (no peer, or a slow one): try again after [`Outlet::wait_for_room`].
    Busy,
    /// Refused for good: the frame's events are dropped.
    Refused,
}

/// The sender thread's output.
pub(super) enum Outlet {
    /// A connected PUSH socket, sending without blocking.
    Zmq(zmq::Socket),
    /// Each event as one JSON line.
    JsonLines(Box<dyn Write + Send>),
}

impl Outlet {
    /// Sends one frame of concatenated BSON events without blocking on a peer.
    pub(super) fn send(&mut self, frame: &[u8]) -> Sent {
        match self {
            Outlet::Zmq(socket) => match socket.send(frame, zmq::DONTWAIT) {
                Ok(()) => Sent::Done,
                Err(zmq::Error::EAGAIN) => Sent::Busy,
                Err(_) => Sent::Refused,
            },
            Outlet::JsonLines(out) => match crate::json_lines::write_frame(out.as_mut(), frame) {
                Ok(()) => Sent::Done,
                Err(_) => Sent::Refused,
            },
        }
    }

    /// Waits a little (at most 50 ms) for room to send.
    pub(super) fn wait_for_room(&self) {
        match self {
            Outlet::Zmq(socket) => {
                let _ = socket.poll(zmq::POLLOUT, 50);
            }
            Outlet::JsonLines(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    }
}
