//! Dirty-chunk tracking for replication.
//!
//! The data region is divided into fixed chunks (64 KiB by default). Each
//! chunk has a version word: the region version of the last write that
//! touched it. Writers mark chunks *inside* their seqlock write window, so a
//! reader that validates its window sees chunk versions and data from the
//! same write; "which chunks changed since version N" is therefore exact:
//! every chunk whose version is greater than N, and no other.
//!
//! Invariants:
//! * `versions[i] <= region version` at every consistent read;
//! * `versions[i]` only grows (the writer stores the new, larger version).

use crate::loom::sync::{AtomicU64, Ordering};

/// Marks chunks `first..=last` as written at `version`.
///
/// Relaxed: called inside a seqlock write window, whose closing Release
/// store publishes these stores together with the data.
#[inline]
pub(crate) fn mark(versions: &[AtomicU64], first: usize, last: usize, version: u64) {
    for v in &versions[first..=last] {
        v.store(version, Ordering::Relaxed);
    }
}

/// Calls `found(index, version)` for each chunk whose version is above
/// `since`.
///
/// Relaxed: called inside a seqlock read window, validated by the caller.
#[inline]
pub(crate) fn scan(versions: &[AtomicU64], since: u64, mut found: impl FnMut(usize, u64)) {
    for (i, v) in versions.iter().enumerate() {
        let v = v.load(Ordering::Relaxed);
        if v > since {
            found(i, v);
        }
    }
}

/// The chunks covered by `len` bytes at `offset`, as `(first, last)`, or
/// `None` for an empty range. `shift` is log2 of the chunk size.
#[inline]
pub(crate) fn chunk_span(offset: usize, len: usize, shift: u32) -> Option<(usize, usize)> {
    (len > 0).then(|| (offset >> shift, (offset + len - 1) >> shift))
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn miri_span_and_scan() {
        assert_eq!(chunk_span(0, 0, 6), None);
        assert_eq!(chunk_span(0, 64, 6), Some((0, 0)));
        assert_eq!(chunk_span(63, 2, 6), Some((0, 1)));
        let versions: Vec<AtomicU64> = (0..4).map(|_| AtomicU64::new(0)).collect();
        mark(&versions, 1, 2, 6);
        mark(&versions, 3, 3, 8);
        let mut seen = vec![];
        scan(&versions, 6, |i, v| seen.push((i, v)));
        assert_eq!(seen, vec![(3, 8)]);
        seen.clear();
        scan(&versions, 0, |i, v| seen.push((i, v)));
        assert_eq!(seen, vec![(1, 6), (2, 6), (3, 8)]);
    }
}

#[cfg(all(test, loom))]
mod loom_models {
    use super::*;
    use crate::seqlock::{read_begin, read_validate, write_begin, write_end};
    use loom::sync::Arc;

    /// The publisher hand-off: a publisher that repeatedly asks "what changed
    /// since the version I last shipped" and copies those chunks must end up
    /// with the writer's final bytes, never missing a write.
    #[test]
    fn loom_dirty_handoff_never_misses_a_write() {
        loom::model(|| {
            // seq, two chunk versions, two one-word chunks.
            let r = Arc::new((
                AtomicU64::new(0),
                [AtomicU64::new(0), AtomicU64::new(0)],
                [AtomicU64::new(0), AtomicU64::new(0)],
            ));
            let w = r.clone();
            let writer = loom::thread::spawn(move || {
                for (chunk, value) in [(0usize, 10u64), (1, 20)] {
                    let odd = write_begin(&w.0);
                    w.2[chunk].store(value, Ordering::Relaxed);
                    mark(&w.1, chunk, chunk, odd + 1);
                    write_end(&w.0, odd);
                }
            });
            let mut mirror = [0u64; 2];
            let mut shipped = 0u64;
            let publish = |mirror: &mut [u64; 2], shipped: &mut u64| {
                let s1 = read_begin(&r.0);
                let mut copy = [None; 2];
                scan(&r.1, *shipped, |i, _| copy[i] = Some(r.2[i].load(Ordering::Relaxed)));
                if read_validate(&r.0, s1) {
                    for (i, c) in copy.iter().enumerate() {
                        if let Some(v) = c {
                            mirror[i] = *v;
                        }
                    }
                    *shipped = s1;
                }
            };
            publish(&mut mirror, &mut shipped);
            writer.join().unwrap();
            // After the writer is done, one more pass must converge.
            publish(&mut mirror, &mut shipped);
            assert_eq!(mirror, [10, 20]);
            assert_eq!(shipped, 4);
        });
    }
}
