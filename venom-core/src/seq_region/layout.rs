//! Shared-memory layout of a [`SeqRegion`](super::SeqRegion).
//!
//! Layout version 2 ([`REGION_LAYOUT_VERSION`]):
//!
//! ```text
//! offset                    size                  contents
//! 0                         128                   RegionControl
//! 128                       8 * chunk_count (⌈128⌉) chunk versions (AtomicU64)
//! 128 + versions            8 * page_count (⌈128⌉)  page versions (AtomicU64)
//! ... + page versions       size (⌈128⌉)          data
//! ```
//! Pages are the second dirty level: [`PAGE_SIZE`] bytes (or the chunk size
//! if that is smaller, in which case `page_count` is 0 and the chunk
//! versions alone are exact). Version 1 had no page versions and no
//! `layout_version` word (it read 0); it is refused with a typed
//! `Error::VersionMismatch`.
//!
//! The whole block may sit anywhere 128-byte aligned: at the start of a
//! `SEQ_REGION` segment body, or inside a channel segment.

use crate::error::{Error, Result};
use crate::futex::EventCount;
use crate::loom::sync::AtomicU64;

/// Magic stored in the control block, `b"SEQREGN1"`.
pub(crate) const REGION_MAGIC: u64 = u64::from_le_bytes(*b"SEQREGN1");
/// Layout version of the region block (stored in `RegionControl::layout_version`).
pub const REGION_LAYOUT_VERSION: u32 = 2;
/// Second-level dirty granularity: chunks larger than this carry one
/// version per page, so a small write inside a big chunk costs a page.
pub const PAGE_SIZE: usize = 4096;
/// log2 of [`PAGE_SIZE`].
pub(crate) const PAGE_SHIFT: u32 = PAGE_SIZE.trailing_zeros();
/// Size of [`RegionControl`].
pub(crate) const CONTROL_LEN: usize = 128;
/// Default chunk size for dirty tracking.
pub const DEFAULT_CHUNK_SIZE: usize = 64 * 1024;
/// Smallest chunk size (one cache line).
pub const MIN_CHUNK_SIZE: usize = 64;
/// Largest data region (1 TiB).
pub const MAX_REGION_SIZE: usize = 1 << 40;

/// Control block at the start of a region.
#[repr(C, align(128))]
pub(crate) struct RegionControl {
    /// Seqlock word: even = stable, odd = write in progress. Advances by 2
    /// per write; a value left odd by a crashed writer is skipped by the next
    /// writer (see `seqlock::write_begin`).
    pub(crate) seq: AtomicU64,
    /// Bytes written by the last `write()`; written inside the write window.
    pub(crate) len: AtomicU64,
    /// Packed `ProcessId` of the writer, 0 when none. Claimed by CAS.
    pub(crate) writer: AtomicU64,
    /// 1 after a take-over of a region whose writer died mid-write, until a
    /// write covers the whole region. Written inside the write window.
    pub(crate) torn: AtomicU64,
    /// Bumped at each writer take-over (replication uses it as an epoch).
    pub(crate) writer_epoch: AtomicU64,
    /// Static after init: `REGION_MAGIC`.
    pub(crate) magic: AtomicU64,
    /// Static after init: data size in bytes.
    pub(crate) size: AtomicU64,
    /// Static after init: log2 of the chunk size.
    pub(crate) chunk_shift: AtomicU64,
    /// Wakes `wait_for_change` sleepers (process-shared futex). Not under
    /// loom: it is a real futex word.
    pub(crate) change: EventCount,
    /// Static after init: [`REGION_LAYOUT_VERSION`] (0 in version-1 blocks,
    /// whose padding it reuses).
    pub(crate) layout_version: AtomicU64,
    _pad: [u64; 6],
}

#[cfg(not(loom))]
const _: () = assert!(core::mem::size_of::<RegionControl>() == CONTROL_LEN);

/// Configuration of a new region.
///
/// ```
/// let cfg = venom_core::RegionConfig::new(1 << 20).chunk_size(16 * 1024);
/// assert_eq!(cfg.size, 1 << 20);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegionConfig {
    /// Data size in bytes (1 ..= 1 TiB).
    pub size: usize,
    /// Dirty-tracking chunk size: a power of two, at least 64.
    pub chunk_size: usize,
    /// Permission bits of the segment (default 0600).
    pub mode: u32,
}

impl RegionConfig {
    /// A region of `size` bytes with 64 KiB chunks and mode 0600.
    pub fn new(size: usize) -> Self {
        RegionConfig { size, chunk_size: DEFAULT_CHUNK_SIZE, mode: crate::DEFAULT_MODE }
    }

    /// Sets the chunk size.
    pub fn chunk_size(mut self, chunk_size: usize) -> Self {
        self.chunk_size = chunk_size;
        self
    }

    /// Sets the permission bits.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.size == 0 || self.size > MAX_REGION_SIZE {
            return Err(Error::InvalidConfig(format!("region size {} not in 1..=2^40", self.size)));
        }
        // At most 2^40 (the largest region): readers reject a larger chunk
        // shift as corrupt, so the writer must not create one.
        if !self.chunk_size.is_power_of_two() || self.chunk_size < MIN_CHUNK_SIZE || self.chunk_size > MAX_REGION_SIZE {
            return Err(Error::InvalidConfig(format!(
                "chunk size {} is not a power of two in 64..=2^40",
                self.chunk_size
            )));
        }
        Ok(())
    }
}

/// Byte offsets of the parts of a region block.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    pub(crate) chunk_count: usize,
    /// log2 of the page size (`min(chunk_shift, PAGE_SHIFT)`).
    pub(crate) page_shift: u32,
    /// Page versions; 0 when a page is a chunk (no second level).
    pub(crate) page_count: usize,
    pub(crate) versions_at: usize,
    pub(crate) pages_at: usize,
    pub(crate) data_at: usize,
    pub(crate) total: usize,
}

const fn round128(n: usize) -> usize {
    (n + 127) & !127
}

impl Layout {
    pub(crate) fn of(size: usize, chunk_shift: u32) -> Layout {
        let chunk_count = size.div_ceil(1usize << chunk_shift);
        let page_shift = chunk_shift.min(PAGE_SHIFT);
        let page_count = if page_shift < chunk_shift { size.div_ceil(1usize << page_shift) } else { 0 };
        let versions_at = CONTROL_LEN;
        let pages_at = versions_at + round128(8 * chunk_count);
        let data_at = pages_at + round128(8 * page_count);
        Layout { chunk_count, page_shift, page_count, versions_at, pages_at, data_at, total: data_at + round128(size) }
    }
}

/// Bytes a region with `cfg` needs, control block and versions included.
pub fn layout_len(cfg: &RegionConfig) -> Result<usize> {
    cfg.validate()?;
    Ok(Layout::of(cfg.size, cfg.chunk_size.trailing_zeros()).total)
}
