//! Shared-memory layout of a cache segment body.
//!
//! ```text
//! KvHeader    (6 × 128 B)  geometry (immutable), writer lock, gauges, journal,
//!                          then STRIPES cache-padded stats stripes
//! index       index_slots × u64   open addressing, linear probing
//! entries     max_entries × stride EntryHead + inline key words
//! tree        buddy tree, one byte per node, 2 × leaves nodes
//! data        data_granules × 64 B value blocks
//! ```
//! Every region starts on a 128-byte boundary. All fields are atomics
//! because other processes read and write them concurrently.

use crossbeam_utils::CachePadded;
use venom_core::loom::sync::AtomicU64;

use super::config::{Eviction, GRANULE, KvConfig, MAX_DATA_BYTES, MAX_ENTRIES_LIMIT, MAX_KEY_LEN_LIMIT, largest_block};
use crate::error::{Error, Result};

/// `b"VENOMKV1"`: the body of a KV_CACHE segment starts with this.
pub const KV_MAGIC: u64 = u64::from_le_bytes(*b"VENOMKV1");
/// Number of stats stripes (a process picks one by pid, so processes rarely
/// share a counter cache line).
pub const STRIPES: usize = 16;

/// Immutable geometry, written by the creator before the segment is
/// published READY and never changed afterwards.
#[repr(C, align(128))]
pub(crate) struct Geometry {
    pub magic: AtomicU64,
    pub max_entries: AtomicU64,
    pub max_key_len: AtomicU64,
    pub max_value_len: AtomicU64,
    pub data_granules: AtomicU64,
    pub eviction: AtomicU64,
    /// 0 = no default TTL.
    pub default_ttl_ns: AtomicU64,
    /// Per-segment hash seed, random at creation.
    pub hash_seed: AtomicU64,
}

/// Writer lock and index epoch.
#[repr(C, align(128))]
pub(crate) struct LockLine {
    /// Packed [`ProcessId`](venom_core::ProcessId) of the writer holding the
    /// lock; 0 = free. Acquired by CAS (Acquire), released by store (Release).
    pub owner: AtomicU64,
    /// Futex word bumped by an unlock that found `contended` set.
    /// (`core` atomic: a futex word is not modelled by loom.)
    pub wake_seq: core::sync::atomic::AtomicU32,
    /// Set by a waiter before it sleeps; cleared (and waiters woken) by the
    /// next unlock. A waiter that dies leaves at most one spurious wake.
    pub contended: core::sync::atomic::AtomicU32,
    /// Seqlock over the index: odd while a writer rebuilds it. Readers
    /// validate a *miss* against it (hits are validated by the entry).
    pub index_epoch: AtomicU64,
}

/// Gauges maintained by the lock holder (readers load them Relaxed for
/// statistics only).
#[repr(C, align(128))]
pub(crate) struct Gauges {
    pub len: AtomicU64,
    /// Bytes of allocated blocks.
    pub used_bytes: AtomicU64,
    /// Sum of live value lengths.
    pub value_bytes: AtomicU64,
    /// Non-empty index slots (live + tombstones).
    pub index_used: AtomicU64,
    /// Head of the free-entry list (u32::MAX = empty).
    pub free_head: AtomicU64,
    pub clock_hand: AtomicU64,
    /// Lower bound of every live entry's expiry (u64::MAX = none).
    pub min_expires: AtomicU64,
    pub recoveries: AtomicU64,
}

/// Undo record for the one entry a writer may be modifying.
#[repr(C, align(128))]
pub(crate) struct Journal {
    /// entry index + 1 while an entry mutation is in progress, else 0.
    pub active: AtomicU64,
    /// Image of EntryHead words 1..=8 before the mutation.
    pub image: [AtomicU64; 8],
}

/// One stats stripe; summed over all stripes when read.
#[repr(C)]
#[derive(Default)]
pub(crate) struct Stripe {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub inserts: AtomicU64,
    pub updates: AtomicU64,
    pub deletes: AtomicU64,
    pub evictions: AtomicU64,
    pub expirations: AtomicU64,
    pub rejects: AtomicU64,
}

/// The header at the start of the body.
#[repr(C)]
pub(crate) struct KvHeader {
    pub geo: Geometry,
    pub lock: LockLine,
    pub gauges: Gauges,
    pub journal: Journal,
    pub stripes: [CachePadded<Stripe>; STRIPES],
}

pub(crate) const HEADER_BYTES: usize = core::mem::size_of::<KvHeader>();
const _: () = assert!(HEADER_BYTES % 128 == 0);

/// Index slot value of a never-used slot.
pub(crate) const SLOT_EMPTY: u64 = 0;
/// Index slot value of a deleted slot (probing continues past it).
pub(crate) const SLOT_TOMB: u64 = u64::MAX;

/// Per-entry header, followed in memory by `ceil(max_key_len / 8)` key words.
///
/// Invariants: `version` is odd exactly while the lock holder modifies words
/// 1..=8 (seqlock); `block` encodes `granule | order << 32 | state << 40`
/// (order [`NO_BLOCK`] for empty values); a FREE entry's granule field links
/// the free-entry list. `last_access`, `access_count` and `referenced` are
/// written by readers too (statistics, not covered by the seqlock).
#[repr(C)]
pub(crate) struct EntryHead {
    pub version: AtomicU64,
    pub hash: AtomicU64,
    /// `key_len | value_len << 32`.
    pub lens: AtomicU64,
    pub block: AtomicU64,
    /// Monotonic ns; 0 = never expires.
    pub expires_at: AtomicU64,
    pub created_at: AtomicU64,
    pub last_access: AtomicU64,
    pub access_count: AtomicU64,
    /// CLOCK reference bit (0/1).
    pub referenced: AtomicU64,
}

