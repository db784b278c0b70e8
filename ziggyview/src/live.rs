//! Live mode: ask the daemon's control endpoint for its stream port, then SUB by channel prefix.

use std::io::Write;
use std::time::Duration;

use crate::record::Record;
use crate::view::Viewer;

/// Why live mode stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The control endpoint did not answer or refused.
    #[error(transparent)]
    Control(#[from] ziggyd::client::ClientError),
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

/// Streams events from the daemon whose control endpoint is `addr` (or whose collect address it
/// is: the control endpoint is then the port below) until `--count` is reached (or forever).
/// `timeout` bounds the control request. Says on stderr where it streams from.
pub fn run<W: Write>(
    addr: &str,
    viewer: &mut Viewer<W>,
    subscription: &str,
    timeout: Duration,
) -> Result<(), LiveError> {
    let (control, _) = ziggyd::client::find_control(addr, "STATUS", timeout)?;
    let endpoint = ziggyd::client::announced_endpoint(&control, "SOCK_STREAM", timeout)?;
    eprintln!("ziggyview: streaming from {endpoint} (control endpoint {control})");
    let err = |source| LiveError::Stream {
        endpoint: endpoint.clone(),
        source,
    };
    let ctx = zmq::Context::new();
    let sub = ctx.socket(zmq::SUB).map_err(err)?;
    sub.set_subscribe(subscription.as_bytes()).map_err(err)?;
    sub.set_rcvtimeo(200).map_err(err)?;
    sub.connect(&endpoint).map_err(err)?;
    while !viewer.done() {
        let parts = match sub.recv_multipart(0) {
            Ok(parts) => parts,
            Err(zmq::Error::EAGAIN) => continue,
            Err(e) => return Err(err(e)),
        };
        let [_, event] = parts.as_slice() else {
            continue;
        };
        if !viewer.wants(event) {
            continue;
        }
        if let Ok(rec) = Record::decode(event) {
            viewer.event(rec)?;
        }
    }
    viewer.finish()?;
    Ok(())
}
