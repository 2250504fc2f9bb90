//! The seqlock protocol, separated from the memory it protects so that the
//! same functions run in production and in the loom models.
//!
//! Algorithm: H.-J. Boehm, "Can seqlocks get along with programming language
//! memory models?" (MSPC 2012), the fence-based variant. The protected data
//! is accessed with relaxed atomics only (see [`crate::atomic_copy`]), so a
//! racing read is not undefined behaviour, merely discarded.
//!
//! * Writer: `seq := s+1` (odd, Relaxed) → `fence(Release)` → data stores →
//!   `seq := s+2` (Release).
//! * Reader: `s1 := seq` (Acquire) → data loads → `fence(Acquire)` →
//!   `s2 := seq` (Relaxed) → accept iff `s1 == s2` and `s1` is even.
//!
//! Why it is correct: if any data load of the reader observes a store made
//! after the writer's release fence, that fence synchronises with the
//! reader's acquire fence, so the odd `seq` store happens-before the `s2`
//! load and `s2 != s1`. If no data load observed a newer store, the data is
//! exactly what the write ending at `s1` left. The Acquire on `s1` makes the
//! data of the write that produced `s1` visible.
//!
//! There is exactly one writer at a time (enforced by the callers' writer
//! claim), so the writer reads `seq` with Relaxed: nobody else changes it.

use crate::loom::sync::{AtomicU64, Ordering, fence};

/// Starts a write. Returns the odd sequence value now stored.
#[inline]
pub(crate) fn write_begin(seq: &AtomicU64) -> u64 {
    // Relaxed: only the single writer stores to `seq`.
    let s = seq.load(Ordering::Relaxed);
    // A crashed predecessor may have left `s` odd; recovery (take-over)
    // makes it even before a new writer starts, so here it is even.
    let odd = (s | 1).wrapping_add(if s & 1 == 1 { 2 } else { 0 });
    seq.store(odd, Ordering::Relaxed);
    // Release fence: orders the odd store before every following data store
    // as seen by any reader that observes one of those data stores.
    fence(Ordering::Release);
    odd
}

/// Ends the write started by [`write_begin`], publishing the data.
#[inline]
pub(crate) fn write_end(seq: &AtomicU64, odd: u64) {
    // Release: the data stores happen-before any reader's Acquire load that
    // sees the even value.
    seq.store(odd.wrapping_add(1), Ordering::Release);
}

/// Starts a read: the current sequence value (odd means a write is in
/// progress and the read will fail validation).
#[inline]
pub(crate) fn read_begin(seq: &AtomicU64) -> u64 {
    // Acquire: pairs with the Release in `write_end`.
    seq.load(Ordering::Acquire)
}

/// Ends a read: true if the data loaded since [`read_begin`] returned `s1`
/// is a consistent snapshot of the write that produced `s1`.
#[inline]
pub(crate) fn read_validate(seq: &AtomicU64, s1: u64) -> bool {
    // Acquire fence: pairs with the writer's Release fence (see module docs).
    fence(Ordering::Acquire);
    // Relaxed is enough after the fence.
    s1 & 1 == 0 && seq.load(Ordering::Relaxed) == s1
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn miri_sequence_moves_by_two_and_recovers_odd() {
        let seq = AtomicU64::new(0);
        let s = write_begin(&seq);
        assert_eq!(s, 1);
        assert!(!read_validate(&seq, read_begin(&seq)));
        write_end(&seq, s);
        assert_eq!(read_begin(&seq), 2);
        assert!(read_validate(&seq, 2));
        // A value left odd by a crash is skipped past, never reused.
        seq.store(5, Ordering::Relaxed);
        assert_eq!(write_begin(&seq), 7);
    }

    /// The production combination (seqlock + byte-wise atomic copies) with a
    /// real concurrent writer: Miri's data-race detector checks it is free of
    /// undefined behaviour, and the assertion checks no torn value escapes.
    #[test]
    fn miri_seqlock_with_atomic_copy_has_no_data_race() {
        use crate::atomic_copy;
        let seq = AtomicU64::new(0);
        let mut backing = vec![0u64; 4];
        let data = backing.as_mut_ptr() as usize;
        let rounds = if cfg!(miri) { 20 } else { 2000 };
        std::thread::scope(|s| {
            let seq = &seq;
            s.spawn(move || {
                for v in 1..=rounds as u8 {
                    let odd = write_begin(seq);
                    // SAFETY: `backing` outlives the scope; 32 bytes.
                    unsafe { atomic_copy::store(data as *mut u8, &[v; 32]) };
                    write_end(seq, odd);
                }
            });
            let mut accepted = 0;
            while accepted < 5 {
                let s1 = read_begin(seq);
                let mut buf = [0u8; 32];
                // SAFETY: as above.
                unsafe { atomic_copy::load(data as *const u8, &mut buf) };
                if read_validate(seq, s1) {
                    assert!(buf.iter().all(|&b| b == buf[0]), "torn: {buf:?}");
                    assert_eq!(u64::from(buf[0]), s1 / 2);
                    accepted += 1;
                }
                std::thread::yield_now();
            }
        });
        drop(backing);
    }
}

#[cfg(all(test, loom))]
mod loom_models {
    use super::*;
    use loom::sync::Arc;

    /// Two data words written together must never be observed torn.
    #[test]
    fn loom_seqlock_never_torn() {
        loom::model(|| {
            let shared = Arc::new((AtomicU64::new(0), [AtomicU64::new(0), AtomicU64::new(0)]));
            let w = shared.clone();
            let writer = loom::thread::spawn(move || {
                for v in 1..=2u64 {
                    let odd = write_begin(&w.0);
                    w.1[0].store(v, Ordering::Relaxed);
                    w.1[1].store(v, Ordering::Relaxed);
                    write_end(&w.0, odd);
                }
            });
            for _ in 0..2 {
                let s1 = read_begin(&shared.0);
                let a = shared.1[0].load(Ordering::Relaxed);
                let b = shared.1[1].load(Ordering::Relaxed);
                if read_validate(&shared.0, s1) {
                    assert_eq!(a, b, "torn read accepted");
                    assert_eq!(a, s1 / 2, "data does not match its version");
                }
            }
            writer.join().unwrap();
        });
    }
}
