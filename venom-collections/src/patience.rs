//! Bounded waiting: spin briefly, then yield, then sleep, until a deadline.
//!
//! Every wait on another process in this crate goes through [`Patience`], so
//! nothing spins or sleeps forever. Under loom it only yields (and never
//! expires), which lets the model checker schedule the thread being waited
//! on.

use std::time::Duration;

use venom_core::Deadline;

/// How long structures wait by default for a peer that is mid-operation
/// before checking its liveness again or giving up.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(2);

/// A bounded backoff. The clock is read lazily: creating a `Patience` on a
/// fast path costs nothing; the deadline starts at the first real wait (after
/// the spin phase), which delays it by at most a few microseconds.
pub(crate) struct Patience {
    step: u32,
    timeout: Duration,
    deadline: Option<Deadline>,
}

impl Patience {
    /// Waits at most about `timeout` in total.
    pub(crate) fn new(timeout: Duration) -> Self {
        Patience { step: 0, timeout, deadline: None }
    }

    fn deadline(&mut self) -> Deadline {
        *self.deadline.get_or_insert_with(|| Deadline::after(self.timeout))
    }

    /// Backs off once. Returns `false` when the deadline has passed.
    pub(crate) fn wait(&mut self) -> bool {
        self.step = self.step.saturating_add(1);
        #[cfg(loom)]
        {
            venom_core::loom::spin_hint();
            true
        }
        #[cfg(not(loom))]
        {
            if self.step <= 64 {
                core::hint::spin_loop();
            } else if self.step <= 80 {
                std::thread::yield_now();
            } else {
                let us = 10u64 << (self.step - 80).min(6);
                std::thread::sleep(Duration::from_micros(us));
            }
            !self.deadline().is_past()
        }
    }

    /// Whether this is a good moment to pay for a liveness check
    /// (`/proc` read): once spinning is over, then every 16th step.
    pub(crate) fn check_liveness(&self) -> bool {
        self.step > 64 && self.step % 16 == 1
    }

    /// The time left before the deadline.
    pub(crate) fn remaining(&mut self) -> Duration {
        self.deadline().remaining()
    }

    /// Whether the deadline has passed (false before the first wait).
    #[inline]
    pub(crate) fn expired(&self) -> bool {
        self.deadline.is_some_and(|d| d.is_past())
    }
}

/// Exponential spin after a lost CAS (as crossbeam's `Backoff::spin`): lets
/// the winner finish with its cache line instead of fighting for it again at
/// once. Under loom one yield per step.
#[derive(Default)]
pub(crate) struct Contention(u32);

impl Contention {
    #[inline]
    pub(crate) fn spin(&mut self) {
        #[cfg(loom)]
        venom_core::loom::spin_hint();
        #[cfg(not(loom))]
        for _ in 0..1u32 << self.0.min(6) {
            core::hint::spin_loop();
        }
        self.0 += 1;
    }
}
