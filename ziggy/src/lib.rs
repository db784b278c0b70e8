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
//! ## `#[ziggy::context]` options
//! After the channel, in any order (each at most once), beside `sample = ("target", rate)` and
//! `id = expr`, as tracing's `#[instrument]` has them:
//!
//! | option | records |
//! |---|---|
//! | `fields(key = value, ..)` | each `value` at `key`, right after the context opens. Keys: `name`, dotted `response.status` (nests), or `"any key"`; the value is borrowed (not moved) and must be `Serialize`; `key = ?value` records its `Debug`, `key = %value` its `Display` |
//! | `args` | the fn's arguments, each under its name: a `Serialize` argument as a structured value, any other `Debug` one as its `{:?}` string; an argument that is neither does not compile (leave it out with `skip`). Without `args` no argument is recorded. `self` is never recorded (take what you need with `fields(calls = self.calls)`); a destructured parameter (`(a, b): (u8, u8)`) records each name it binds, `_` nothing |
//! | `skip(a, b)` | with `args`: leaves these out (`skip` without `args` does not compile: ziggy records no argument unless asked); `skip(self)` is accepted and changes nothing |
//! | `skip_all` | no argument: the default, spelled out for readers coming from tracing (with `args` it does not compile) |
//! | `err`, `err(Display)`, `err(Debug)` | the `Err` value in `body.error`, via `Display` or `Debug`; the fn must return a `Result` whose error has that trait (a compile error at `err` otherwise) |
//! | `ret`, `ret(Debug)`, `ret(Display)`, `ret(Serialize)` | the returned value under `return` (`Debug` by default, as tracing); for a `Result`, its `Ok` value, and nothing on `Err` (which `body.error` records) |
//!
//! Without `err`, a fn whose return type is spelled `Result<..>` (or `io::Result<..>`, any path
//! ending in `Result`) still records an `Err` in `body.error`: via `Display`, or via `Debug` when
//! the error type has no `Display`.
//!
//! Recording happens only when the context really records: while ziggy is off or the context is
//! sampled out, `fields` values are not evaluated and arguments, errors and returned values are
//! not formatted. For an `async fn` the arguments and fields are recorded when the future is
//! first polled (inside its context), the error and returned value when it completes. Keys must
//! be distinct: a `fields` key that repeats or nests under another recorded key (an argument,
//! another field, `return` with `ret`) is a compile error, as are an empty or NUL-holding key, an
//! unknown or misspelt option (the error lists the valid ones), and a malformed option.
//!
//! ```
//! ziggy::channels! { request }
//!
//! #[derive(serde::Serialize)]
//! struct User { name: String }
//!
//! #[ziggy::context("request", args, skip(password), fields(route = "/login", agent = ?"curl"), err, ret)]
//! fn login(user: &User, password: &str) -> Result<u32, String> {
//!     if password.is_empty() { Err("empty password".into()) } else { Ok(7) }
//! }
//!
//! fn main() {
//!     let events = ziggy::testing::capture(|| {
//!         let ann = User { name: "ann".into() };
//!         login(&ann, "pw").unwrap();
//!         login(&ann, "").unwrap_err();
//!     });
//!     let ok = &events[0].body;
//!     assert_eq!(ok.get_document("user").unwrap().get_str("name").unwrap(), "ann");
//!     assert!(!ok.contains_key("password"));
//!     assert_eq!(ok.get_str("agent").unwrap(), "\"curl\"");
//!     assert_eq!(ok.get_str("return").unwrap(), "7");
//!     assert_eq!(events[1].body.get_str("error").unwrap(), "empty password");
//! }
//! ```
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
//!   `Display`, or its `Debug` when `e` has no `Display` (see the options above).
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
mod clock;
mod context;
mod counters;
mod element;
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

// What the expansions of #[ziggy::context]'s options call, re-exported by `__private`.
mod macro_support;

/// Support for the macros' expansions; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::macro_support::*;
    pub use crate::registry::{DeclaredChannel, InstrumentedFn};
    pub use inventory;

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
}
