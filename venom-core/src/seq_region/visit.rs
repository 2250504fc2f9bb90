//! In-place visits of the dirty pages: a publisher diffs the region's bytes
//! against its own copy *inside* the consistent read window, instead of
//! copying the dirty pages out first ([`SeqRegion::snapshot_since`]) and
//! diffing the copy.
//!
//! Same seqlock protocol as every other read ([`crate::seqlock`]): the
//! bytes are loaded with [`atomic_copy`] (byte-wise relaxed atomics) into a
//! private page-sized block that stays in the L1 cache, the visitor looks
//! at that block, and the window is validated at the end. What the visitor
//! did with a torn window's blocks must be thrown away: every window starts
//! with [`DirtyVisitor::begin`], and only the result of the window that
//! validates counts (the caller learns which from the returned version).

use super::{PAGE_SIZE, SeqRegion};
use crate::atomic_copy;
use crate::error::{Error, Result};

/// Receives the dirty bytes of one [`SeqRegion::visit_since`] window.
pub trait DirtyVisitor {
    /// A window starts: if it validates, the bytes are the region's at
    /// `version`; `dirty` bytes will be visited. Everything a previous (torn)
    /// window delivered must be forgotten.
    fn begin(&mut self, version: u64, dirty: usize);
    /// `bytes` of the region at `offset`: at most [`PAGE_SIZE`] bytes inside
    /// one page (and one chunk), in increasing offset order. Valid only if
    /// the window validates: until then they may be torn.
    fn block(&mut self, offset: usize, bytes: &[u8]);
}

