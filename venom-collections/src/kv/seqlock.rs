//! Per-entry seqlock (Lamport 1977 "concurrent reading and writing"; the
//! fence-based form of Boehm, "Can seqlocks get along with programming
//! language memory models?", MSPC 2012).
//!
//! One writer at a time (the cache's writer lock) modifies an entry:
//! `version` odd → field and data stores → `version` even. Readers load the
//! version, read everything with relaxed atomics (or
//! `venom_core::atomic_copy::load` for values), then validate that the
//! version did not move. A value block freed by an update may be reused for
//! another entry while a stale reader still copies from it; every write into
//! a data block is preceded by a Release fence ([`before_data_write`]), so a
//! reader that observed such a write also observes, through its Acquire
//! fence, the version bump that retired the block, and retries.

use venom_core::loom::sync::{AtomicU64, Ordering, fence};

/// Starts a modification; returns the (even) version it started from.
#[inline]
pub(crate) fn write_begin(version: &AtomicU64) -> u64 {
    // Relaxed load: only the lock holder writes `version`.
    let v = version.load(Ordering::Relaxed) & !1;
    version.store(v.wrapping_add(1), Ordering::Relaxed);
    // Release fence: the odd store happens-before any later field/data store
    // that a reader may observe (fence-fence synchronisation with the
    // reader's Acquire fence in `read_validate`).
    fence(Ordering::Release);
    v
}

/// Ends a modification started at `v`.
#[inline]
pub(crate) fn write_end(version: &AtomicU64, v: u64) {
    // Release: publishes every field store of the modification to readers
    // whose `read_begin` Acquire load sees the new even version.
    version.store(v.wrapping_add(2), Ordering::Release);
}

/// Call before writing into a data block that a stale reader might still be
/// reading (any freshly allocated block).
#[inline]
pub(crate) fn before_data_write() {
    // Release fence: orders the version bumps that retired this block's
    // previous owner before the new data (see the module docs).
    fence(Ordering::Release);
}

/// Starts a read; `None` while a writer is mid-modification.
#[inline]
pub(crate) fn read_begin(version: &AtomicU64) -> Option<u64> {
    // Acquire: pairs with `write_end`'s Release so the fields we read next
    // are at least as new as this version.
    let v = version.load(Ordering::Acquire);
    (v & 1 == 0).then_some(v)
}

/// Whether everything read since `read_begin` returned `v` is consistent.
#[inline]
pub(crate) fn read_validate(version: &AtomicU64, v: u64) -> bool {
    // Acquire fence: if any relaxed read above saw a store made after a
    // writer's `write_begin` (or `before_data_write`), the fence synchronises
    // with that writer's Release fence and the load below sees the bump.
    fence(Ordering::Acquire);
    version.load(Ordering::Relaxed) == v
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;

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
            if let Some(v) = read_begin(&version) {
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
