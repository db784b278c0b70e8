//! A `log::Log` that turns log records into ziggy events (feature `log`), like the 2012 original's
//! LogHandler.
//!
//! Inside a context `X`, each record becomes a sub-event on channel `X.log` (sharing `X`'s id, and
//! silenced with it when `X` is unsampled); outside any context, a standalone `log` event. Body:
//! `level`, `target`, `message`, `module`, `location` (`file:line`).
//!
//! ```
//! ziggy::log_bridge::ZiggyLogger::new(log::LevelFilter::Info).install().unwrap();
//! let events = ziggy::testing::capture(|| {
//!     let _ctx = ziggy::Context::new("request").enter();
//!     log::info!("cache miss for {}", 42);
//!     log::debug!("below the filter: not recorded");
//! });
//! assert_eq!(events[0].channel, "request.log");
//! assert_eq!(events[0].body.get_str("message").unwrap(), "cache miss for 42");
//! assert_eq!(events[0].id, events[1].id);
//! ```

use log::{LevelFilter, Log, Metadata, Record};

use crate::channel::MAX_CHANNEL_LEN;
use crate::context::Context;
use crate::write::set;

/// Records `log` records at or above `level` as ziggy events.
#[derive(Debug, Clone, Copy)]
pub struct ZiggyLogger {
    level: LevelFilter,
}

impl ZiggyLogger {
    /// A logger keeping records at `level` and above.
    pub fn new(level: LevelFilter) -> Self {
        ZiggyLogger { level }
    }

    /// Installs it as the global logger (and sets `log`'s max level).
    pub fn install(self) -> Result<(), log::SetLoggerError> {
        log::set_max_level(self.level);
        log::set_boxed_logger(Box::new(self))
    }
}

impl Log for ZiggyLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.level && crate::switch::enabled()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let channel = match crate::stack::current_channel() {
            Some(parent) if parent.len() + 4 <= MAX_CHANNEL_LEN => format!("{parent}.log"),
            _ => "log".to_owned(),
        };
        let _ctx = Context::new(channel).enter();
        set("level", record.level().as_str());
        set("target", record.target());
        set("message", record.args().to_string());
        if let Some(module) = record.module_path() {
            set("module", module);
        }
        if let (Some(file), Some(line)) = (record.file(), record.line()) {
            set("location", format!("{file}:{line}"));
        }
    }

    fn flush(&self) {}
}
