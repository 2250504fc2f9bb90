//! Dirty tracking for replication, in two levels.
//!
//! The data region is divided into fixed chunks (64 KiB by default). Each
//! chunk has a version word: the region version of the last write that
//! touched it. Chunks larger than a page ([`PAGE_SIZE`](crate::seq_region::PAGE_SIZE),
//! 4 KiB) also have one version word per page, so a 64-byte write in a
//! 64 KiB chunk makes one page dirty, not the whole chunk. Writers mark
//! pages and chunks *inside* their seqlock write window, so a reader that
//! validates its window sees versions and data from the same write; "what
//! changed since version N" is therefore exact: every page whose version is
//! greater than N, and no other.
//!
//! Invariants:
//! * `versions[i] <= region version` at every consistent read;
//! * versions only grow (the writer stores the new, larger version);
//! * a chunk's version is the largest of its pages' versions (both are
//!   stored with the same version in the same window), so a reader only
//!   looks at the pages of chunks above N: the cost of a scan follows the
//!   dirty chunks, not the region size.

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

/// The two levels of one region. Without a second level (`pages` empty),
/// `page_shift == chunk_shift` and every "page" below is a chunk.
#[derive(Clone, Copy)]
pub(crate) struct Levels<'a> {
    /// One version per chunk.
    pub(crate) chunks: &'a [AtomicU64],
    /// One version per page, or empty.
    pub(crate) pages: &'a [AtomicU64],
    /// log2 of the chunk size.
    pub(crate) chunk_shift: u32,
    /// log2 of the page size (`<= chunk_shift`).
    pub(crate) page_shift: u32,
}

