//! A process-shared event count for the queue's blocking calls, with the
//! notifier's fast path (nobody waiting) inlined into every push and pop.
//!
//! Same protocol as `venom_core::futex::EventCount` (Dekker-style, SeqCst):
//! a waiter registers in `waiters`, reads `seq`, re-checks its condition and
//! only then sleeps on `seq`; a notifier makes the condition true with a
//! SeqCst RMW (the queue's head/tail CAS), then loads `waiters` and, only if
//! non-zero, bumps `seq` and wakes. In the single SeqCst order either the
//! notifier sees the registration or the waiter's re-check sees the
//! condition, so no wake-up is lost. Every sleep is also capped at 100 ms.

use core::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Two `u32`s in one 8-byte word of shared memory (zero = idle).
#[repr(C)]
pub(crate) struct Doorbell {
    seq: AtomicU32,
    waiters: AtomicU32,
}

impl Doorbell {
    /// Wakes all waiters if there are any. Call after a SeqCst RMW that made
    /// the waiters' condition true.
    #[inline]
    pub(crate) fn ring(&self) {
        // SeqCst: the load half of the handshake described above.
        if self.waiters.load(Ordering::SeqCst) != 0 {
            self.ring_slow();
        }
    }

    #[cold]
    fn ring_slow(&self) {
        // SeqCst: ordered with the waiters' loads of `seq`.
        self.seq.fetch_add(1, Ordering::SeqCst);
        venom_core::futex::wake(&self.seq, u32::MAX);
    }

    /// Sleeps until `ready()` returns `Some` or `timeout` passes (`None`).
    pub(crate) fn wait_until<T>(&self, timeout: Duration, mut ready: impl FnMut() -> Option<T>) -> Option<T> {
        let deadline = venom_core::Deadline::after(timeout);
        loop {
            // SeqCst: the registration half of the handshake.
            self.waiters.fetch_add(1, Ordering::SeqCst);
            let seen = self.seq.load(Ordering::SeqCst);
            let result = ready();
            if result.is_none() {
                let left = deadline.remaining();
                if !left.is_zero() {
                    // A waiter killed here leaves `waiters` one too high; that
                    // only costs notifiers a wasted wake-up call.
                    venom_core::futex::wait(&self.seq, seen, left.min(Duration::from_millis(100)));
                }
            }
            self.waiters.fetch_sub(1, Ordering::SeqCst);
            if result.is_some() {
                return result;
            }
            if deadline.is_past() {
                return ready();
            }
        }
    }
}
