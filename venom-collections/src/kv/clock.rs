//! Timestamps for entries: `CLOCK_MONOTONIC_COARSE` nanoseconds.
//!
//! The monotonic clock is system-wide on Linux, so timestamps written by one
//! process compare correctly with another's, and TTLs do not jump with the
//! wall clock. The coarse variant costs a few nanoseconds (no TSC read) at a
//! resolution of one scheduler tick (1–4 ms), which is what recency statistics
//! and TTLs need.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

/// Monotonic coarse time in nanoseconds (never 0).
pub(crate) fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; clock_gettime only writes it.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    (ts.tv_sec as u64).wrapping_mul(1_000_000_000).wrapping_add(ts.tv_nsec as u64).max(1)
}

/// Converts a monotonic timestamp to wall-clock time. The offset between
/// the clocks is sampled once per process, so conversions are consistent.
pub(crate) fn to_system_time(mono_ns: u64) -> SystemTime {
    static ANCHOR: OnceLock<(SystemTime, u64)> = OnceLock::new();
    let &(wall, mono) = ANCHOR.get_or_init(|| (SystemTime::now(), now_ns()));
    if mono_ns <= mono {
        wall.checked_sub(Duration::from_nanos(mono - mono_ns)).unwrap_or(wall)
    } else {
        wall + Duration::from_nanos(mono_ns - mono)
    }
}
