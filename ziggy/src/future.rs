//! Contexts that follow a future across `.await` points and executor threads.
//!
//! [`InContext`] owns its context's frame (and any frames opened inside it that are still open at
//! an `.await`). Each poll pushes them onto the polling thread's stack and takes them back after,
//! so `set` inside the future reaches its context on whatever thread the executor polls it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use crate::context::Context;
use crate::stack::{Frame, pop_segment, push_segment};

pin_project_lite::pin_project! {
    /// A future running inside a ziggy context; the event is emitted when it completes (or, with
    /// `body.error = "cancelled"`, when it is dropped unfinished).
    #[must_use = "futures do nothing unless polled"]
    pub struct InContext<F> {
        #[pin]
        inner: Option<F>,
        pending: Option<Context>,
        segment: Vec<Frame>,
        serial: u64,
        done: bool,
    }

    impl<F> PinnedDrop for InContext<F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            if *this.done || this.segment.is_empty() {
                return;
            }
            // Drop the future inside its context, so guards it holds close in the right place.
            let base = push_segment(this.segment);
            this.inner.set(None);
            let frames = pop_segment(*this.serial, base);
            close_all(frames, Some("cancelled: the future was dropped before it completed".into()));
        }
    }
}

fn close_all(mut frames: Vec<Frame>, error: Option<String>) {
    while let Some(frame) = frames.pop() {
        let error = if frames.is_empty() {
            error.clone()
        } else {
            None
        };
        frame.close(error);
    }
}

/// Runs `future` inside `context` (the building block behind `#[ziggy::context]` on `async fn`).
/// See [`Instrument`] for an example.
///
/// The context opens at the first poll: its parent, id and sampling are resolved then, against
/// the contexts open on the polling thread (for an `async fn` awaited inside a context, that is
/// its caller's context).
pub fn in_context<F: Future>(context: Context, future: F) -> InContext<F> {
    InContext {
        inner: Some(future),
        pending: Some(context),
        segment: Vec::new(),
        serial: 0,
        done: false,
    }
}

/// Attaches a ziggy context to any future, like `tracing::Instrument`.
///
/// ```
/// use ziggy::Instrument;
/// let capture = ziggy::testing::Capture::new();
/// let fut = capture.wrap(async {
///     async { ziggy::set("step", 1) }.in_context(ziggy::Context::new("job")).await
/// });
/// // Any executor works; a trivial one for the example:
/// futures_lite_block_on(fut);
/// assert_eq!(capture.events()[0].channel, "job");
/// # fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     use std::task::{Context, Poll, Waker};
/// #     let mut f = std::pin::pin!(f);
/// #     let mut cx = Context::from_waker(Waker::noop());
/// #     loop { if let Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
/// # }
/// ```
pub trait Instrument: Future + Sized {
    /// Wraps `self` so it runs inside `context`.
    fn in_context(self, context: Context) -> InContext<Self> {
        in_context(context, self)
    }
}

impl<F: Future> Instrument for F {}

impl<F: Future> Future for InContext<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let mut this = self.project();
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            panic!("InContext polled after completion");
        };
        if let Some(context) = this.pending.take()
            && let Some(frame) = context.into_frame()
        {
            *this.serial = frame.serial;
            this.segment.push(frame);
        }
        if this.segment.is_empty() {
            return inner.poll(cx);
        }
        let base = push_segment(this.segment);
        let result = inner.poll(cx);
        let frames = pop_segment(*this.serial, base);
        match result {
            Poll::Pending => {
                *this.segment = frames;
                Poll::Pending
            }
            Poll::Ready(out) => {
                *this.done = true;
                this.inner.set(None);
                close_all(frames, None);
                Poll::Ready(out)
            }
        }
    }
}
