//! Process-shared futex wait/wake and an event count built on it.
//!
//! The futex calls deliberately omit `FUTEX_PRIVATE_FLAG`: shared futexes are
//! keyed by (inode, offset), so a waiter and a waker in different processes
//! that map the same segment at different addresses still meet.

use core::sync::atomic::{AtomicU32, Ordering, fence};
use std::time::{Duration, Instant};

/// Blocks while `*word == expected`, for at most `timeout`. Returns early on
/// a wake-up, a spurious wake-up, a signal, or if the value already differs.
/// Callers re-check their condition in a loop.
pub fn wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `word` is a valid, aligned u32 for the duration of the call; the
    // kernel only reads it. FUTEX_WAIT with a relative timeout never writes
    // user memory. Errors (EAGAIN, EINTR, ETIMEDOUT) are all "re-check".
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
            core::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// Wakes up to `n` waiters blocked on `word` in any process.
pub fn wake(word: &AtomicU32, n: u32) {
    // SAFETY: FUTEX_WAKE only uses the address as a key; it does not access
    // the memory beyond validating the mapping.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, n.min(i32::MAX as u32), 0usize, 0usize, 0u32);
    }
}

/// An event count in shared memory: waiters sleep until the count moves.
///
/// Protocol (Dekker-style, with SeqCst fences on both sides):
/// * waiter: `waiters += 1` → `fence(SeqCst)` → load `seq` → re-check its
///   condition → futex wait on `seq` (returns at once if `seq` moved) →
///   `waiters -= 1`;
/// * notifier: make the condition true → `fence(SeqCst)` → load `waiters` →
///   if non-zero, `seq += 1` and wake.
///
/// The two fences are ordered in the single SeqCst order: if the notifier's
/// comes first, the waiter's re-check sees the condition; if the waiter's
/// comes first, the notifier sees it registered and bumps `seq`, so the
/// futex wait cannot sleep on a stale value. A wake-up is never lost, and a
/// notifier with nobody waiting pays one fence and one load, no RMW on the
/// shared line and no syscall. `repr(C)`, 8 bytes, valid when zeroed.
#[repr(C)]
#[derive(Default)]
pub struct EventCount {
    seq: AtomicU32,
    waiters: AtomicU32,
}

impl EventCount {
    /// A zeroed event count.
    pub const fn new() -> Self {
        EventCount { seq: AtomicU32::new(0), waiters: AtomicU32::new(0) }
    }

    /// Signals all current waiters.
    pub fn notify_all(&self) {
        self.notify(u32::MAX);
    }

    /// Signals one waiter.
    pub fn notify_one(&self) {
        self.notify(1);
    }

    fn notify(&self, n: u32) {
        // SeqCst fence: orders the caller's condition store before the
        // `waiters` load (see the type docs).
        fence(Ordering::SeqCst);
        // Relaxed: ordered by the fence.
        if self.waiters.load(Ordering::Relaxed) != 0 {
            // Moves the futex word so a waiter that loaded the old value does
            // not sleep; SeqCst keeps it simple to reason about (slow path).
            self.seq.fetch_add(1, Ordering::SeqCst);
            wake(&self.seq, n);
        }
    }

    /// Whether anybody is currently registered as waiting.
    pub fn has_waiters(&self) -> bool {
        self.waiters.load(Ordering::SeqCst) != 0
    }

    /// Sleeps until `ready()` returns `Some`, re-checking after every wake-up,
    /// or until `timeout` elapses (then `None`). `ready` must be cheap and
    /// side-effect free when it returns `None`.
    pub fn wait_until<T>(&self, timeout: Duration, mut ready: impl FnMut() -> Option<T>) -> Option<T> {
        if let Some(v) = ready() {
            return Some(v);
        }
        let deadline = Instant::now() + timeout;
        loop {
            self.waiters.fetch_add(1, Ordering::SeqCst);
            // Pairs with the notifier's fence (see the type docs).
            fence(Ordering::SeqCst);
            let seen = self.seq.load(Ordering::SeqCst);
            let result = ready();
            if result.is_none() {
                let now = Instant::now();
                if now < deadline {
                    // A crashed waiter leaves `waiters` one too high; that
                    // only costs notifiers a wasted wake syscall.
                    wait(&self.seq, seen, (deadline - now).min(Duration::from_millis(100)));
                }
            }
            self.waiters.fetch_sub(1, Ordering::SeqCst);
            if result.is_some() {
                return result;
            }
            if Instant::now() >= deadline {
                return ready();
            }
            if let Some(v) = ready() {
                return Some(v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    #[test]
    fn times_out_without_notify() {
        let ec = EventCount::new();
        let t = Instant::now();
        assert_eq!(ec.wait_until(Duration::from_millis(30), || None::<()>), None);
        assert!(t.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn wakes_on_notify() {
        let ec = Arc::new(EventCount::new());
        let flag = Arc::new(AtomicBool::new(false));
        let (ec2, flag2) = (ec.clone(), flag.clone());
        let h = std::thread::spawn(move || {
            ec2.wait_until(Duration::from_secs(10), || flag2.load(Ordering::SeqCst).then_some(()))
        });
        std::thread::sleep(Duration::from_millis(20));
        flag.store(true, Ordering::SeqCst);
        ec.notify_all();
        assert_eq!(h.join().unwrap(), Some(()));
    }
}
