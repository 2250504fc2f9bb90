//! `SeqRegion`: a seqlock-protected data region with one writer, any number
//! of lock-free readers in other processes, and per-chunk dirty versions.
//!
//! * Readers never lock and never return a torn value: they copy with
//!   byte-wise atomic loads inside a seqlock window ([`crate::seqlock`]) and
//!   retry when a write overlapped. Retries have a budget; when it runs out
//!   and the writer is dead mid-write, the read fails with
//!   [`Error::WriterDead`] instead of spinning; otherwise it keeps trying
//!   until the read timeout (default 1 s) and fails with [`Error::Timeout`].
//! * Every write marks the chunks it touched with the new version, and,
//!   inside chunks larger than [`PAGE_SIZE`], the pages it touched
//!   ([`crate::dirty`]), so a replication publisher can ask which pages
//!   changed since version N and read them consistently: the cost of a
//!   delta follows the changed pages, not the chunk size.
//! * [`SeqRegion::wait_for_change`] sleeps on a process-shared futex.
//!
//! Limits: a reader whose copy takes longer than the interval between writes
//! can starve (classic seqlock behaviour); large regions written at a high
//! rate should be read with [`SeqRegion::read_at`] in smaller pieces.
//!
//! ```
//! use venom_core::{RegionConfig, SeqReader, SeqWriter};
//! let name = format!("doc-region-{}", std::process::id());
//! let mut writer = SeqWriter::create(&name, RegionConfig::new(4096))?;
//! let v = writer.write(b"hello")?;
//! let reader = SeqReader::open(&name)?;
//! let mut buf = [0u8; 4096];
//! assert_eq!(reader.read(&mut buf)?, 5);
//! assert_eq!(&buf[..5], b"hello");
//! assert_eq!(reader.version(), v);
//! writer.unlink()?;
//! # Ok::<(), venom_core::Error>(())
//! ```

mod layout;
mod reader;
mod snapshot;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use crate::deadline::Deadline;

pub use layout::{
    DEFAULT_CHUNK_SIZE, MAX_REGION_SIZE, MIN_CHUNK_SIZE, PAGE_SIZE, REGION_LAYOUT_VERSION, RegionConfig, layout_len,
};
pub use reader::SeqReader;
pub use snapshot::{ChunkRef, ChunkSnapshot};
pub use writer::{RegionWrite, SeqWriter};

use crate::error::{Error, Result};
use crate::loom::sync::{AtomicU64, Ordering};
use crate::process::{Liveness, ProcessId};
use crate::segment::Segment;
use crate::{atomic_copy, seqlock};
use layout::{Layout, REGION_MAGIC, RegionControl};

/// Default time a read keeps retrying while a live writer is mid-write.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(1);
/// Attempts made with a spin hint before a reader starts yielding and
/// checking the writer's liveness.
const SPIN_BUDGET: u32 = 128;

/// A view of a region block in shared memory. Holds the segment alive.
pub struct SeqRegion {
    ctl: *const RegionControl,
    versions: *const AtomicU64,
    pages: *const AtomicU64,
    data: *mut u8,
    size: usize,
    chunk_shift: u32,
    chunk_count: usize,
    page_shift: u32,
    page_count: usize,
    read_timeout: Duration,
    _segment: Arc<Segment>,
}

// SAFETY: the raw pointers point into the mapping kept alive by `_segment`;
// all accesses through them are atomic (atomics or `atomic_copy`), so the
// view can be shared and sent between threads.
unsafe impl Send for SeqRegion {}
// SAFETY: see `Send`.
unsafe impl Sync for SeqRegion {}

impl std::fmt::Debug for SeqRegion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeqRegion")
            .field("size", &self.size)
            .field("chunk_size", &self.chunk_size())
            .field("version", &self.version())
            .finish()
    }
}

/// Outcome of one read attempt.
enum Attempt<T> {
    /// Consistent.
    Done(T),
    /// A write overlapped: try again.
    Retry,
}

