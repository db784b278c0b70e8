//! # ziggyview
//!
//! Reads ziggy events from files (`DIR/YYYYMMDD/<type>.YYYYMMDD.bson`), stdin or a live `ziggyd`
//! stream; filters by channel; prints readable blocks or JSON lines; groups events by id; and
//! summarises timers.
//!
//! The library is the viewer: a [`Viewer`] fed with files ([`Viewer::read_file`], the files of a
//! range from [`files_for_range`]) or a live daemon ([`Viewer::follow`]); and the web view
//! ([`web::serve`]: search, one request as a waterfall, timers, the live stream in a browser).
//! The binary (`main.rs` and its `cli` module) turns the command line into those calls.

#![warn(missing_docs)]

mod group;
mod json;
mod live;
mod pretty;
mod record;
mod safe;
mod source;
mod timers;
mod view;
pub mod web;

pub use live::LiveError;
pub use record::DecodeError;
pub use safe::escape;
pub use source::{BadDate, ChannelPattern, Listing, ListingError, PatternError, files_for_range};
pub use view::{Corruption, ReadError, ViewError, ViewOptions, Viewer};

/// For the fuzz targets and property tests: the header-only channel scan and its reference.
#[doc(hidden)]
pub mod __fuzz {
    pub use crate::record::{raw_channel, raw_channel_checked};
}
