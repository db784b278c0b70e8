//! Sampling decisions (docs/PROTOCOL.md §2).
//!
//! With an ancestor as target, the decision is a pure function of (the ancestor's id, this channel):
//! `mix(fnv1a64(id ‖ 0xff ‖ channel)) >> 11` compared with `rate × 2^53`. Every sibling under one
//! request, and every process handling the same request id, therefore agrees. With the context
//! itself as target, each event is kept with probability `rate` from the thread's generator.

/// Keep or drop, deterministically, for the (target id, channel) pair.
pub(crate) fn keep_for(target_id: &str, channel: &str, rate: f64) -> bool {
    below_rate(mix(fnv1a(target_id, channel)), rate)
}

/// Keep or drop at random.
pub(crate) fn keep_random(rate: f64) -> bool {
    below_rate(crate::id::random_u64(), rate)
}

fn below_rate(x: u64, rate: f64) -> bool {
    if rate >= 1.0 {
        return true;
    }
    if rate.is_nan() || rate <= 0.0 {
        return false;
    }
    ((x >> 11) as f64) < rate * (1u64 << 53) as f64
}

fn fnv1a(id: &str, channel: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id
        .bytes()
        .chain(std::iter::once(0xff))
        .chain(channel.bytes())
    {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

// splitmix64's finaliser: FNV alone leaves the high bits poorly mixed for short inputs.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_rate_shaped() {
        assert_eq!(
            keep_for("abc", "request.sql", 0.5),
            keep_for("abc", "request.sql", 0.5)
        );
        assert!(keep_for("abc", "x", 1.0));
        assert!(!keep_for("abc", "x", 0.0));
        let kept = (0..10_000)
            .filter(|i| keep_for(&format!("{i:032x}"), "request.memcache", 0.1))
            .count();
        assert!((900..=1100).contains(&kept), "{kept}");
    }
}