impl Levels<'_> {
    /// Marks the pages and chunks covered by `len` bytes at `offset` as
    /// written at `version` (inside a write window; see [`mark`]).
    #[inline]
    pub(crate) fn mark_range(&self, offset: usize, len: usize, version: u64) {
        if !self.pages.is_empty()
            && let Some((first, last)) = chunk_span(offset, len, self.page_shift)
        {
            mark(self.pages, first, last, version);
        }
        if let Some((first, last)) = chunk_span(offset, len, self.chunk_shift) {
            mark(self.chunks, first, last, version);
        }
    }

    /// Calls `found(chunk, first_page, end_page, version)` for every maximal
    /// run `first_page..end_page` of pages above `since` inside one chunk
    /// (pages in units of `1 << page_shift`; `version` is the run's largest).
    /// Only the pages of chunks above `since` are looked at.
    ///
    /// Relaxed: called inside a seqlock read window, validated by the caller.
    pub(crate) fn scan_pages(&self, since: u64, mut found: impl FnMut(usize, usize, usize, u64)) {
        let per_chunk = 1usize << (self.chunk_shift - self.page_shift);
        scan(self.chunks, since, |chunk, cv| {
            if self.pages.is_empty() {
                return found(chunk, chunk, chunk + 1, cv);
            }
            let first = chunk * per_chunk;
            let end = (first + per_chunk).min(self.pages.len());
            let mut run: Option<(usize, u64)> = None; // (first page, max version)
            for p in first..end {
                let v = self.pages[p].load(Ordering::Relaxed);
                match (&mut run, v > since) {
                    (Some((_, m)), true) => *m = (*m).max(v),
                    (None, true) => run = Some((p, v)),
                    (Some((s, m)), false) => {
                        found(chunk, *s, p, *m);
                        run = None;
                    }
                    (None, false) => {}
                }
            }
            if let Some((s, m)) = run {
                found(chunk, s, end, m);
            }
        });
    }
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

    #[test]
    fn miri_pages_inside_dirty_chunks() {
        // 3 chunks of 4 pages (the last chunk has 2 pages), page = 1 << 4.
        let chunks: Vec<AtomicU64> = (0..3).map(|_| AtomicU64::new(0)).collect();
        let pages: Vec<AtomicU64> = (0..10).map(|_| AtomicU64::new(0)).collect();
        let l = Levels { chunks: &chunks, pages: &pages, chunk_shift: 6, page_shift: 4 };
        l.mark_range(20, 30, 2); // pages 1..=3 of chunk 0
        l.mark_range(64 + 48, 1, 4); // page 7 (chunk 1)
        l.mark_range(64 + 16, 1, 6); // page 5 (chunk 1)
        l.mark_range(150, 10, 8); // page 9 (chunk 2)
        let runs = |since| {
            let mut seen = vec![];
            l.scan_pages(since, |c, a, b, v| seen.push((c, a, b, v)));
            seen
        };
        assert_eq!(runs(0), vec![(0, 1, 4, 2), (1, 5, 6, 6), (1, 7, 8, 4), (2, 9, 10, 8)]);
        assert_eq!(runs(4), vec![(1, 5, 6, 6), (2, 9, 10, 8)]);
        assert_eq!(runs(8), vec![]);
        // Without a second level, every chunk is its own page.
        let l = Levels { chunks: &chunks, pages: &[], chunk_shift: 6, page_shift: 6 };
        let mut seen = vec![];
        l.scan_pages(4, |c, a, b, v| seen.push((c, a, b, v)));
        assert_eq!(seen, vec![(1, 1, 2, 6), (2, 2, 3, 8)]);
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
        // seq, two chunk versions, two one-word chunks.
        type Chunks = (AtomicU64, [AtomicU64; 2], [AtomicU64; 2]);
        loom::model(|| {
            handoff::<Chunks>(
                |r| &r.0,
                |r, chunk, value, version| {
                    r.2[chunk].store(value, Ordering::Relaxed);
                    mark(&r.1, chunk, chunk, version);
                },
                |r, since, copy| scan(&r.1, since, |i, _| copy[i] = Some(r.2[i].load(Ordering::Relaxed))),
            );
        });
    }

    /// The same hand-off with two levels: one chunk of two one-word pages.
    /// The publisher only looks at pages of a chunk whose version moved,
    /// and must still never miss a page written in between.
    #[test]
    fn loom_two_level_handoff_never_misses_a_page() {
        // seq, one chunk version, two page versions, two one-word pages.
        type Pages = (AtomicU64, [AtomicU64; 1], [AtomicU64; 2], [AtomicU64; 2]);
        fn levels(r: &Pages) -> Levels<'_> {
            Levels { chunks: &r.1, pages: &r.2, chunk_shift: 1, page_shift: 0 }
        }
        loom::model(|| {
            handoff::<Pages>(
                |r| &r.0,
                |r, page, value, version| {
                    r.3[page].store(value, Ordering::Relaxed);
                    levels(r).mark_range(page, 1, version);
                },
                |r, since, copy| {
                    levels(r).scan_pages(since, |_, a, b, _| {
                        for p in a..b {
                            copy[p] = Some(r.3[p].load(Ordering::Relaxed));
                        }
                    })
                },
            );
        });
    }

    /// Drives one hand-off over a zeroed shared state `r`: a writer thread stores
    /// 10 into word 0 then 20 into word 1, each in its own seqlock write on
    /// `seq(r)` that `write(r, word, value, version)` marks dirty; the
    /// publisher, before and after the writer ends, copies the words
    /// `dirty(r, since, copy)` reports changed since the version it last
    /// shipped, keeping a copy only if the seqlock validates. After the
    /// writer is done, one more pass must converge to `[10, 20]` at version 4.
    fn handoff<S: Default + Send + Sync + 'static>(
        seq: fn(&S) -> &AtomicU64,
        write: fn(&S, usize, u64, u64),
        dirty: fn(&S, u64, &mut [Option<u64>; 2]),
    ) {
        let r = Arc::new(S::default());
        let w = r.clone();
        let writer = loom::thread::spawn(move || {
            for (word, value) in [(0usize, 10u64), (1, 20)] {
                let odd = write_begin(seq(&w));
                write(&w, word, value, odd + 1);
                write_end(seq(&w), odd);
            }
        });
        let mut mirror = [0u64; 2];
        let mut shipped = 0u64;
        let mut publish = || {
            let s1 = read_begin(seq(&r));
            let mut copy = [None; 2];
            dirty(&r, shipped, &mut copy);
            if read_validate(seq(&r), s1) {
                ship(&mut mirror, &copy);
                shipped = s1;
            }
        };
        publish();
        writer.join().unwrap();
        publish();
        assert_eq!(mirror, [10, 20]);
        assert_eq!(shipped, 4);
    }

    /// Applies a validated copy to the mirror (the words the scan found dirty).
    fn ship(mirror: &mut [u64; 2], copy: &[Option<u64>; 2]) {
        for (m, c) in mirror.iter_mut().zip(copy) {
            if let Some(v) = c {
                *m = *v;
            }
        }
    }
}
