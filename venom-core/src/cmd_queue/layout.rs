//! Shared-memory layout of a command queue block.
//!
//! ```text
//! offset 0      QueueHeader   128 B  magic, version, lanes, depth, max_msg, stride, consumer, lanes_used
//! offset 128    doorbell      128 B  EventCount the consumer sleeps on
//! offset 256    lanes         lanes × 128 B   LaneCtl { owner, generation }
//! then          rings         lanes × (RingCtl 384 B + depth × 64 B slot lines
//!                                        + depth × stride overflow areas)
//! ```
//! A slot line holds the 32-byte header (stamp first) and the first 32
//! payload bytes; `stride = round_up(max_msg - 32, 64)` (0 when
//! `max_msg <= 32`) is the overflow area of the rest. Every block starts
//! 128-aligned.

use super::ring::{INLINE_LEN, Line, RING_CTL_LEN, Ring, RingCtl, SLOT_LINE};
use crate::error::{Error, Result};
use crate::futex::EventCount;
use crate::header::static_usize;
use crate::loom::sync::{AtomicU64, Ordering};

/// "VNMQUEUE", little-endian.
pub(crate) const QUEUE_MAGIC: u64 = u64::from_le_bytes(*b"VNMQUEUE");
/// Bumped on any incompatible change of this layout.
///
/// 2: `QueueHeader::lanes_used` (consumers scan only the lanes ever claimed;
/// a version-1 producer would not maintain it), and slots split into a
/// contiguous array of 64-byte slot lines plus overflow areas.
pub(crate) const QUEUE_LAYOUT_VERSION: u64 = 2;
/// Most producer lanes a queue can have.
pub const MAX_LANES: usize = 4096;
/// Largest ring depth (slots per lane).
pub const MAX_DEPTH: usize = 1 << 16;
/// Largest message size a queue accepts (64 MiB).
pub const MAX_MSG_SIZE: usize = 64 << 20;

/// Static description of a queue block, written once at init.
#[repr(C)]
pub(crate) struct QueueHeader {
    pub(crate) magic: AtomicU64,
    pub(crate) version: AtomicU64,
    pub(crate) lanes: AtomicU64,
    pub(crate) depth: AtomicU64,
    pub(crate) max_msg: AtomicU64,
    pub(crate) stride: AtomicU64,
    /// Packed [`ProcessId`](crate::ProcessId) of the consumer, 0 when none.
    /// Claimed by CAS.
    pub(crate) consumer: AtomicU64,
    /// One past the highest lane index ever claimed (a high-water mark,
    /// only raised, with `fetch_max`). The consumer polls lanes
    /// `0..lanes_used` only, so with few producers a poll touches few
    /// lines. A producer raises it before its first push; a value above
    /// `lanes` (corruption) is clamped by the reader.
    pub(crate) lanes_used: AtomicU64,
}

/// Per-lane ownership.
#[repr(C)]
pub(crate) struct LaneCtl {
    /// Packed `ProcessId` of the producer owning the lane; 0 = free. Claimed
    /// by CAS from 0 or from a dead owner.
    pub(crate) owner: AtomicU64,
    /// Incremented on every claim; messages carry the generation of their
    /// sender, so a consumer can tell a reclaimed lane's old messages apart.
    pub(crate) generation: AtomicU64,
}

/// Validated geometry of a queue block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub(crate) lanes: usize,
    pub(crate) depth: usize,
    pub(crate) max_msg: usize,
    /// Bytes of one slot's overflow area (payload past the inline part).
    pub(crate) stride: usize,
}

impl Geometry {
    /// Checks and normalises a configuration (depth rounded up to a power of
    /// two).
    pub(crate) fn new(lanes: usize, depth: usize, max_msg: usize) -> Result<Geometry> {
        if lanes == 0 || lanes > MAX_LANES {
            return Err(Error::InvalidConfig(format!("lanes/max_clients must be 1..={MAX_LANES}, got {lanes}")));
        }
        if !(2..=MAX_DEPTH).contains(&depth) {
            return Err(Error::InvalidConfig(format!("depth/cmd_slots must be 2..={MAX_DEPTH}, got {depth}")));
        }
        if max_msg == 0 || max_msg > MAX_MSG_SIZE {
            return Err(Error::InvalidConfig(format!("max_msg_size must be 1..={MAX_MSG_SIZE}, got {max_msg}")));
        }
        let stride = max_msg.saturating_sub(INLINE_LEN).next_multiple_of(64);
        Ok(Geometry { lanes, depth: depth.next_power_of_two(), max_msg, stride })
    }

    /// Bytes of one ring (control block, slot lines, overflow areas).
    pub(crate) fn ring_len(&self) -> usize {
        RING_CTL_LEN + self.depth * (SLOT_LINE + self.stride)
    }

