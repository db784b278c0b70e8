//! Live mode: ask the daemon's control endpoint for its stream port, then SUB by channel prefix.
//!
//! Every event is flushed as soon as it is written, so a pipe (`ziggyview -H … | grep …`) sees it
//! at once. The run stops at `--count`, or when `stop` is set (SIGINT, SIGTERM): what is held
//! (open groups, statistics) is printed and flushed. When the stream stays silent for
//! [`SILENCE`], the control endpoint is asked whether the daemon is still there; if it does not
//! answer, one line on stderr says so, and ziggyview keeps trying (as `tail -F` does), follows the
//! daemon to a new stream port when it comes back, and says so. Only a daemon that never answered
//! at the start is an error.

use std::io::Write;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ziggy_proto::client::ClientError;

use crate::view::Viewer;

/// How long the stream may stay silent before the daemon's control endpoint is asked whether it
/// is still there.
const SILENCE: Duration = Duration::from_secs(2);

/// How often the stop flag is looked at while no event arrives.
const TICK_MS: i32 = 100;

/// Why live mode stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The control endpoint did not answer or refused.
    #[error(transparent)]
    Control(#[from] ClientError),
    /// The stream socket failed.
    #[error("stream socket {endpoint}: {source}")]
    Stream {
        /// The stream endpoint.
        endpoint: String,
        /// ZeroMQ's error.
        source: zmq::Error,
    },
    /// Writing the output failed.
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
}

/// Asks the control endpoint for the stream endpoint on a thread of its own, so the event loop
/// never blocks on a daemon that has gone away.
struct Prober {
    ask: mpsc::Sender<()>,
    answers: mpsc::Receiver<Result<String, ClientError>>,
    pending: bool,
}

impl Prober {
    fn new(addr: &str, timeout: Duration) -> Prober {
        let (ask, asked) = mpsc::channel::<()>();
        let (answer, answers) = mpsc::channel();
        let addr = addr.to_owned();
        let spawned = std::thread::Builder::new()
            .name("ziggyview-probe".into())
            .spawn(move || {
                // Ends when the event loop drops its sender.
                while asked.recv().is_ok() {
                    let reply =
                        ziggy_proto::client::announced_endpoint(&addr, "SOCK_STREAM", timeout);
                    if answer.send(reply).is_err() {
                        break;
                    }
                }
            });
        if let Err(e) = spawned {
            // Without the thread, `start` finds the channel closed and never probes.
            eprintln!("ziggyview: cannot watch the daemon's health: {e}");
        }
        Prober {
            ask,
            answers,
            pending: false,
        }
    }

    /// Starts a probe unless one is under way.
    fn start(&mut self) {
        if !self.pending {
            self.pending = self.ask.send(()).is_ok();
        }
    }

    /// The answer of the probe under way, if it came.
    fn answer(&mut self) -> Option<Result<String, ClientError>> {
        if !self.pending {
            return None;
        }
        let got = match self.answers.try_recv() {
            Ok(answer) => Some(answer),
            Err(mpsc::TryRecvError::Empty) => return None,
            Err(mpsc::TryRecvError::Disconnected) => None,
        };
        self.pending = false;
        got
    }
}

impl<W: Write> Viewer<W> {
    /// Streams the matching events of the daemon whose control endpoint is `addr` (or whose
    /// collect address it is: the control endpoint is then the port below) until `--count` is
    /// reached or `stop` is set, then prints what is held. Says on stderr where it streams from.
    /// `timeout` bounds each control request; the first one failing is an error.
    pub fn follow(
        &mut self,
        addr: &str,
        timeout: Duration,
        stop: &AtomicBool,
    ) -> Result<(), LiveError> {
        let subscription = self.pattern().subscription().to_owned();
        if !self.done() {
            follow_stream(
                addr,
                &subscription,
                timeout,
                stop,
                |endpoint, received, event| {
                    if let Some(e) = self.take(event)? {
                        self.report(&format_args!("{endpoint}: message {received} skipped: {e}"));
                    }
                    self.flush()?;
                    Ok(if self.done() {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    })
                },
                // Said on stderr by follow_stream.
                |_| {},
            )?;
        }
        self.finish()?;
        Ok(())
    }
}

