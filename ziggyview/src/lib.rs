//! # ziggyview
//!
//! Reads ziggy events from files (`DIR/YYYYMMDD/<type>.YYYYMMDD.bson`), stdin or a live `ziggyd`
//! stream; filters by channel; prints readable blocks or JSON lines; groups events by id; and
//! summarises timers. The binary is a thin wrapper over [`cli::main_with`].

#![warn(missing_docs)]

pub mod cli;
pub mod group;
pub mod json;
pub mod live;
pub mod pretty;
pub mod record;
pub mod safe;
pub mod source;
pub mod timers;
pub mod view;
