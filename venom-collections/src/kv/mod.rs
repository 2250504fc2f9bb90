//! `KvCache`: a shared-memory key-value cache with access statistics.
//!
//! Many processes map the same segment. Reads are lock-free: an O(1) probe of
//! a seeded open-addressing index leads to an entry whose per-entry seqlock
//! validates the key and the value copied out of a buddy-allocated block.
//! Writers serialise on a crash-safe lock word that holds the owner's
//! [`ProcessId`](venom_core::ProcessId); a waiter that finds the owner dead
//! steals the lock, rolls back the one entry the owner may have been
//! modifying (undo journal in the header) and rebuilds the derived structures
//! (index, free lists, allocator, gauges) from the entry table.
//!
//! ```
//! use venom_collections::{KvCache, KvConfig, Eviction};
//! let name = format!("doc-kv-{}", std::process::id());
//! let cache = KvCache::create(&name, KvConfig { eviction: Eviction::Clock, ..KvConfig::default() })?;
//! cache.put(b"user:1", b"alice")?;
//! let other = KvCache::open(&name)?; // normally in another process
//! assert_eq!(other.get(b"user:1")?.as_deref(), Some(&b"alice"[..]));
//! let mut buf = [0u8; 16];
//! assert_eq!(other.get_into(b"user:1", &mut buf)?, Some(5));
//! assert_eq!(other.get_with(b"user:1", |v| v.len())?, Some(5));
//! assert!(cache.delete(b"user:1")?);
//! assert_eq!(cache.stats().hits, 3);
//! cache.unlink()?;
//! # Ok::<(), venom_collections::Error>(())
//! ```
//!
//! Crash semantics: a writer killed at any point leaves each entry either as
//! it was or fully updated; a killed `put` is all-or-nothing (entries it
//! evicted to make room stay evicted). Recovery runs in whichever process next
//! needs the lock (a writer, or a reader stuck on the half-written entry).
//!
//! Limits (honestly):
//! * keys up to `max_key_len` (≤ 4096) bytes, stored inline in the entry
//!   table; values up to `max_value_len`, in power-of-two blocks of at least
//!   64 bytes (up to 2× space for unlucky sizes, reported as `internal_waste`);
//! * writers are serialised by one lock: put throughput does not scale with
//!   processes; a writer that stops while holding the lock (SIGSTOP, a
//!   debugger) makes other writers time out after 5 s and readers of the one
//!   entry it was writing after 2 s ([`Error::Timeout`]);
//! * access statistics (`access_count`, `last_access`, the CLOCK bit) are
//!   updated after a validated read and may be attributed to a new occupant
//!   if the entry is replaced in that instant; timestamps have the coarse
//!   monotonic clock's 1–4 ms resolution;
//! * expired entries are invisible at once but reclaimed lazily (when space is
//!   needed, on a put of the same key, or by [`KvCache::purge_expired`]), and
//!   `len()` counts them until then; `clear` is not atomic as a whole;
//! * `entries()`, `top_by_*`, `clear` and reclaiming expired entries scan the
//!   entry table (O(max_entries)); lookups and deletes never do, and a put
//!   only when it needs space and the earliest recorded expiry has passed;
//! * a handle must not be used across `fork()`; open a new one in the child.

mod alloc;
mod clock;
mod config;
mod index;
mod layout;
mod lock;
mod read;
mod recover;
mod stats;
mod write;

use std::time::Duration;

use venom_core::loom::sync::{AtomicU32, AtomicU64, Ordering};
use venom_core::{Segment, SegmentKind};

pub use config::{Eviction, KvConfig, MAX_DATA_BYTES, MAX_ENTRIES_LIMIT, MAX_KEY_LEN_LIMIT};
pub use layout::Layout as KvLayout;
pub use lock::set_pause_hook;
pub use stats::{EntryMeta, KvStats};

use crate::error::{Error, Result};
use alloc::BuddyTree;
use layout::{EntryHead, KvHeader};

/// A handle to a shared-memory key-value cache. `Send + Sync`: open it once
/// per process and share it between threads (e.g. behind an `Arc`).
///
/// ```
/// use std::time::Duration;
/// use venom_collections::{Eviction, KvCache, KvConfig};
/// let name = format!("doc-kvcache-{}", std::process::id());
/// let cfg = KvConfig { max_entries: 1000, data_bytes: 1 << 20, eviction: Eviction::Clock, ..KvConfig::default() };
/// let mut cache = KvCache::create(&name, cfg)?;
/// cache.set_unlink_on_drop(true);
/// cache.put_with_ttl(b"session:7", b"token", Duration::from_secs(60))?;
/// assert!(cache.contains(b"session:7")?);
/// let hot = cache.top_by_access_count(10);
/// assert_eq!(hot[0].key, b"session:7");
/// assert_eq!(cache.stats().inserts, 1);
/// # Ok::<(), venom_collections::Error>(())
/// ```
pub struct KvCache {
    /// `None` only while the creator initialises the body.
    seg: Option<Segment>,
    /// First byte of the body (128-byte aligned), valid while `seg` lives.
    base: *mut u8,
    layout: KvLayout,
    seed: u64,
    default_ttl_ns: u64,
    /// Stats stripe used by this process.
    stripe: usize,
    /// This process's packed `ProcessId`, the writer-lock value. Sampled at
    /// open: a handle must not be used across `fork()` (open a new one).
    me: u64,
}