/// Follows the live stream of the daemon at `addr` (see [`Viewer::follow`]), subscribed to
/// channels starting with `subscription`, handing each event's bytes to `each` (with the stream
/// endpoint and the number of messages received) until it breaks or `stop` is set. `away_or_back` is
/// told when the daemon stops answering (why) and when it answers again (`None`; also once the
/// stream is set up).
pub(crate) fn follow_stream(
    addr: &str,
    subscription: &str,
    timeout: Duration,
    stop: &AtomicBool,
    mut each: impl FnMut(&str, u64, &[u8]) -> Result<ControlFlow<()>, LiveError>,
    mut away_or_back: impl FnMut(Option<String>),
) -> Result<(), LiveError> {
    let (addr, _) = ziggy_proto::client::find_control(addr, "STATUS", timeout)?;
    let addr = addr.as_str();
    let mut endpoint = ziggy_proto::client::announced_endpoint(addr, "SOCK_STREAM", timeout)?;
    eprintln!("ziggyview: streaming from {endpoint} (control endpoint {addr})");
    let stream_err = |endpoint: &str, source| LiveError::Stream {
        endpoint: endpoint.to_owned(),
        source,
    };
    let ctx = zmq::Context::new();
    let sub = ctx.socket(zmq::SUB).map_err(|e| stream_err(&endpoint, e))?;
    sub.set_subscribe(subscription.as_bytes())
        .and_then(|()| sub.set_rcvtimeo(TICK_MS))
        .and_then(|()| sub.set_linger(0))
        .and_then(|()| sub.connect(&endpoint))
        .map_err(|e| stream_err(&endpoint, e))?;
    away_or_back(None);
    let mut prober = Prober::new(addr, timeout);
    let mut last_heard = Instant::now();
    let mut away = false;
    let mut received: u64 = 0;
    while !stop.load(Ordering::SeqCst) {
        match sub.recv_multipart(0) {
            Ok(parts) => {
                last_heard = Instant::now();
                received += 1;
                if std::mem::take(&mut away) {
                    eprintln!("ziggyview: ziggyd at {addr} is streaming again");
                    away_or_back(None);
                }
                if let [_, event] = parts.as_slice()
                    && each(&endpoint, received, event)?.is_break()
                {
                    break;
                }
            }
            Err(zmq::Error::EAGAIN | zmq::Error::EINTR) => {}
            Err(e) => return Err(stream_err(&endpoint, e)),
        }
        match prober.answer() {
            Some(Ok(announced)) => {
                last_heard = Instant::now();
                if announced != endpoint {
                    // A restarted daemon may stream on another port.
                    let _ = sub.disconnect(&endpoint);
                    sub.connect(&announced)
                        .map_err(|e| stream_err(&announced, e))?;
                    endpoint = announced;
                }
                if std::mem::take(&mut away) {
                    eprintln!("ziggyview: ziggyd at {addr} answers again (stream {endpoint})");
                    away_or_back(None);
                }
            }
            Some(Err(e)) if !away => {
                away = true;
                away_or_back(Some(format!(
                    "ziggyd at {addr} is not answering (no event for {} s, then: {e}); still \
                     trying",
                    last_heard.elapsed().as_secs()
                )));
                eprintln!(
                    "ziggyview: ziggyd at {addr} is not answering (no event for {}s, then: {e}); \
                     still trying, interrupt to stop",
                    last_heard.elapsed().as_secs()
                );
            }
            Some(Err(_)) | None => {}
        }
        if away || last_heard.elapsed() >= SILENCE {
            prober.start();
        }
    }
    Ok(())
}
