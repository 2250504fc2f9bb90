//! "Equal jitter" for retry delays: a delay `d` becomes a value uniformly in
//! `d/2..d`, so mirrors dropped together do not retry in lockstep.
//!
//! One xorshift64 generator, used by the sans-IO mirror's resync backoff and
//! by the I/O shell's reconnect backoff. Not cryptographic (nothing depends
//! on it being unpredictable). Saturating: any `Duration`, including
//! `Duration::MAX`, gives a valid delay.

use std::time::Duration;

/// A small PRNG for retry delays.
#[derive(Debug, Clone)]
pub(crate) struct Jitter(u64);

impl Jitter {
    /// Seeded from the wall clock and `salt` (e.g. a mirror id), so two
    /// mirrors started in the same nanosecond still diverge.
    pub(crate) fn from_clock(salt: u64) -> Jitter {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        Jitter((t as u64 ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1)
    }

    /// A uniform value in `0..1`.
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A delay uniformly in `d/2..d` (never overflows).
    pub(crate) fn spread(&mut self, d: Duration) -> Duration {
        let half = d / 2;
        half.saturating_add(half.mul_f64(self.unit()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_stays_in_range_and_saturates() {
        let mut j = Jitter::from_clock(7);
        for _ in 0..1000 {
            let d = Duration::from_millis(100);
            let s = j.spread(d);
            assert!(s >= d / 2 && s <= d, "{s:?}");
        }
        let _ = j.spread(Duration::MAX);
        assert_eq!(j.spread(Duration::ZERO), Duration::ZERO);
    }
}
