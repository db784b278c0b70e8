//! Event ids: 32 lowercase hex chars, 4 bytes of big-endian Unix seconds then 12 random bytes, so ids
//! sort by creation time and collide only by chance (96 random bits per second).

use std::cell::RefCell;
use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

thread_local! {
    // A fast per-thread generator: ids need uniqueness, not unpredictability, and a lock-free source.
    static RNG: RefCell<SmallRng> = RefCell::new(SmallRng::from_rng(&mut rand::rng()));
}

/// Replaces this thread's generator with one seeded by `seed` (ids and self-targeted sampling then
/// repeat from run to run). Used by [`crate::testing::seed_rng`].
pub(crate) fn seed_thread_rng(seed: u64) {
    RNG.with(|r| *r.borrow_mut() = SmallRng::seed_from_u64(seed));
}

/// A uniformly distributed `u64` from this thread's generator.
pub(crate) fn random_u64() -> u64 {
    RNG.with(|r| r.borrow_mut().next_u64())
}

/// A new event id for the time `unix_secs`.
///
/// ```
/// let id = ziggy::new_id();
/// assert_eq!(id.len(), 32);
/// assert!(id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
/// ```
pub fn new_id() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    id_at(secs as u32, random_u64(), random_u64() as u32)
}

/// A new event id for a context opened at `unix_micros` (saves a second clock read).
pub(crate) fn new_id_at(unix_micros: u64) -> EventId {
    let secs = (unix_micros / 1_000_000) as u32;
    EventId::Generated(hex_at(secs, random_u64(), random_u64() as u32))
}

/// An open context's id: a generated one kept inline (no allocation for the context nor for each
/// sub-context that shares it), a given one shared.
#[derive(Debug, Clone)]
pub(crate) enum EventId {
    /// 32 hex digits.
    Generated([u8; 32]),
    Given(Arc<str>),
}

impl EventId {
    /// The id's UTF-8 bytes, without re-validating a generated id (the encoder's view).
    #[inline]
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            EventId::Generated(hex) => hex,
            EventId::Given(id) => id.as_bytes(),
        }
    }

    /// The id as text (sampling and `current_id`, off the per-event path).
    pub(crate) fn as_str(&self) -> &str {
        match self {
            // Hex digits are ASCII, so valid UTF-8; the check is a few word compares.
            EventId::Generated(hex) => std::str::from_utf8(hex).unwrap_or_default(),
            EventId::Given(id) => id,
        }
    }
}

impl From<String> for EventId {
    fn from(id: String) -> Self {
        EventId::Given(id.into())
    }
}

fn id_at(secs: u32, hi: u64, lo: u32) -> String {
    let hex = hex_at(secs, hi, lo);
    // Hex digits are ASCII: the check cannot fail.
    std::str::from_utf8(&hex).unwrap_or_default().to_owned()
}

fn hex_at(secs: u32, hi: u64, lo: u32) -> [u8; 32] {
    let mut bytes = [0u8; 16];
    bytes[..4].copy_from_slice(&secs.to_be_bytes());
    bytes[4..12].copy_from_slice(&hi.to_be_bytes());
    bytes[12..].copy_from_slice(&lo.to_be_bytes());
    let mut hex = [0u8; 32];
    // A byte's two digits at once: half the lookups of a digit table.
    for (pair, b) in hex.chunks_exact_mut(2).zip(bytes) {
        pair.copy_from_slice(&BYTE_HEX[b as usize]);
    }
    hex
}

/// Each byte's two lowercase hex digits.
static BYTE_HEX: [[u8; 2]; 256] = {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut table = [[0; 2]; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = [DIGITS[b >> 4], DIGITS[b & 15]];
        b += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_big_endian_seconds_then_random() {
        let id = id_at(0x0102_0304, 0xaabb_ccdd_eeff_0011, 0x2233_4455);
        assert_eq!(id, "01020304aabbccddeeff001122334455");
    }

    #[test]
    fn ids_sort_by_time_and_differ() {
        let a = id_at(100, 0xffff_ffff_ffff_ffff, 0);
        let b = id_at(101, 0, 0);
        assert!(a < b);
        assert_ne!(new_id(), new_id());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as u32;
        let secs = u32::from_str_radix(&new_id()[..8], 16).unwrap();
        assert!(secs.abs_diff(now) <= 1);
    }
}
