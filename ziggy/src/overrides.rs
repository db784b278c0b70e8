//! Sampling overrides without a rebuild, as `RUST_LOG` is for tracing:
//! `ZIGGY_SAMPLE="request.sql=0.1,request.cache=off"`, read each time the transport starts (when
//! set, it replaces the overrides in force), and [`set_sample_overrides`] at run time.
//!
//! - `channel=off` silences the channel and every channel below it (`request=off` also stops a
//!   `request.sql` context opened on its own).
//! - `channel=RATE` (`0.0..=1.0`) replaces that channel's own sample rate. A context that samples
//!   against an ancestor (`sample = ("request", 0.25)`) keeps its target, so one request still keeps
//!   all or none of its sub-events; one that did not sample is then sampled at random.
//! - A more specific entry wins: with `request=off,request.audit=1`, `request.audit` contexts are
//!   kept, though their `request` parents (when open) are silenced and silence them.
//!
//! While no override is set, opening a context pays one relaxed load for this.

use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::channel::{is_self_or_ancestor, validate_channel_name};

/// The environment variable read by `configure`.
pub(crate) const SAMPLE_ENV_VAR: &str = "ZIGGY_SAMPLE";

/// What an override does to a channel.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum SampleOverride {
    /// No events from this channel or those below it.
    Off,
    /// This sample rate instead of the one in the code.
    Rate(f64),
}

/// A sampling override that could not be understood.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("sampling override {entry:?}: {reason}")]
pub struct SampleSpecError {
    /// The entry at fault, as given.
    pub entry: String,
    /// Why it is refused.
    pub reason: String,
}

static ANY: AtomicBool = AtomicBool::new(false);
static TABLE: RwLock<Vec<(String, SampleOverride)>> = RwLock::new(Vec::new());

/// Replaces every override by those in `spec` (`"a=0.5,b.c=off"`; empty clears them). All or
/// nothing: on an error, the overrides in force stay.
///
/// ```
/// ziggy::set_sample_overrides("request.cache=off").unwrap();
/// let events = ziggy::testing::capture(|| {
///     let _r = ziggy::Context::new("request").enter();
///     let _c = ziggy::Context::new("request.cache").enter();
/// });
/// assert_eq!(events.len(), 1);
/// assert!(ziggy::set_sample_overrides("Request=2").is_err());
/// ziggy::set_sample_overrides("").unwrap();
/// ```
pub fn set_sample_overrides(spec: &str) -> Result<(), SampleSpecError> {
    let (table, errors) = parse(spec);
    if let Some(error) = errors.into_iter().next() {
        return Err(error);
    }
    install(table);
    Ok(())
}

/// The overrides in force, most specific last.
pub fn sample_overrides() -> Vec<(String, SampleOverride)> {
    TABLE.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Reads `ZIGGY_SAMPLE` if set: keeps its good entries and says on stderr which were refused (a
/// typo in the environment must not stop the application's events).
pub(crate) fn load_env() {
    let spec = match std::env::var(SAMPLE_ENV_VAR) {
        Ok(spec) => spec,
        Err(std::env::VarError::NotPresent) => return,
        Err(std::env::VarError::NotUnicode(_)) => {
            eprintln!("ziggy: ignored: {SAMPLE_ENV_VAR} is not valid UTF-8");
            return;
        }
    };
    let (table, errors) = parse(&spec);
    for error in &errors {
        eprintln!("ziggy: ignored in {SAMPLE_ENV_VAR}: {error}");
    }
    install(table);
}

fn install(mut table: Vec<(String, SampleOverride)>) {
    // Ancestors before descendants, so the last match in `lookup` is the most specific.
    table.sort_by_key(|(channel, _)| channel.matches('.').count());
    let mut slot = TABLE.write().unwrap_or_else(|e| e.into_inner());
    ANY.store(!table.is_empty(), Ordering::Release);
    *slot = table;
}

fn parse(spec: &str) -> (Vec<(String, SampleOverride)>, Vec<SampleSpecError>) {
    let mut table: Vec<(String, SampleOverride)> = Vec::new();
    let mut errors = Vec::new();
    for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let refuse = |reason: String| SampleSpecError {
            entry: entry.to_owned(),
            reason,
        };
        let Some((channel, value)) = entry.split_once('=') else {
            errors.push(refuse("expected CHANNEL=RATE or CHANNEL=off".into()));
            continue;
        };
        let (channel, value) = (channel.trim(), value.trim());
        if let Err(e) = validate_channel_name(channel) {
            errors.push(refuse(format!("not a channel name: {e}")));
            continue;
        }
        let rule = match value {
            "off" => SampleOverride::Off,
            _ => match value.parse::<f64>() {
                Ok(rate) if (0.0..=1.0).contains(&rate) => SampleOverride::Rate(rate),
                _ => {
                    errors.push(refuse(format!(
                        "{value:?} is neither `off` nor a rate within 0.0..=1.0"
                    )));
                    continue;
                }
            },
        };
        if table.iter().any(|(c, _)| c == channel) {
            errors.push(refuse(format!("{channel} is given twice")));
            continue;
        }
        table.push((channel.to_owned(), rule));
    }
    (table, errors)
}

/// The override that applies to a new context of `channel`, if any.
#[inline]
pub(crate) fn lookup(channel: &str) -> Option<SampleOverride> {
    if !ANY.load(Ordering::Relaxed) {
        return None;
    }
    lookup_slow(channel)
}

#[inline(never)]
fn lookup_slow(channel: &str) -> Option<SampleOverride> {
    find(&TABLE.read().unwrap_or_else(|e| e.into_inner()), channel)
}

/// The last (most specific) entry of `table` that applies to `channel`.
fn find(table: &[(String, SampleOverride)], channel: &str) -> Option<SampleOverride> {
    table
        .iter()
        .rev()
        .find(|(c, rule)| match rule {
            SampleOverride::Rate(_) => c == channel,
            SampleOverride::Off => is_self_or_ancestor(c, channel),
        })
        .map(|(_, rule)| *rule)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_and_mistakes() {
        let (table, errors) =
            parse(" request.sql=0.1, request.cache=off,,Bad=1,x=2,y,z=nan,request.sql=1");
        assert_eq!(
            table,
            vec![
                ("request.sql".to_owned(), SampleOverride::Rate(0.1)),
                ("request.cache".to_owned(), SampleOverride::Off),
            ]
        );
        let refused: Vec<&str> = errors.iter().map(|e| e.entry.as_str()).collect();
        assert_eq!(refused, ["Bad=1", "x=2", "y", "z=nan", "request.sql=1"]);
        assert!(
            errors[0]
                .to_string()
                .starts_with("sampling override \"Bad=1\": not a channel name")
        );
    }

    #[test]
    fn off_reaches_down_a_rate_does_not_and_the_most_specific_wins() {
        let (mut table, errors) = parse("request=off,request.audit=1,cache=0.5");
        assert!(errors.is_empty());
        table.sort_by_key(|(c, _)| c.matches('.').count());
        let at = |c: &str| find(&table, c);
        assert_eq!(at("request"), Some(SampleOverride::Off));
        assert_eq!(at("request.sql"), Some(SampleOverride::Off));
        assert_eq!(at("request.audit"), Some(SampleOverride::Rate(1.0)));
        assert_eq!(at("requests"), None);
        assert_eq!(at("cache"), Some(SampleOverride::Rate(0.5)));
        assert_eq!(at("cache.get"), None);
    }
}
