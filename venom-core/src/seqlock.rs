//! The seqlock protocol, separated from the memory it protects so that the
//! same functions run in production, in every user (the data region
//! [`SeqRegion`](crate::SeqRegion) here, the key-value cache's entries and
//! index in `venom-collections`) and in the loom models.
//!
//! The sequence word is a plain `AtomicU64` (from [`crate::loom::sync`])
//! inside the user's shared-memory layout, so the protocol is a set of
//! functions over `&AtomicU64` rather than a wrapper type: the layout stays a
//! `#[repr(C)]` struct of atomics every process maps alike.
//!
//! Algorithm: H.-J. Boehm, "Can seqlocks get along with programming language
//! memory models?" (MSPC 2012), the fence-based variant (after Lamport 1977,
//! "concurrent reading and writing"). The protected data is accessed with
//! relaxed atomics only (see [`crate::atomic_copy`]), so a racing read is not
//! undefined behaviour, merely discarded.
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
//! Memory reuse: when a writer recycles a data block that a stale reader may
//! still be copying from (the cache's value blocks), it calls
//! [`before_data_write`] before writing into the block. A reader that
//! observes such a store then also observes, through its acquire fence, the
//! sequence bump that retired the block, and retries.
//!
//! There is exactly one writer at a time (enforced by the callers' writer
//! claim or lock), so the writer reads `seq` with Relaxed: nobody else
//! changes it.
//!
//! ```
//! use venom_core::loom::sync::{AtomicU64, Ordering};
//! use venom_core::seqlock;
//! let (seq, data) = (AtomicU64::new(0), AtomicU64::new(0));
//! let odd = seqlock::write_begin(&seq);
//! data.store(42, Ordering::Relaxed);
//! seqlock::write_end(&seq, odd);
//! let s = seqlock::read_begin(&seq);
//! let v = data.load(Ordering::Relaxed);
//! assert!(seqlock::read_validate(&seq, s));
//! assert_eq!(v, 42);
//! ```

use crate::loom::sync::{AtomicU64, Ordering, fence};

/// Starts a write. Returns the odd sequence value now stored.
#[inline]
pub fn write_begin(seq: &AtomicU64) -> u64 {
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
pub fn write_end(seq: &AtomicU64, odd: u64) {
    // Release: the data stores happen-before any reader's Acquire load that
    // sees the even value.
    seq.store(odd.wrapping_add(1), Ordering::Release);
}

/// Starts a read: the current sequence value (odd means a write is in
/// progress and the read will fail validation).
#[inline]
pub fn read_begin(seq: &AtomicU64) -> u64 {
    // Acquire: pairs with the Release in `write_end`.
    seq.load(Ordering::Acquire)
}

/// Starts a read unless a write is in progress: `Some(s)` with the (even)
/// sequence value, `None` while the writer is mid-write (the caller retries
/// or reports "busy" without reading data it would discard).
#[inline]
pub fn try_read_begin(seq: &AtomicU64) -> Option<u64> {
    let s = read_begin(seq);
    (s & 1 == 0).then_some(s)
}

/// Call before writing into a data block that a stale reader might still be
/// reading (a freshly allocated, recycled block), outside or before a
/// [`write_begin`]/[`write_end`] pair.
#[inline]
pub fn before_data_write() {
    // Release fence: orders the sequence bumps that retired this block's
    // previous owner before the new data stores (see the module docs).
    fence(Ordering::Release);
}

/// Ends a read: true if the data loaded since [`read_begin`] returned `s1`
/// is a consistent snapshot of the write that produced `s1`.
#[inline]
pub fn read_validate(seq: &AtomicU64, s1: u64) -> bool {
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
        assert_eq!(try_read_begin(&seq), Some(2));
        // A value left odd by a crash is skipped past, never reused.
        seq.store(5, Ordering::Relaxed);
        assert_eq!(try_read_begin(&seq), None);
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

    /// One entry pointing at one of two 2-word blocks. Writer 1 moves the
    /// entry from block 0 to block 1 (new block written first, then
    /// published) and releases the writer lock; writer 2 takes the lock and
    /// reuses the freed block 0 for another entry. A reader that validates
    /// must see a matching pair from the block it was pointed at.
    #[test]
    fn loom_value_handoff_and_block_reuse() {
        loom::model(|| {
            let version = Arc::new(AtomicU64::new(0));
            let ptr = Arc::new(AtomicU64::new(0));
            let lock = Arc::new(AtomicU64::new(0));
            let blocks: Arc<[AtomicU64; 4]> =
                Arc::new([AtomicU64::new(1), AtomicU64::new(1), AtomicU64::new(0), AtomicU64::new(0)]);
            let w1 = {
                let (version, ptr, blocks, lock) = (version.clone(), ptr.clone(), blocks.clone(), lock.clone());
                loom::thread::spawn(move || {
                    before_data_write();
                    blocks[2].store(2, Ordering::Relaxed);
                    blocks[3].store(2, Ordering::Relaxed);
                    let v = write_begin(&version);
                    ptr.store(1, Ordering::Relaxed);
                    write_end(&version, v);
                    // Unlock: Release, as the real lock word.
                    lock.store(1, Ordering::Release);
                })
            };
            let w2 = {
                let (blocks, lock) = (blocks.clone(), lock.clone());
                loom::thread::spawn(move || {
                    // Lock: Acquire, as the real CAS.
                    while lock.load(Ordering::Acquire) == 0 {
                        loom::thread::yield_now();
                    }
                    before_data_write();
                    blocks[0].store(3, Ordering::Relaxed);
                    blocks[1].store(3, Ordering::Relaxed);
                })
            };
            if let Some(v) = try_read_begin(&version) {
                let p = ptr.load(Ordering::Relaxed) as usize;
                let a = blocks[2 * p].load(Ordering::Relaxed);
                let b = blocks[2 * p + 1].load(Ordering::Relaxed);
                if read_validate(&version, v) {
                    assert_eq!(a, b, "torn value");
                    assert_eq!(a, p as u64 + 1, "value from a reused block");
                }
            }
            w1.join().unwrap();
            w2.join().unwrap();
        });
    }
}
