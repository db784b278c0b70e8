//! Child processes with bounded waits, and their pipes read on threads of their own.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::Proc;

/// What a bounded run printed.
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `program` with `args` (and `stdin`); killed, and the test failed, if it runs longer than
/// `timeout`.
pub fn run_bounded(program: &Path, args: &[&str], stdin: Option<&[u8]>, timeout: Duration) -> Run {
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(bytes) = stdin {
        let mut input = child.stdin.take().unwrap();
        let bytes = bytes.to_vec();
        std::thread::spawn(move || input.write_all(&bytes));
    }
    let out = read_all(child.stdout.take().unwrap());
    let err = read_all(child.stderr.take().unwrap());
    let mut proc = proc_of(child);
    let Some(status) = proc.wait_exit(timeout) else {
        panic!(
            "{} {args:?} still running after {timeout:?}",
            program.display()
        );
    };
    let text = |rx: Receiver<Vec<u8>>| {
        String::from_utf8(rx.recv_timeout(Duration::from_secs(5)).unwrap()).unwrap()
    };
    Run {
        status,
        stdout: text(out),
        stderr: text(err),
    }
}

/// Reads a pipe to its end on a thread of its own.
pub fn read_all(mut pipe: impl Read + Send + 'static) -> Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        let _ = tx.send(bytes);
    });
    rx
}

/// The lines of a pipe as they come.
pub fn lines_of(pipe: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits up to `timeout` for a line containing `needle`; the lines before it are dropped.
pub fn line_with(lines: &Receiver<String>, needle: &str, timeout: Duration) -> Option<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return Some(line),
            Ok(_) => {}
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
        }
    }
}

/// A child killed when dropped.
pub fn proc_of(child: std::process::Child) -> Proc {
    Proc {
        child,
        collect: String::new(),
        control: String::new(),
        stream: String::new(),
        stderr: None,
    }
}
