//! How a consumer or a client waits for a message: spin, park on a
//! process-shared futex, or spin briefly and then park.

use std::time::{Duration, Instant};

use crate::deadline::Deadline;
use crate::error::{Error, Result};
use crate::futex::EventCount;

/// How long [`WaitStrategy::SpinThenPark`] spins before parking.
pub const SPIN_BUDGET: Duration = Duration::from_micros(50);
/// While waiting, peer liveness (daemon or consumer) is checked at least this
/// often; it reads `/proc`, so not on every spin.
pub const LIVENESS_INTERVAL: Duration = Duration::from_millis(20);
/// How long the spin phase spins without yielding the CPU.
const PURE_SPIN: Duration = Duration::from_micros(20);
/// Longest single futex sleep; bounds how late a stop request or a dead peer
/// is noticed if a wake-up is lost (e.g. the waker died mid-notify).
const PARK_SLICE: Duration = Duration::from_millis(50);

/// How to wait for a message or a reply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WaitStrategy {
    /// Busy-poll with a spin hint. Lowest latency; burns a core while idle.
    Spin,
    /// Spin for [`SPIN_BUDGET`], then sleep on the process-shared futex.
    /// Near-spin latency under load, ~0% CPU when idle.
    #[default]
    SpinThenPark,
    /// Sleep on the futex immediately. Every message costs a futex wake-up
    /// (a few µs) but the waiter never spins.
    Park,
}

impl WaitStrategy {
    pub(crate) fn to_raw(self) -> u64 {
        match self {
            WaitStrategy::Spin => 0,
            WaitStrategy::SpinThenPark => 1,
            WaitStrategy::Park => 2,
        }
    }

    pub(crate) fn from_raw(v: u64) -> Option<Self> {
        match v {
            0 => Some(WaitStrategy::Spin),
            1 => Some(WaitStrategy::SpinThenPark),
            2 => Some(WaitStrategy::Park),
            _ => None,
        }
    }
}

/// Waits until `poll` yields a value, an error, or `timeout` passes
/// (`Error::Timeout`). `check` runs every [`LIVENESS_INTERVAL`] (peer
/// liveness, stop flags) and aborts the wait with its error. `poll` must be
/// cheap when it returns `Ok(None)`; notifiers bump `ec` after making `poll`
/// succeed.
pub(crate) fn wait_for<T>(
    strategy: WaitStrategy,
    ec: &EventCount,
    timeout: Duration,
    mut poll: impl FnMut() -> Result<Option<T>>,
    mut check: impl FnMut() -> Result<()>,
) -> Result<T> {
    if let Some(v) = poll()? {
        return Ok(v);
    }
    // A first spin round before reading the clock: a cross-core reply often
    // lands within it, and then the wait costs no clock read at all.
    if strategy != WaitStrategy::Park {
        for _ in 0..64 {
            if let Some(v) = poll()? {
                return Ok(v);
            }
            crate::loom::spin_hint();
        }
    }
    let start = Instant::now();
    let deadline = Deadline::after_from(start, timeout);
    let mut next_check = start + LIVENESS_INTERVAL;
    let spin_until = match strategy {
        WaitStrategy::Spin => deadline,
        WaitStrategy::SpinThenPark => Deadline::after_from(start, SPIN_BUDGET.min(timeout)),
        WaitStrategy::Park => Deadline::after_from(start, Duration::ZERO),
    };
    // Spin phase (skipped by Park): read the clock every 64 polls (a vDSO
    // call, ~20 ns).
    if strategy != WaitStrategy::Park {
        loop {
            for _ in 0..64 {
                if let Some(v) = poll()? {
                    return Ok(v);
                }
                crate::loom::spin_hint();
            }
            let now = Instant::now();
            if now >= next_check {
                check()?;
                next_check = now + LIVENESS_INTERVAL;
            }
            if spin_until.is_past_at(now) {
                break;
            }
            if now - start >= PURE_SPIN {
                // The peer may be waiting for *our* core (more runnable threads
                // than cores): let it run. A cross-core reply arrives well
                // before this point.
                std::thread::yield_now();
            }
        }
    }
    // Park phase.
    loop {
        let now = Instant::now();
        if deadline.is_past_at(now) {
            check()?;
            return match poll()? {
                Some(v) => Ok(v),
                None => Err(Error::Timeout(timeout)),
            };
        }
        let slice = deadline.remaining_at(now).min(PARK_SLICE).min(LIVENESS_INTERVAL);
        // The closure turns errors into `Some(Err)` so they end the sleep too.
        if let Some(r) = ec.wait_until(slice, || poll().transpose()) {
            return r;
        }
        check()?;
    }
}
