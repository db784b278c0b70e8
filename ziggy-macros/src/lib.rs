//! Procedural macros of [ziggy](https://docs.rs/ziggy): `#[ziggy::context]`, `#[ziggy::timeit]` and
//! `ziggy::channels!`. Use them through the `ziggy` crate, which re-exports them.
//!
//! Each entry point parses its input into a typed model (`attr`), checks it (`valid`), then expands it
//! (`expand`, `channels`). Every user mistake becomes a `syn::Error` spanned on the offending token;
//! the user's function is still emitted beside the error, so the IDE keeps working inside it.
//!
//! # How channel names are checked at compile time
//! `channels! { request { sql } }` generates, in the calling crate's root, a module
//! `ziggy_declared_channels` with one constant per declared channel, named by the channel with `.`
//! replaced by `__` (`request`, `request__sql`). `#[ziggy::context("request.sql")]` expands to a use
//! of `crate::ziggy_declared_channels::request__sql` whose tokens carry the span of the string
//! literal. An undeclared channel is then a name-resolution error from rustc itself, reported at the
//! literal, and rustc's "a constant with a similar name exists" hint names the closest declared
//! channel. Names that are not valid identifiers (`type`, `2xx`) get a leading `_`.

mod attr;
mod channels;
use ziggy_proto::channel as channel_rule;
mod expand;
mod mangle;
mod params;
mod self_rename;
mod valid;

use proc_macro::TokenStream;

/// Opens a ziggy context for the duration of the function: one event per call.
///
/// `#[ziggy::context("request")]`, `#[ziggy::context("request.sql", sample = ("request", 0.25))]`,
/// `#[ziggy::context("request", id = req.id.clone())]`, and the recording options
/// `fields(key = value, ..)`, `args`, `skip(a, ..)`, `skip_all`, `err[(Display|Debug)]`,
/// `ret[(Debug|Display|Serialize)]`. See the `ziggy` crate docs.
#[proc_macro_attribute]
pub fn context(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::context(args.into(), item.into()).into()
}

/// Records the function's wall-clock duration, in seconds, into the current context under
/// `<fn name>_time`, or under the key given: `#[ziggy::timeit("query_time")]`.
#[proc_macro_attribute]
pub fn timeit(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::timeit(args.into(), item.into()).into()
}

/// Declares the crate's channel tree once, at the crate root: `ziggy::channels! { request { sql } }`.
#[proc_macro]
pub fn channels(input: TokenStream) -> TokenStream {
    channels::expand(input.into()).into()
}