impl SeqRegion {
    /// Initialises a region block of `cfg` at `offset` in `segment`'s body.
    /// Call it from the segment's `create_with` initialiser, before the
    /// segment is published.
    ///
    /// # Safety
    /// No other process may access the block yet (the segment is not
    /// published), and `offset` must be 128-byte aligned.
    pub unsafe fn init_in(segment: &Segment, offset: usize, cfg: &RegionConfig) -> Result<()> {
        let total = layout_len(cfg)?;
        check_fits(segment, offset, total)?;
        // SAFETY: in bounds (checked), aligned (caller), atomics valid for
        // any bits; zero-filled memory from the kernel.
        let ctl = unsafe { &*(segment.body_ptr().add(offset) as *const RegionControl) };
        ctl.magic.store(REGION_MAGIC, Ordering::Relaxed);
        ctl.size.store(cfg.size as u64, Ordering::Relaxed);
        ctl.chunk_shift.store(u64::from(cfg.chunk_size.trailing_zeros()), Ordering::Relaxed);
        ctl.layout_version.store(u64::from(REGION_LAYOUT_VERSION), Ordering::Relaxed);
        // Publication to other processes is the segment's READY Release.
        Ok(())
    }

    /// Attaches to an initialised region block at `offset` in `segment`'s
    /// body, validating its control block against the space available.
    pub fn attach(segment: Arc<Segment>, offset: usize) -> Result<SeqRegion> {
        if offset % 128 != 0 || offset.checked_add(layout::CONTROL_LEN).is_none_or(|e| e > segment.body_len()) {
            return Err(Error::corrupt(segment.name(), "region control block outside the segment"));
        }
        // SAFETY: in bounds and 128-aligned (checked); atomics accept any bits.
        let ctl = unsafe { &*(segment.body_ptr().add(offset) as *const RegionControl) };
        // Static words after init, published by the segment's READY Acquire: Relaxed.
        // A version-1 block has 0 in the (then padding) version word.
        let version = ctl.layout_version.load(Ordering::Relaxed).max(1);
        crate::header::check_block(
            segment.name(),
            "region",
            (ctl.magic.load(Ordering::Relaxed), REGION_MAGIC),
            (version, u64::from(REGION_LAYOUT_VERSION)),
        )?;
        let size = ctl.size.load(Ordering::Relaxed);
        let shift = ctl.chunk_shift.load(Ordering::Relaxed);
        if size == 0 || size > MAX_REGION_SIZE as u64 || !(6..=40).contains(&shift) {
            return Err(Error::corrupt(segment.name(), format!("bad region size {size} or chunk shift {shift}")));
        }
        let (size, shift) = (size as usize, shift as u32);
        let lay = Layout::of(size, shift);
        check_fits(&segment, offset, lay.total)
            .map_err(|_| Error::corrupt(segment.name(), "region extends past the segment"))?;
        // SAFETY: every offset below is within `offset + lay.total`, which
        // fits in the body (checked above).
        let (ctl, versions, pages, data) = unsafe {
            let base = segment.body_ptr().add(offset);
            (
                base as *const RegionControl,
                base.add(lay.versions_at) as *const AtomicU64,
                base.add(lay.pages_at) as *const AtomicU64,
                base.add(lay.data_at),
            )
        };
        Ok(SeqRegion {
            ctl,
            versions,
            pages,
            data,
            size,
            chunk_shift: shift,
            chunk_count: lay.chunk_count,
            page_shift: lay.page_shift,
            page_count: lay.page_count,
            read_timeout: DEFAULT_READ_TIMEOUT,
            _segment: segment,
        })
    }

    fn ctl(&self) -> &RegionControl {
        // SAFETY: validated in `attach`; lives as long as `_segment`.
        unsafe { &*self.ctl }
    }

    pub(crate) fn versions(&self) -> &[AtomicU64] {
        // SAFETY: `chunk_count` words at `versions` lie inside the block
        // (layout checked in `attach`); 8-aligned (128-aligned start).
        unsafe { core::slice::from_raw_parts(self.versions, self.chunk_count) }
    }

