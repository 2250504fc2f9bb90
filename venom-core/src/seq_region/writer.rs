//! The single writer of a region.

use std::ops::Deref;
use std::sync::Arc;

use super::{RegionConfig, SeqRegion, layout_len};
use crate::error::{Error, Result};
use crate::loom::sync::Ordering;
use crate::process::{Liveness, ProcessId};
use crate::segment::Segment;
use crate::{SegmentKind, atomic_copy, seqlock};

/// The one writer of a [`SeqRegion`]. Dereferences to the region for reads.
///
/// The writer role is claimed in shared memory with the writer's packed
/// [`ProcessId`] (CAS from 0, or from a dead writer in
/// [`SeqWriter::take_over`]); it is released on drop.
pub struct SeqWriter {
    region: SeqRegion,
    me: u64,
}

impl std::fmt::Debug for SeqWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SeqWriter").field(&self.region).finish()
    }
}

impl Deref for SeqWriter {
    type Target = SeqRegion;
    fn deref(&self) -> &SeqRegion {
        &self.region
    }
}

impl SeqWriter {
    /// Creates a `SEQ_REGION` segment named `name` and becomes its writer.
    /// Fails with [`Error::AlreadyExists`] if a live process owns the name.
    pub fn create(name: &str, cfg: RegionConfig) -> Result<SeqWriter> {
        let len = layout_len(&cfg)?;
        let seg = Segment::builder(name, SegmentKind::SEQ_REGION)
            .body_len(len)
            .mode(cfg.mode)
            // SAFETY: the segment is not published while `init_in` runs, and
            // offset 0 of the body is 128-aligned.
            .create_with(|seg| unsafe { SeqRegion::init_in(seg, 0, &cfg) })?;
        SeqWriter::claim(SeqRegion::attach(Arc::new(seg), 0)?)
    }

    /// Opens an existing region whose writer is gone and becomes its writer.
    /// If the old writer died mid-write, the region is marked torn: reads
    /// fail with [`Error::Torn`] until a write covers the whole region.
    /// Fails with [`Error::WriterBusy`] if the writer is alive.
    pub fn take_over(name: &str) -> Result<SeqWriter> {
        let seg = Arc::new(Segment::open(name, SegmentKind::SEQ_REGION)?);
        let region = SeqRegion::attach(seg.clone(), 0)?;
        let writer = SeqWriter::claim(region)?;
        seg.set_owner(ProcessId::current());
        Ok(writer)
    }

    /// Becomes the writer of `region` (created or attached by the caller,
    /// e.g. inside a channel segment): succeeds if there is no writer or the
    /// registered writer is dead.
    pub fn claim(region: SeqRegion) -> Result<SeqWriter> {
        let me = ProcessId::current().pack();
        let ctl = region.ctl();
        let mut current = ctl.writer.load(Ordering::Acquire);
        loop {
            if current == me {
                return Err(Error::WriterBusy { pid: ProcessId::unpack(current).pid });
            }
            if current != 0 && ProcessId::packed_liveness(current) == Liveness::Alive {
                return Err(Error::WriterBusy { pid: ProcessId::unpack(current).pid });
            }
            // AcqRel: Acquire sees everything the previous writer did before
            // its death or release; Release publishes our claim.
            match ctl.writer.compare_exchange(current, me, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(now) => current = now,
            }
        }
        let writer = SeqWriter { region, me };
        if current != 0 {
            writer.recover();
        }
        Ok(writer)
    }

    /// After taking over from a dead writer: bump the epoch and, if the old
    /// writer died mid-write, close its window and flag the region torn.
    fn recover(&self) {
        let ctl = self.region.ctl();
        // Relaxed: published by the write window below (Release).
        ctl.writer_epoch.fetch_add(1, Ordering::Release);
        if ctl.seq.load(Ordering::Relaxed) & 1 == 1 {
            let odd = seqlock::write_begin(&ctl.seq);
            ctl.torn.store(1, Ordering::Relaxed);
            // Every chunk may hold half-written data: mark all dirty so that
            // replication resends them after the rewrite.
            self.region.dirty().mark_range(0, self.region.size, odd + 1);
            seqlock::write_end(&ctl.seq, odd);
            ctl.change.notify_all();
        }
    }

    /// Writes `data` at offset 0 and records its length for
    /// [`SeqRegion::read`]. Returns the new version.
    pub fn write(&mut self, data: &[u8]) -> Result<u64> {
        self.region.check_range(0, data.len())?;
        self.write_with(|w| {
            w.write_at(0, data)?;
            w.set_len(data.len());
            Ok(())
        })
        .map(|((), v)| v)
    }

    /// Writes `data` at `offset`. Returns the new version.
    pub fn write_at(&mut self, offset: usize, data: &[u8]) -> Result<u64> {
        self.region.check_range(offset, data.len())?;
        self.write_with(|w| w.write_at(offset, data)).map(|((), v)| v)
    }