pub(crate) const ENTRY_HEAD_BYTES: usize = core::mem::size_of::<EntryHead>();
pub(crate) const STATE_FREE: u64 = 0;
pub(crate) const STATE_LIVE: u64 = 1;
/// `order` of an entry without a data block (empty value).
pub(crate) const NO_BLOCK: u64 = 0xFF;
pub(crate) const NIL: u64 = u32::MAX as u64;

/// Packs a block word.
pub(crate) fn pack_block(granule: u64, order: u64, state: u64) -> u64 {
    (granule & 0xFFFF_FFFF) | (order & 0xFF) << 32 | (state & 0xFF) << 40
}

/// Unpacks a block word into `(granule, order, state)`.
pub(crate) fn unpack_block(w: u64) -> (u64, u64, u64) {
    (w & 0xFFFF_FFFF, (w >> 32) & 0xFF, (w >> 40) & 0xFF)
}

/// Byte offsets of every region, derived from the geometry alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Maximum live entries.
    pub max_entries: usize,
    /// Index slots (power of two, ≥ 2 × max_entries).
    pub index_slots: usize,
    /// Bytes per entry (head + key words).
    pub stride: usize,
    /// Longest key.
    pub max_key_len: usize,
    /// Longest value.
    pub max_value_len: usize,
    /// 64-byte granules in the data region.
    pub data_granules: usize,
    /// Leaves of the buddy tree (power of two ≥ data_granules).
    pub leaves: usize,
    /// Offset of the index.
    pub index_off: usize,
    /// Offset of the entry table.
    pub entries_off: usize,
    /// Offset of the buddy tree.
    pub tree_off: usize,
    /// Offset of the data region.
    pub data_off: usize,
    /// Total body length.
    pub body_len: usize,
    /// Eviction policy.
    pub eviction: Eviction,
}

fn align128(x: usize) -> usize {
    x.div_ceil(128) * 128
}

impl Layout {
    /// Computes the layout for raw geometry values, rejecting anything out of
    /// range (used on create and, with values read from a segment, on open).
    pub fn new(
        max_entries: u64,
        max_key_len: u64,
        max_value_len: u64,
        data_granules: u64,
        eviction: u64,
    ) -> Result<Layout> {
        let bad = |m: &str| Err(Error::Corrupt(format!("kv geometry: {m}")));
        if max_entries == 0 || max_entries > MAX_ENTRIES_LIMIT as u64 {
            return bad("max_entries out of range");
        }
        if max_key_len == 0 || max_key_len > MAX_KEY_LEN_LIMIT as u64 {
            return bad("max_key_len out of range");
        }
        if data_granules == 0 || data_granules > (MAX_DATA_BYTES / GRANULE) as u64 {
            return bad("data size out of range");
        }
        let (max_entries, max_key_len, data_granules) =
            (max_entries as usize, max_key_len as usize, data_granules as usize);
        if max_value_len > largest_block(data_granules) as u64 {
            return bad("max_value_len larger than the data region");
        }
        let Some(eviction) = Eviction::from_code(eviction) else { return bad("unknown eviction policy") };
        let index_slots = (2 * max_entries).next_power_of_two();
        let stride = ENTRY_HEAD_BYTES + max_key_len.div_ceil(8) * 8;
        let leaves = data_granules.next_power_of_two();
        let index_off = HEADER_BYTES;
        let entries_off = align128(index_off + index_slots * 8);
        let tree_off = align128(entries_off + max_entries * stride);
        let data_off = align128(tree_off + super::alloc::tree_bytes(leaves));
        let body_len = data_off + data_granules * GRANULE;
        Ok(Layout {
            max_entries,
            index_slots,
            stride,
            max_key_len,
            max_value_len: max_value_len as usize,
            data_granules,
            leaves,
            index_off,
            entries_off,
            tree_off,
            data_off,
            body_len,
            eviction,
        })
    }

    /// Layout for a validated config.
    pub(crate) fn for_config(cfg: &KvConfig) -> Result<Layout> {
        cfg.validate()?;
        Layout::new(
            cfg.max_entries as u64,
            cfg.max_key_len as u64,
            cfg.max_value_len as u64,
            cfg.data_bytes.div_ceil(GRANULE) as u64,
            cfg.eviction.code(),
        )
        .map_err(|e| Error::InvalidConfig(e.to_string()))
    }

    /// Validates the geometry words at the start of a cache body (as raw
    /// little-endian bytes) against the body length. This is what
    /// [`KvCache::open`](super::KvCache::open) checks; exposed for fuzzing.
    pub fn from_body_bytes(bytes: &[u8], body_len: usize) -> Result<Layout> {
        let word = |i: usize| -> Result<u64> {
            let b = bytes.get(i * 8..i * 8 + 8).ok_or_else(|| Error::Corrupt("kv header truncated".into()))?;
            Ok(u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
        };
        if word(0)? != KV_MAGIC {
            return Err(Error::Corrupt("bad kv magic".into()));
        }
        let layout = Layout::new(word(1)?, word(2)?, word(3)?, word(4)?, word(5)?)?;
        if layout.body_len != body_len {
            return Err(Error::Corrupt(format!(
                "kv geometry needs a {}-byte body, segment has {body_len}",
                layout.body_len
            )));
        }
        Ok(layout)
    }
}