// SAFETY: all shared state is accessed through atomics or atomic_copy; the
// handle holds only the mapping and immutable copies of the geometry.
unsafe impl Send for KvCache {}
// SAFETY: as above; every method takes &self and synchronises through the
// shared-memory protocols (seqlocks, the writer lock).
unsafe impl Sync for KvCache {}

impl std::fmt::Debug for KvCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvCache").field("name", &self.name()).field("layout", &self.layout).finish()
    }
}

impl KvCache {
    /// Creates a cache segment named `name` (mode `cfg.mode`, default 0600).
    /// Fails with [`Error::InvalidConfig`] for a bad config and with
    /// `Error::Core(AlreadyExists)` if a live process owns the name.
    pub fn create(name: &str, cfg: KvConfig) -> Result<KvCache> {
        let layout = KvLayout::for_config(&cfg)?;
        let seed = crate::hash::fresh_seed();
        let ttl = match cfg.default_ttl {
            Some(t) => config::ttl_nanos(t)?,
            None => 0,
        };
        let mut init_err = None;
        let seg =
            Segment::builder(name, SegmentKind::KV_CACHE).body_len(layout.body_len).mode(cfg.mode).create_with(|seg| {
                let cache =
                    KvCache { seg: None, base: seg.body_ptr(), layout, seed, default_ttl_ns: ttl, stripe: 0, me: 0 };
                if let Err(e) = cache.initialise(&cfg) {
                    init_err = Some(e);
                    return Err(venom_core::Error::InvalidConfig("kv initialisation failed".into()));
                }
                Ok(())
            });
        let seg = match (seg, init_err) {
            (_, Some(e)) => return Err(e),
            (s, None) => s?,
        };
        let base = seg.body_ptr();
        Ok(KvCache { seg: Some(seg), base, layout, seed, default_ttl_ns: ttl, stripe: stripe_for_pid(), me: me() })
    }

    /// Opens an existing cache, validating its geometry against the segment.
    pub fn open(name: &str) -> Result<KvCache> {
        let seg = Segment::open(name, SegmentKind::KV_CACHE)?;
        if seg.body_len() < layout::HEADER_BYTES {
            return Err(Error::Corrupt(format!("kv segment body of {} bytes is too short", seg.body_len())));
        }
        // SAFETY: the body is at least HEADER_BYTES long and 128-byte aligned;
        // KvHeader consists of atomics, valid for any bit pattern.
        let h = unsafe { &*(seg.body_ptr() as *const KvHeader) };
        let g = &h.geo;
        // Relaxed: the geometry was written before the segment was published
        // READY, and Segment::open acquired that publication.
        let words = [&g.magic, &g.max_entries, &g.max_key_len, &g.max_value_len, &g.data_granules, &g.eviction]
            .map(|w| w.load(Ordering::Relaxed));
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        let layout = KvLayout::from_body_bytes(&bytes, seg.body_len())?;
        let seed = g.hash_seed.load(Ordering::Relaxed);
        let default_ttl_ns = g.default_ttl_ns.load(Ordering::Relaxed).min(u64::MAX / 4);
        let base = seg.body_ptr();
        Ok(KvCache { seg: Some(seg), base, layout, seed, default_ttl_ns, stripe: stripe_for_pid(), me: me() })
    }

    fn initialise(&self, cfg: &KvConfig) -> Result<()> {
        let g = &self.header().geo;
        let l = &self.layout;
        // Relaxed everywhere: the segment is published READY (Release) only
        // after this returns.
        for (w, v) in [
            (&g.magic, layout::KV_MAGIC),
            (&g.max_entries, l.max_entries as u64),
            (&g.max_key_len, l.max_key_len as u64),
            (&g.max_value_len, l.max_value_len as u64),
            (&g.data_granules, l.data_granules as u64),
            (&g.eviction, cfg.eviction.code()),
            (&g.default_ttl_ns, self.default_ttl_ns),
            (&g.hash_seed, self.seed),
        ] {
            w.store(v, Ordering::Relaxed);
        }
        self.rebuild_derived()
    }