    /// Runs `f` inside one write window: everything it writes is published
    /// as a single new version (readers see all of it or none). If `f`
    /// fails, what it wrote before failing is still published.
    ///
    /// Writes go through [`RegionWrite`] rather than a `&mut [u8]`, because
    /// readers in other processes copy the same bytes concurrently and a
    /// plain store racing with their loads would be undefined behaviour.
    ///
    /// ```
    /// use venom_core::{RegionConfig, SeqWriter};
    /// let name = format!("doc-write-with-{}", std::process::id());
    /// let mut w = SeqWriter::create(&name, RegionConfig::new(1024))?;
    /// let (_, v) = w.write_with(|r| {
    ///     r.store(0, &42u64)?;
    ///     r.write_at(8, b"tick")
    /// })?;
    /// assert_eq!(w.read_pod::<u64>(0)?, 42);
    /// assert_eq!(w.version(), v);
    /// w.unlink()?;
    /// # Ok::<(), venom_core::Error>(())
    /// ```
    pub fn write_with<R>(&mut self, f: impl FnOnce(&mut RegionWrite<'_>) -> Result<R>) -> Result<(R, u64)> {
        let ctl = self.region.ctl();
        let odd = seqlock::write_begin(&ctl.seq);
        let mut w = RegionWrite { region: &self.region, version: odd + 1, covered_all: false };
        let result = f(&mut w);
        if w.covered_all {
            ctl.torn.store(0, Ordering::Relaxed);
        }
        seqlock::write_end(&ctl.seq, odd);
        // Lossless wake-ups of `wait_for_change` cost one StoreLoad barrier
        // per write window even with no waiter: a cheaper "nobody waits"
        // check would lose wake-ups (see `EventCount::notify`, and the
        // loom model that fails without it). Batch small updates with
        // `write_with` to pay it once.
        ctl.change.notify_all();
        // After a truncation the write landed in private zero pages.
        self.region.segment().check_mapped()?;
        result.map(|r| (r, odd + 1))
    }

    /// Best effort: populates the page tables of the whole data area for
    /// writing (`madvise(MADV_POPULATE_WRITE)`, Linux 5.14+) without
    /// changing a byte, so a first big write (a mirror's first snapshot)
    /// does not take one page fault per 4 KiB inside its write window, where
    /// readers wait. Returns whether the kernel did it.
    pub fn prefault(&self) -> bool {
        let page = 4096usize;
        let start = self.region.data as usize & !(page - 1);
        let end = (self.region.data as usize + self.region.size).next_multiple_of(page);
        // The mapping starts page-aligned (at the segment header) and spans
        // whole pages, so the rounded range stays inside it.
        // SAFETY: madvise on a range of our own live mapping; POPULATE_WRITE
        // only faults pages in (like a write of the byte already there) and
        // never changes their contents, so concurrent readers are unaffected.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_POPULATE_WRITE) == 0 }
    }

    /// Unlinks the region's name (the mapping stays valid).
    pub fn unlink(&self) -> Result<()> {
        self.region.segment().unlink()
    }
}

impl Drop for SeqWriter {
    fn drop(&mut self) {
        // Release the role; Release so a successor's Acquire CAS sees our
        // last writes. Ignore failure (someone already took over).
        let _ = self.region.ctl().writer.compare_exchange(self.me, 0, Ordering::Release, Ordering::Relaxed);
    }
}

/// Write access inside [`SeqWriter::write_with`]. Every method marks the
/// pages and chunks it touches with the window's version.
pub struct RegionWrite<'a> {
    region: &'a SeqRegion,
    version: u64,
    covered_all: bool,
}

impl RegionWrite<'_> {
    /// Region size in bytes.
    pub fn size(&self) -> usize {
        self.region.size
    }

    /// The version this window will publish.
    pub fn version(&self) -> u64 {
        self.version
    }

    fn mark(&mut self, offset: usize, len: usize) {
        self.region.dirty().mark_range(offset, len, self.version);
        if offset == 0 && len == self.region.size {
            self.covered_all = true;
        }
    }

    /// Copies `data` to `offset`.
    pub fn write_at(&mut self, offset: usize, data: &[u8]) -> Result<()> {
        self.region.check_range(offset, data.len())?;
        // SAFETY: range checked; we are the only writer and inside a window.
        unsafe { atomic_copy::store(self.region.data.add(offset), data) };
        self.mark(offset, data.len());
        Ok(())
    }

    /// Fills `len` bytes at `offset` with `byte`.
    pub fn fill(&mut self, offset: usize, len: usize, byte: u8) -> Result<()> {
        self.region.check_range(offset, len)?;
        // SAFETY: as in `write_at`.
        unsafe { atomic_copy::fill(self.region.data.add(offset), byte, len) };
        self.mark(offset, len);
        Ok(())
    }

    /// Stores a `Pod` value at `offset` (any alignment).
    pub fn store<T: bytemuck::Pod>(&mut self, offset: usize, value: &T) -> Result<()> {
        self.write_at(offset, bytemuck::bytes_of(value))
    }

    /// Reads back bytes (the writer's own view; no retry needed).
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        self.region.check_range(offset, buf.len())?;
        // SAFETY: range checked; only this writer stores to the region.
        unsafe { atomic_copy::load(self.region.data.add(offset), buf) };
        Ok(())
    }

    /// Sets the length reported by [`SeqRegion::read`].
    pub fn set_len(&mut self, len: usize) {
        // Relaxed: published by the window's closing Release store.
        self.region.ctl().len.store(len.min(self.region.size) as u64, Ordering::Relaxed);
    }
}