    /// Offset of the first ring.
    pub(crate) fn rings_offset(&self) -> usize {
        256 + self.lanes * 128
    }

    /// Bytes of the whole queue block.
    pub(crate) fn total_len(&self) -> usize {
        self.rings_offset() + self.lanes * self.ring_len()
    }

    /// A view of ring `i` of a ring array starting at `base`.
    ///
    /// # Safety
    /// `base` must point to `lanes * ring_len()` bytes of a live, 128-aligned
    /// mapping, and `i < lanes`.
    pub(crate) unsafe fn ring_at(&self, base: *mut u8, i: usize) -> Ring {
        // SAFETY: caller contract; the offset stays inside the array.
        let ctl = unsafe { base.add(i * self.ring_len()) };
        // SAFETY: the slot lines follow the control block inside the ring.
        let slots = unsafe { ctl.add(RING_CTL_LEN) };
        Ring {
            ctl: ctl as *const RingCtl,
            slots,
            stride: SLOT_LINE,
            // SAFETY: the overflow areas follow the slot lines inside the ring.
            ext: unsafe { slots.add(self.depth * SLOT_LINE) },
            ext_stride: self.stride,
            mask: self.depth as u64 - 1,
            max_msg: self.max_msg,
        }
    }
}

/// Typed views of a block's header parts.
pub(crate) struct Block {
    pub(crate) base: *mut u8,
    pub(crate) geo: Geometry,
}

impl Block {
    pub(crate) fn header(&self) -> &QueueHeader {
        // SAFETY: `base` is 128-aligned with at least total_len bytes
        // (established by init/attach); atomics accept any bits.
        unsafe { &*(self.base as *const QueueHeader) }
    }

    pub(crate) fn doorbell(&self) -> &EventCount {
        // SAFETY: as for `header`; the doorbell line is at offset 128.
        unsafe { &(*(self.base.add(128) as *const Line<EventCount>)).0 }
    }

    pub(crate) fn lane(&self, i: usize) -> &LaneCtl {
        debug_assert!(i < self.geo.lanes);
        // SAFETY: lane lines start at 256, i < lanes.
        unsafe { &*(self.base.add(256 + i * 128) as *const LaneCtl) }
    }

    pub(crate) fn ring(&self, i: usize) -> Ring {
        assert!(i < self.geo.lanes, "lane index out of range");
        // SAFETY: the ring array follows the lanes inside the block; i < lanes.
        unsafe { self.geo.ring_at(self.base.add(self.geo.rings_offset()), i) }
    }

    /// Writes the header of a fresh (zeroed) block.
    pub(crate) fn init(&self) {
        let h = self.header();
        // Relaxed: the block is published to other processes by the
        // segment's READY store (Release) or by the caller's own protocol.
        h.magic.store(QUEUE_MAGIC, Ordering::Relaxed);
        h.version.store(QUEUE_LAYOUT_VERSION, Ordering::Relaxed);
        h.lanes.store(self.geo.lanes as u64, Ordering::Relaxed);
        h.depth.store(self.geo.depth as u64, Ordering::Relaxed);
        h.max_msg.store(self.geo.max_msg as u64, Ordering::Relaxed);
        h.stride.store(self.geo.stride as u64, Ordering::Relaxed);
    }

    /// Reads and validates the header of a block of `len` bytes at `base`.
    ///
    /// # Safety
    /// `base` must be 128-aligned and valid for `len` bytes for the lifetime
    /// of the returned block.
    pub(crate) unsafe fn attach(base: *mut u8, len: usize, name: &str) -> Result<Block> {
        if len < 256 || base.align_offset(128) != 0 {
            return Err(Error::corrupt(name, "queue block too short or misaligned"));
        }
        // SAFETY: at least 256 bytes, aligned (checked); atomics accept any bits.
        let h = unsafe { &*(base as *const QueueHeader) };
        crate::header::check_block_words(
            name,
            "command queue",
            (&h.magic, QUEUE_MAGIC),
            (&h.version, QUEUE_LAYOUT_VERSION),
        )?;
        let geo = Geometry::new(static_usize(&h.lanes), static_usize(&h.depth), static_usize(&h.max_msg))
            .map_err(|e| Error::corrupt(name, format!("queue header: {e}")))?;
        if geo.depth != static_usize(&h.depth) || geo.stride != static_usize(&h.stride) {
            return Err(Error::corrupt(name, "queue depth or stride inconsistent"));
        }
        if geo.total_len() > len {
            return Err(Error::corrupt(name, "queue extends past its block"));
        }
        Ok(Block { base, geo })
    }
}