    /// Removes the name from `/dev/shm`; mapped handles stay usable.
    pub fn unlink(&self) -> Result<()> {
        match &self.seg {
            Some(seg) => Ok(seg.unlink()?),
            None => Ok(()),
        }
    }

    /// Unlink the name when this handle is dropped.
    pub fn set_unlink_on_drop(&mut self, yes: bool) {
        if let Some(seg) = &mut self.seg {
            seg.set_unlink_on_drop(yes);
        }
    }

    /// The segment name.
    pub fn name(&self) -> &str {
        self.seg.as_ref().map_or("", |s| s.name())
    }

    /// The cache geometry.
    pub fn layout(&self) -> &KvLayout {
        &self.layout
    }

    /// Number of live entries (including expired ones not yet reclaimed).
    pub fn len(&self) -> usize {
        // Relaxed: a statistic; no data is published through it.
        self.header().gauges.len.load(Ordering::Relaxed) as usize
    }

    /// Whether [`KvCache::len`] is zero.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Inserts or replaces `key` with the config's default TTL.
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        crate::object_segment::guarded(self.seg.as_ref(), self.put_unguarded(key, value))
    }

    #[inline]
    fn put_unguarded(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let ttl = (self.default_ttl_ns != 0).then_some(self.default_ttl_ns);
        self.put_inner(key, value, ttl)
    }

    /// Inserts or replaces `key`; the entry expires after `ttl`.
    pub fn put_with_ttl(&self, key: &[u8], value: &[u8], ttl: Duration) -> Result<()> {
        crate::object_segment::guarded(self.seg.as_ref(), self.put_with_ttl_unguarded(key, value, ttl))
    }

    #[inline]
    fn put_with_ttl_unguarded(&self, key: &[u8], value: &[u8], ttl: Duration) -> Result<()> {
        self.put_inner(key, value, Some(config::ttl_nanos(ttl)?))
    }

    // ---- shared-memory accessors ----

    fn base(&self) -> *mut u8 {
        self.base
    }

    fn header(&self) -> &KvHeader {
        // SAFETY: the body holds a KvHeader at offset 0 (checked at create
        // and open); it is made of atomics and lives as long as `self.seg`.
        unsafe { &*(self.base() as *const KvHeader) }
    }

    fn entry(&self, e: usize) -> &EntryHead {
        debug_assert!(e < self.layout.max_entries);
        // SAFETY: e < max_entries (callers check), so the entry lies inside
        // the entry table computed by the layout; EntryHead is 8-aligned
        // atomics (stride is a multiple of 8, the table 128-aligned).
        unsafe { &*(self.base().add(self.layout.entries_off + e * self.layout.stride) as *const EntryHead) }
    }

    /// Key word `w` of entry `e` (w < ceil(max_key_len / 8)).
    fn key_word(&self, e: usize, w: usize) -> &AtomicU64 {
        let off = self.layout.entries_off + e * self.layout.stride + layout::ENTRY_HEAD_BYTES + w * 8;
        // SAFETY: inside entry `e`'s stride (w < key words), 8-aligned.
        unsafe { &*(self.base().add(off) as *const AtomicU64) }
    }

    fn slot(&self, i: usize) -> &AtomicU64 {
        // SAFETY: callers mask i with index_slots - 1; the index is 8-aligned.
        unsafe { &*(self.base().add(self.layout.index_off + i * 8) as *const AtomicU64) }
    }

    fn tree(&self) -> BuddyTree {
        // SAFETY: the tree region holds tree_bytes(leaves) bytes at tree_off
        // (128-aligned) for the life of the mapping, which outlives the view
        // (it is dropped before `self`).
        unsafe {
            BuddyTree::new(
                self.base().add(self.layout.tree_off) as *const AtomicU32,
                self.layout.leaves,
                self.layout.data_granules,
            )
        }
    }

    /// Pointer to granule `g` of the data region (caller checks bounds).
    fn data_ptr(&self, g: u64) -> *mut u8 {
        // SAFETY: callers check g + block size <= data_granules.
        unsafe { self.base().add(self.layout.data_off + g as usize * config::GRANULE) }
    }

    fn stripe(&self) -> &layout::Stripe {
        &self.header().stripes[self.stripe]
    }
}

fn me() -> u64 {
    venom_core::ProcessId::current().pack()
}

fn stripe_for_pid() -> usize {
    (std::process::id() as usize).wrapping_mul(0x9E37_79B9) >> 7 & (layout::STRIPES - 1)
}

impl KvCache {
    /// Fails with `Error::Core(Truncated)` if the cache's file was shrunk
    /// under this process's mapping. `Result`-returning methods check this
    /// themselves; `len`, `stats` and the top-N queries see a lost mapping
    /// as zeroes, and this tells the two apart.
    pub fn check_mapped(&self) -> Result<()> {
        crate::object_segment::guarded(self.seg.as_ref(), Ok(()))
    }
}
