//! Cache-wide statistics and per-entry metadata.
//!
//! Counters are `Relaxed` `fetch_add`s on per-process stripes (cache-padded,
//! picked by pid), summed when read. Relaxed suffices because a counter
//! publishes no other memory: nobody reads data *because* a counter moved,
//! and atomicity alone guarantees no increment is lost. A snapshot taken
//! while others run is therefore not a consistent cut (hits + misses may be
//! momentarily ahead of inserts), but every counter is exact once the writers
//! stop.

use std::time::SystemTime;

use venom_core::loom::sync::Ordering;

use super::KvCache;
use super::clock::{now_ns, to_system_time};
use super::config::GRANULE;
use super::layout::{STATE_LIVE, unpack_block};
use venom_core::seqlock;

/// A snapshot of cache-wide statistics.
///
/// This struct is also the C ABI's `venom_kv_stats` (filled by
/// `venom_kv_get_stats`; venom.h is generated from these fields), so its
/// layout is part of that ABI: a new field goes at the end, no field changes
/// type, and any other change bumps `VENOM_ABI_VERSION`.
#[derive(Clone, Debug, Default, PartialEq)]
#[repr(C)]
pub struct KvStats {
    /// Reads that found an unexpired key.
    pub hits: u64,
    /// Reads that did not.
    pub misses: u64,
    /// Puts of a new key.
    pub inserts: u64,
    /// Puts that replaced a value.
    pub updates: u64,
    /// Explicit deletes (and entries removed by `clear`).
    pub deletes: u64,
    /// Entries evicted by CLOCK.
    pub evictions: u64,
    /// Expired entries reclaimed.
    pub expirations: u64,
    /// Puts rejected because the cache was full (`CacheFull`).
    pub rejects: u64,
    /// Times a writer recovered the cache from a dead lock owner.
    pub recoveries: u64,
    /// Live entries (including expired ones not yet reclaimed).
    pub len: u64,
    /// Entry capacity.
    pub max_entries: u64,
    /// Bytes of the data region.
    pub data_bytes: u64,
    /// Bytes in allocated blocks.
    pub used_bytes: u64,
    /// `data_bytes - used_bytes`.
    pub free_bytes: u64,
    /// Sum of stored value lengths.
    pub value_bytes: u64,
    /// Largest value that fits without evicting (one free block).
    pub largest_free_block: u64,
    /// External fragmentation: `1 - largest_free_block / free_bytes` (0 when
    /// all free space is one block).
    pub fragmentation: f64,
    /// Internal waste: `(used_bytes - value_bytes) / used_bytes`, the
    /// rounding of values up to power-of-two blocks.
    pub internal_waste: f64,
}

impl KvStats {
    /// `hits / (hits + misses)`, or 0 before any read.
    pub fn hit_rate(&self) -> f64 {
        let total = self.hits + self.misses;
        if total == 0 { 0.0 } else { self.hits as f64 / total as f64 }
    }
}

/// Metadata of one entry (no value bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryMeta {
    /// The key.
    pub key: Vec<u8>,
    /// Length of the value.
    pub value_len: usize,
    /// When the key was inserted (updates keep it).
    pub created_at: SystemTime,
    /// Last read or write (resolution 1–4 ms).
    pub last_access: SystemTime,
    /// Reads since insertion.
    pub access_count: u64,
    /// Seqlock version of the entry slot: changes on every write, even
    /// across different keys that reused the slot.
    pub version: u64,
    /// When the entry expires, if it has a TTL.
    pub expires_at: Option<SystemTime>,
    /// Monotonic ns of `last_access` (for exact ordering).
    pub(crate) last_access_ns: u64,
}

