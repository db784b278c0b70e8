//! While ziggy is off, the recording options of `#[ziggy::context]` neither evaluate `fields`
//! nor format arguments, returned values or errors. Alone in its binary: no capture may switch
//! ziggy on meanwhile.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

ziggy::channels! { job }

static FORMATTED: AtomicUsize = AtomicUsize::new(0);
static EVALUATED: AtomicUsize = AtomicUsize::new(0);

struct Counted;
impl fmt::Debug for Counted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        FORMATTED.fetch_add(1, Ordering::SeqCst);
        f.write_str("Counted")
    }
}
impl fmt::Display for Counted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        FORMATTED.fetch_add(1, Ordering::SeqCst);
        f.write_str("Counted")
    }
}

fn field() -> u8 {
    EVALUATED.fetch_add(1, Ordering::SeqCst);
    1
}

#[ziggy::context("job", args, fields(f = field()), ret)]
fn sync_fn(c: Counted) -> Counted {
    c
}

#[ziggy::context("job", args, fields(f = field()), err, ret)]
fn sync_err(c: Counted) -> Result<Counted, Counted> {
    Err(c)
}

#[ziggy::context("job")]
fn sync_default_err() -> Result<(), Counted> {
    Err(Counted)
}

#[ziggy::context("job", args, fields(f = field()), err(Debug), ret)]
async fn async_fn(c: Counted, fail: bool) -> Result<Counted, Counted> {
    if fail { Err(c) } else { Ok(c) }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

#[test]
fn disabled_path_evaluates_and_formats_nothing() {
    assert!(!ziggy::enabled());
    sync_fn(Counted);
    let _ = sync_err(Counted);
    let _ = sync_default_err();
    let _ = block_on(async_fn(Counted, false));
    let _ = block_on(async_fn(Counted, true));
    assert_eq!(FORMATTED.load(Ordering::SeqCst), 0);
    assert_eq!(EVALUATED.load(Ordering::SeqCst), 0);
}
