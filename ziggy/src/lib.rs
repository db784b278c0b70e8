//! # Ziggy: one structured event per unit of work
//!
//! Mark a unit of work (a web request, a SQL query) as a **context**; everything recorded inside it
//! becomes one BSON event, shipped over ZeroMQ to a `ziggyd` daemon.
//!
//! ```
//! ziggy::channels! { request { sql } }
//!
//! #[ziggy::context("request")]
//! fn handle(path: &str) -> u16 {
//!     ziggy::set("path", path);
//!     let rows = query("SELECT 1");
//!     ziggy::set("response.status", 200);
//!     ziggy::set("rows", rows);
//!     200
//! }
//!
//! #[ziggy::context("request.sql", sample = ("request", 0.25))]
//! #[ziggy::timeit("query_time")]
//! fn query(sql: &str) -> u32 {
//!     ziggy::set("sql", sql);
//!     1
//! }
//!
//! fn main() {
//!     // In production: ziggy::configure("127.0.0.1:3514") once at start-up, ziggy::shutdown() at
//!     // exit. Here, the in-process test sink:
//!     let events = ziggy::testing::capture(|| {
//!         handle("/");
//!     });
//!     let request = events.iter().find(|e| e.channel == "request").unwrap();
//!     assert_eq!(request.get("response.status").and_then(|v| v.as_i32()), Some(200));
//! }
//! ```
//!
//! `channels!` must be invoked at the crate root (it defines `crate::ziggy_declared_channels`,
//! which the attributes refer to); a crate that uses the attributes without it gets "could not find
//! `ziggy_declared_channels` in the crate root".
//!
//! ## Rules
//! - **Nesting.** A context's parent is the innermost open context whose channel is the same as or
//!   an ancestor of its own (`request` for `request.sql`); it shares the parent's id unless given
//!   one with [`Context::id`]. Unrelated contexts get fresh ids.
//! - **Writes** ([`set`], [`append`], [`add`]) go to the innermost open context of the current
//!   thread or task, and do nothing outside one. Dotted keys nest and every segment is a plain map
//!   key (`codes.200`). On a type conflict the later write wins: the value in the way is replaced
//!   and counted in [`Stats::conflicts`]. No write panics or returns an error.
//! - **Sampling** ([`Context::sample`]): see docs/PROTOCOL.md §2 and the `sampling` notes: decisions with an
//!   ancestor as target are a deterministic hash of (ancestor id, channel), so one request keeps all
//!   or none of its sub-events; an unsampled context silences its sub-contexts.
//! - **Errors and panics**: a context unwound by a panic emits with `body.error` set to the panic
//!   message; `#[ziggy::context]` on a function returning `Err(e)` sets `body.error` to `e`'s
//!   `Display`.
//! - **Unconfigured**: before [`configure`] and after [`shutdown`] (outside [`testing`] captures)
//!   every call is a no-op that neither allocates, locks nor serialises its value.
//! - **Transport**: [`configure`] starts one sender thread fed by a bounded queue; a full queue drops
//!   and counts ([`stats()`]); the caller never blocks on the network. Returning from `main` (or
//!   `std::process::exit`) flushes what is queued, up to the shutdown timeout: [`shutdown`] runs
//!   from an exit handler.
//! - **Development**: `ZIGGY_JSON=stderr` (or a file path) makes [`configure`] write events as JSON
//!   lines there instead of to the daemon; [`configure_json`] does it in code.
//! - **Sampling overrides**: `ZIGGY_SAMPLE="request.sql=0.1,request.cache=off"`, read by
//!   [`configure`], and [`set_sample_overrides`] at run time.

#![warn(missing_docs)]

mod body;
pub mod channel;
mod context;
mod counters;
mod emit;
mod encode;
pub mod event;
mod future;
mod id;
mod identity;
mod json_lines;
#[cfg(feature = "log")]
pub mod log_bridge;
mod overrides;
mod panic_message;
mod registry;
mod sampling;
mod sink;
mod stack;
mod switch;
pub mod testing;
mod timer;
#[cfg(feature = "tracing")]
pub mod tracing_bridge;
mod transport;
mod write;

pub use context::{Context, MAX_ID_LEN};
pub use counters::{Stats, stats};
pub use event::Event;
pub use future::{InContext, Instrument, in_context};
pub use id::new_id;
pub use json_lines::JsonOutput;
pub use overrides::{SampleOverride, SampleSpecError, sample_overrides, set_sample_overrides};
pub use registry::{ChannelEntry, DeclaredChannel, InstrumentedFn, channels};
pub use stack::ContextGuard;
pub use switch::enabled;
pub use timer::{TimerGuard, timeit};
pub use transport::{
    ConfigureError, TransportConfig, configure, configure_json, configure_json_with,
    configure_with, flush, shutdown,
};
pub use write::{add, append, current_id, set};
pub use ziggy_macros::{channels, context, timeit};

/// Support for the macros' expansions; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::registry::{DeclaredChannel, InstrumentedFn};
    pub use inventory;

    use std::fmt::Display;

    /// Runs an async body with a stopwatch recorded under `key` when it completes.
    pub async fn timed<F: std::future::Future>(key: &'static str, fut: F) -> F::Output {
        let watch = crate::timer::Stopwatch::start();
        let out = fut.await;
        watch.record(key);
        out
    }

    /// Calls `body` with the method's receiver as its argument, so a result borrowing from
    /// `&mut self` can leave the body (a closure capturing `self` could only lend it).
    #[inline(always)]
    pub fn call_with<S, R>(receiver: S, body: impl FnOnce(S) -> R) -> R {
        body(receiver)
    }

    /// Fixes an async block's output type, so `?` inside it converts into the fn's return type.
    pub fn typed<T, F: std::future::Future<Output = T>>(fut: F) -> F {
        fut
    }

    /// Sets `body.error` of the innermost active context (the `Err` path of async fns).
    pub fn record_error_innermost(message: Option<String>) {
        if let Some(message) = message {
            crate::write::record_error_innermost(message);
        }
    }

    /// Autoref dispatch: `(&value).ziggy_error_of()` picks `Result` first, anything else second.
    pub trait ResultKind {
        /// The error message, if `self` is an `Err`.
        fn ziggy_error_of(&self) -> Option<String>;
    }
    impl<T, E: Display> ResultKind for Result<T, E> {
        fn ziggy_error_of(&self) -> Option<String> {
            self.as_ref().err().map(|e| e.to_string())
        }
    }
    /// Fallback of [`ResultKind`] for every other type.
    pub trait OtherKind {
        /// Always `None`.
        fn ziggy_error_of(&self) -> Option<String> {
            None
        }
    }
    impl<T: ?Sized> OtherKind for &T {}
}