impl KvCache {
    /// A snapshot of the statistics.
    pub fn stats(&self) -> KvStats {
        let mut s = KvStats::default();
        for st in &self.header().stripes {
            // Relaxed: see the module docs.
            s.hits = s.hits.wrapping_add(st.hits.load(Ordering::Relaxed));
            s.misses = s.misses.wrapping_add(st.misses.load(Ordering::Relaxed));
            s.inserts = s.inserts.wrapping_add(st.inserts.load(Ordering::Relaxed));
            s.updates = s.updates.wrapping_add(st.updates.load(Ordering::Relaxed));
            s.deletes = s.deletes.wrapping_add(st.deletes.load(Ordering::Relaxed));
            s.evictions = s.evictions.wrapping_add(st.evictions.load(Ordering::Relaxed));
            s.expirations = s.expirations.wrapping_add(st.expirations.load(Ordering::Relaxed));
            s.rejects = s.rejects.wrapping_add(st.rejects.load(Ordering::Relaxed));
        }
        let g = &self.header().gauges;
        s.recoveries = g.recoveries.load(Ordering::Relaxed);
        s.len = g.len.load(Ordering::Relaxed);
        s.max_entries = self.layout.max_entries as u64;
        s.data_bytes = (self.layout.data_granules * GRANULE) as u64;
        s.used_bytes = g.used_bytes.load(Ordering::Relaxed).min(s.data_bytes);
        s.free_bytes = s.data_bytes - s.used_bytes;
        s.value_bytes = g.value_bytes.load(Ordering::Relaxed);
        // The tree root is written by the lock holder; a racy read is fine
        // for a statistic (it is one relaxed byte load).
        s.largest_free_block = self.tree().largest_free().min(s.free_bytes);
        if s.free_bytes > 0 {
            s.fragmentation = 1.0 - s.largest_free_block as f64 / s.free_bytes as f64;
        }
        if s.used_bytes > 0 {
            s.internal_waste = s.used_bytes.saturating_sub(s.value_bytes) as f64 / s.used_bytes as f64;
        }
        s
    }

    /// Metadata of entry `e` if it is live and unexpired, read under its
    /// seqlock (a few retries; `None` if a writer keeps it busy).
    fn entry_meta(&self, e: usize, now: u64) -> Option<EntryMeta> {
        let head = self.entry(e);
        for _ in 0..64 {
            let Some(v) = seqlock::try_read_begin(&head.version) else {
                venom_core::loom::spin_hint();
                continue;
            };
            // Relaxed loads, validated below.
            let (_, _, state) = unpack_block(head.block.load(Ordering::Relaxed));
            let lens = head.lens.load(Ordering::Relaxed);
            let exp = head.expires_at.load(Ordering::Relaxed);
            let key_len = ((lens & 0xFFFF_FFFF) as usize).min(self.layout.max_key_len);
            let key = self.stored_key(e, key_len);
            let (created, last) = (head.created_at.load(Ordering::Relaxed), head.last_access.load(Ordering::Relaxed));
            let count = head.access_count.load(Ordering::Relaxed);
            if !seqlock::read_validate(&head.version, v) {
                continue;
            }
            if state != STATE_LIVE || (exp != 0 && now >= exp) {
                return None;
            }
            return Some(EntryMeta {
                key,
                value_len: (lens >> 32) as usize,
                created_at: to_system_time(created),
                last_access: to_system_time(last),
                access_count: count,
                version: v,
                expires_at: (exp != 0).then(|| to_system_time(exp)),
                last_access_ns: last,
            });
        }
        None
    }

    /// Iterates over the metadata of every live, unexpired entry (a scan of
    /// the entry table: O(max_entries), for analytics, not for hot paths).
    pub fn entries(&self) -> impl Iterator<Item = EntryMeta> + '_ {
        let now = now_ns();
        (0..self.layout.max_entries).filter_map(move |e| self.entry_meta(e, now))
    }

    /// The `n` entries with the highest access counts, highest first.
    pub fn top_by_access_count(&self, n: usize) -> Vec<EntryMeta> {
        self.top_by(n, |m| (m.access_count, m.last_access_ns))
    }

    /// The `n` most recently accessed entries, most recent first.
    pub fn top_by_recency(&self, n: usize) -> Vec<EntryMeta> {
        self.top_by(n, |m| (m.last_access_ns, m.access_count))
    }

    fn top_by(&self, n: usize, key: impl Fn(&EntryMeta) -> (u64, u64)) -> Vec<EntryMeta> {
        let mut all: Vec<EntryMeta> = self.entries().collect();
        let cmp = |a: &EntryMeta, b: &EntryMeta| key(b).cmp(&key(a));
        if n < all.len() {
            all.select_nth_unstable_by(n, cmp);
            all.truncate(n);
        }
        all.sort_by(cmp);
        all
    }
}