    /// Page versions (empty when pages are chunks).
    pub(crate) fn pages(&self) -> &[AtomicU64] {
        // SAFETY: `page_count` words at `pages` lie inside the block (layout
        // checked in `attach`); 8-aligned (128-aligned start).
        unsafe { core::slice::from_raw_parts(self.pages, self.page_count) }
    }

    /// The two dirty levels of this region.
    pub(crate) fn dirty(&self) -> crate::dirty::Levels<'_> {
        crate::dirty::Levels {
            chunks: self.versions(),
            pages: self.pages(),
            chunk_shift: self.chunk_shift,
            page_shift: self.page_shift,
        }
    }

    /// Data size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Dirty-tracking chunk size in bytes.
    pub fn chunk_size(&self) -> usize {
        1 << self.chunk_shift
    }

    /// Number of chunks.
    pub fn chunk_count(&self) -> usize {
        self.chunk_count
    }

    /// Second-level dirty granularity: [`PAGE_SIZE`], or the chunk size if
    /// that is smaller. [`SeqRegion::snapshot_since`] reports changes in
    /// whole pages.
    pub fn page_size(&self) -> usize {
        1 << self.page_shift
    }

    /// The segment this region lives in.
    pub fn segment(&self) -> &Segment {
        &self._segment
    }

    /// Sets how long reads retry while a live writer is mid-write.
    pub fn set_read_timeout(&mut self, t: Duration) {
        self.read_timeout = t;
    }

    /// Version of the last completed write (even; 0 = never written).
    pub fn version(&self) -> u64 {
        // Acquire: pairs with the writer's Release so that a caller that
        // then reads sees at least this version.
        self.ctl().seq.load(Ordering::Acquire) & !1
    }

    /// Writer epoch: bumped each time a new writer takes the region over.
    pub fn writer_epoch(&self) -> u64 {
        self.ctl().writer_epoch.load(Ordering::Acquire)
    }

    /// The current writer, if one is registered.
    pub fn writer(&self) -> Option<ProcessId> {
        let w = self.ctl().writer.load(Ordering::Acquire);
        (w != 0).then(|| ProcessId::unpack(w))
    }

    /// Whether a registered writer is alive.
    pub fn writer_alive(&self) -> bool {
        let w = self.ctl().writer.load(Ordering::Acquire);
        w != 0 && ProcessId::packed_liveness(w) == Liveness::Alive
    }

    /// Whether the region is torn: a writer died mid-write and its
    /// successor has not yet rewritten the whole region (reads fail with
    /// [`Error::Torn`] meanwhile).
    pub fn is_torn(&self) -> bool {
        // Relaxed: a monitoring snapshot; reads that care go through the
        // seqlock window.
        self.ctl().torn.load(Ordering::Relaxed) != 0
    }

    /// Length of the last [`SeqWriter::write`] (a monitoring snapshot, not
    /// synchronised with the data; use [`SeqRegion::read`] for that).
    pub fn last_write_len(&self) -> usize {
        // Relaxed: see above.
        (self.ctl().len.load(Ordering::Relaxed) as usize).min(self.size)
    }

    /// Reads the bytes of the last [`SeqWriter::write`] into `buf` and
    /// returns their count. Fails with [`Error::BufferTooSmall`] rather than
    /// truncating.
    pub fn read(&self, buf: &mut [u8]) -> Result<usize> {
        self.consistent(|s| {
            let len = (self.ctl().len.load(Ordering::Relaxed) as usize).min(self.size);
            if len > buf.len() {
                return Ok(self.validated(s, Err(Error::BufferTooSmall { needed: len, got: buf.len() })));
            }
            // SAFETY: len <= size, so the range is inside the data area.
            unsafe { atomic_copy::load(self.data, &mut buf[..len]) };
            Ok(self.validated(s, Ok(len)))
        })?
    }

    /// Reads `buf.len()` bytes at `offset`; returns the version they are
    /// consistent at.
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<u64> {
        self.check_range(offset, buf.len())?;
        self.consistent(|s| {
            // SAFETY: range checked against `size` above.
            unsafe { atomic_copy::load(self.data.add(offset), buf) };
            Ok(self.validated(s, s))
        })
    }

    /// Reads a `Pod` value at `offset` (any alignment).
    pub fn read_pod<T: bytemuck::Pod>(&self, offset: usize) -> Result<T> {
        let mut v = T::zeroed();
        self.read_at(offset, bytemuck::bytes_of_mut(&mut v))?;
        Ok(v)
    }

    /// Blocks until the version differs from `since`, up to `timeout`;
    /// returns the new version. Sleeps on a process-shared futex (no spin).
    /// Fails with [`Error::WriterDead`] if the writer died mid-write.
    pub fn wait_for_change(&self, since: u64, timeout: Duration) -> Result<u64> {
        let ctl = self.ctl();
        let segment = &self._segment;
        let got = ctl.change.wait_until(timeout, || {
            let v = ctl.seq.load(Ordering::Acquire);
            // A truncated mapping reads as zeroes: wake up and report it
            // (below) rather than sleep to the deadline.
            (v & 1 == 0 && v != since || segment.check_mapped().is_err()).then_some(v)
        });
        self._segment.check_mapped()?;
        match got {
            Some(v) => Ok(v),
            None => {
                self.check_writer_mid_write()?;
                Err(Error::Timeout(timeout))
            }
        }
    }

    pub(crate) fn check_range(&self, offset: usize, len: usize) -> Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.size => Ok(()),
            _ => Err(Error::OutOfBounds { offset, len, size: self.size }),
        }
    }

    /// Validates a read window started at `s`; `Done(value)` if consistent.
    fn validated<T>(&self, s: u64, value: T) -> Attempt<T> {
        if !seqlock::read_validate(&self.ctl().seq, s) {
            return Attempt::Retry;
        }
        Attempt::Done(value)
    }

    /// Runs `attempt` (one read window starting at the given sequence value)
    /// until it succeeds, within the retry budget and the read timeout.
    fn consistent<T>(&self, mut attempt: impl FnMut(u64) -> Result<Attempt<T>>) -> Result<T> {
        let mut tries = 0u32;
        let mut deadline: Option<Deadline> = None;
        loop {
            let s = seqlock::read_begin(&self.ctl().seq);
            if s & 1 == 0 {
                // Loaded inside the window (after `read_begin`, before the
                // validation fence), like the data: validation covers it.
                let torn = self.ctl().torn.load(Ordering::Relaxed) != 0;
                let result = attempt(s);
                // A truncation zeroes the mapping: whatever the attempt saw
                // (zeroes that validate, or an error) is not the region's.
                self._segment.check_mapped()?;
                match result? {
                    Attempt::Done(_) if torn => return Err(Error::Torn),
                    Attempt::Done(v) => return Ok(v),
                    Attempt::Retry => {}
                }
            }
            tries += 1;
            if tries < SPIN_BUDGET {
                crate::loom::spin_hint();
                continue;
            }
            // Budget spent: was the mapping lost, is the writer dead mid-write?
            self._segment.check_mapped()?;
            self.check_writer_mid_write()?;
            let deadline = *deadline.get_or_insert_with(|| Deadline::after(self.read_timeout));
            if deadline.is_past() {
                return Err(Error::Timeout(self.read_timeout));
            }
            std::thread::yield_now();
        }
    }

    fn check_writer_mid_write(&self) -> Result<()> {
        let ctl = self.ctl();
        if ctl.seq.load(Ordering::Acquire) & 1 == 1 {
            let w = ctl.writer.load(Ordering::Acquire);
            if w == 0 || ProcessId::packed_liveness(w) == Liveness::Dead {
                return Err(Error::WriterDead { pid: ProcessId::unpack(w).pid });
            }
        }
        Ok(())
    }
}

fn check_fits(segment: &Segment, offset: usize, total: usize) -> Result<()> {
    match offset.checked_add(total) {
        Some(end) if end <= segment.body_len() => Ok(()),
        _ => Err(Error::InvalidConfig(format!(
            "region of {total} bytes at offset {offset} does not fit in a body of {}",
            segment.body_len()
        ))),
    }
}