impl SeqRegion {
    /// Visits every page whose version is above `since` (the pages
    /// [`SeqRegion::snapshot_since`] would copy), in one consistent window,
    /// without copying them into a snapshot: each page is loaded into a
    /// private page-sized block and handed to `visitor`. Returns the region
    /// version the visited bytes are consistent at, or `None` when `windows`
    /// windows were torn by concurrent writes (a writer that keeps writing
    /// must not starve the caller: it falls back to a shorter read such as
    /// [`SeqRegion::snapshot_since`]). A window that waits for a writer
    /// mid-write is not counted; that wait is bounded by the read timeout,
    /// as for every read.
    ///
    /// ```
    /// use venom_core::{DirtyVisitor, RegionConfig, SeqWriter};
    /// struct Collect(Vec<(usize, Vec<u8>)>);
    /// impl DirtyVisitor for Collect {
    ///     fn begin(&mut self, _version: u64, _dirty: usize) { self.0.clear() }
    ///     fn block(&mut self, offset: usize, bytes: &[u8]) { self.0.push((offset, bytes.to_vec())) }
    /// }
    /// let name = format!("doc-visit-{}", std::process::id());
    /// let mut w = SeqWriter::create(&name, RegionConfig::new(1 << 20))?;
    /// let v = w.version();
    /// w.write_at(70_000, &[3; 8])?;
    /// let mut c = Collect(Vec::new());
    /// assert_eq!(w.visit_since(v, 2, &mut c)?, Some(w.version()));
    /// assert_eq!(c.0.len(), 1);
    /// assert_eq!((c.0[0].0, c.0[0].1.len()), (69_632, 4096));
    /// w.unlink()?;
    /// # Ok::<(), venom_core::Error>(())
    /// ```
    pub fn visit_since(&self, since: u64, windows: u32, visitor: &mut dyn DirtyVisitor) -> Result<Option<u64>> {
        let page = self.page_size().min(PAGE_SIZE);
        let size = self.size;
        let page_shift = self.page_shift;
        let mut spans: Vec<(usize, usize)> = Vec::new();
        let mut block = [0u8; PAGE_SIZE];
        self.consistent_within(windows, |s| {
            spans.clear();
            let mut dirty = 0;
            self.dirty().scan_pages(since, |_, first, end, _| {
                let offset = first << page_shift;
                let len = (end << page_shift).min(size) - offset;
                spans.push((offset, len));
                dirty += len;
            });
            visitor.begin(s, dirty);
            for &(offset, len) in &spans {
                let mut at = offset;
                while at < offset + len {
                    // Page-aligned pieces: spans start on a page boundary.
                    let n = page.min(offset + len - at);
                    // SAFETY: at + n <= offset + len <= size, inside the
                    // data area; `block` is a private buffer.
                    unsafe { atomic_copy::load(self.data.add(at), &mut block[..n]) };
                    visitor.block(at, &block[..n]);
                    at += n;
                }
            }
            Ok::<_, Error>(self.validated(s, s))
        })
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::seq_region::{ChunkSnapshot, RegionConfig, SeqReader, SeqWriter};
    use crate::testkit::unique_name;

    /// Collects the blocks of the last window.
    #[derive(Default)]
    struct Collect {
        windows: u32,
        dirty: usize,
        blocks: Vec<(usize, Vec<u8>)>,
    }

    impl DirtyVisitor for Collect {
        fn begin(&mut self, version: u64, dirty: usize) {
            assert_eq!(version & 1, 0, "a window starts at an even version");
            (self.windows, self.dirty) = (self.windows + 1, dirty);
            self.blocks.clear();
        }
        fn block(&mut self, offset: usize, bytes: &[u8]) {
            self.blocks.push((offset, bytes.to_vec()));
        }
    }

    /// The visited blocks are exactly the bytes `snapshot_since` copies,
    /// in pieces of at most a page, for chunk sizes below and above a page.
    #[test]
    fn visits_what_snapshot_since_copies() {
        for chunk in [1024, 64 << 10] {
            let name = unique_name("visit-eq");
            let mut w = SeqWriter::create(&name, RegionConfig::new(300_000).chunk_size(chunk)).unwrap();
            let v0 = w.version();
            for (at, len) in [(0, 5), (4095, 2), (70_000, 9000), (299_990, 10), (150_000, 1)] {
                let data: Vec<u8> = (0..len).map(|i| (i * 7 + at) as u8 | 1).collect();
                w.write_at(at, &data).unwrap();
            }
            let mut snap = ChunkSnapshot::default();
            w.snapshot_since(v0, &mut snap).unwrap();
            let mut c = Collect::default();
            assert_eq!(w.visit_since(v0, 1, &mut c).unwrap(), Some(snap.version));
            assert_eq!(c.dirty, snap.data.len());
            assert!(
                c.blocks
                    .iter()
                    .all(|(o, b)| b.len() <= w.page_size() && o / w.page_size() == (o + b.len() - 1) / w.page_size())
            );
            let joined: Vec<u8> = c.blocks.iter().flat_map(|b| b.1.iter().copied()).collect();
            assert_eq!(joined, snap.data);
            let mut expect = Vec::new();
            for s in &snap.chunks {
                let mut at = s.offset;
                while at < s.offset + s.len {
                    expect.push(at);
                    at += w.page_size().min(s.offset + s.len - at);
                }
            }
            assert_eq!(c.blocks.iter().map(|b| b.0).collect::<Vec<_>>(), expect);
            w.unlink().unwrap();
        }
    }

    /// Writes from inside the window (the visitor itself writes through a
    /// second handle) tear it: with one window allowed the visit gives up,
    /// with two the second window sees the write.
    #[test]
    fn torn_windows_are_retried_then_given_up() {
        struct Tear<'a> {
            inner: Collect,
            writer: &'a mut SeqWriter,
            tears: u32,
        }
        impl DirtyVisitor for Tear<'_> {
            fn begin(&mut self, version: u64, dirty: usize) {
                self.inner.begin(version, dirty);
            }
            fn block(&mut self, offset: usize, bytes: &[u8]) {
                if self.tears > 0 {
                    self.tears -= 1;
                    self.writer.write_at(200_000, &[self.tears as u8 + 7; 3]).unwrap();
                }
                self.inner.block(offset, bytes);
            }
        }
        let name = unique_name("visit-tear");
        let mut w = SeqWriter::create(&name, RegionConfig::new(300_000)).unwrap();
        let r = SeqReader::open(&name).unwrap();
        let v0 = w.version();
        w.write_at(10, &[1; 10]).unwrap();
        let mut t = Tear { inner: Collect::default(), writer: &mut w, tears: 1 };
        assert_eq!(r.visit_since(v0, 1, &mut t).unwrap(), None, "one torn window, budget 1");
        t.tears = 1;
        let v = r.visit_since(v0, 2, &mut t).unwrap().unwrap();
        assert_eq!(t.inner.windows, 3);
        assert_eq!(v, r.version());
        let offsets: Vec<usize> = t.inner.blocks.iter().map(|b| b.0).collect();
        assert_eq!(offsets, vec![0, 196_608], "the torn window's write is in the next window");
        assert_eq!(&t.inner.blocks[1].1[200_000 - 196_608..][..3], &[7; 3]);
        w.unlink().unwrap();
    }

    /// A real concurrent writer: every write fills whole pages with one
    /// byte value, so any accepted window whose page is not uniform is a
    /// torn read that escaped.
    #[test]
    fn concurrent_writer_never_yields_a_torn_page() {
        let name = unique_name("visit-race");
        let mut w = SeqWriter::create(&name, RegionConfig::new(1 << 20)).unwrap();
        let r = SeqReader::open(&name).unwrap();
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut x = 0x9E37_79B9_7F4A_7C15u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let page = (x % 255) as usize;
                    w.write_at(page * 4096, &[x as u8; 8192]).unwrap();
                }
            });
            let (mut since, mut accepted, mut given_up) = (0, 0, 0);
            let mut c = Collect::default();
            while accepted < 200 {
                match r.visit_since(since, 2, &mut c).unwrap() {
                    Some(v) => {
                        for (o, b) in &c.blocks {
                            assert!(b.iter().all(|&x| x == b[0]), "torn page at {o}");
                        }
                        (since, accepted) = (v, accepted + 1);
                    }
                    None => given_up += 1,
                }
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            let _ = given_up; // how often depends on the scheduler
        });
        w.unlink().unwrap();
    }
}
