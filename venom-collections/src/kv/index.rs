//! The hash index: open addressing with linear probing (Peterson 1957) over
//! `index_slots` (a power of two, at least twice `max_entries`) 64-bit
//! slots. A slot holds `tag << 32 | (entry + 1)` where `tag` is the high half
//! of the key hash, [`SLOT_EMPTY`] (ends a probe) or [`SLOT_TOMB`] (a deleted
//! key; probes continue). Only the lock holder writes slots; readers probe
//! without locks and confirm every candidate against the entry's key under
//! the entry seqlock. When live + tombstone slots exceed 3/4 of the index the
//! writer rebuilds it in place under the `index_epoch` seqlock, against which
//! readers validate a miss.

use venom_core::loom::sync::Ordering;

use super::KvCache;
use super::layout::{SLOT_EMPTY, SLOT_TOMB, STATE_LIVE, unpack_block};
use venom_core::seqlock;

/// The slot value for entry `e` with key hash `h`.
pub(crate) fn slot_value(h: u64, e: usize) -> u64 {
    (h >> 32) << 32 | (e as u64 + 1)
}

/// Whether slot value `s` may refer to a key with hash `h`; returns the entry.
pub(crate) fn slot_entry(s: u64, h: u64, max_entries: usize) -> Option<usize> {
    if s == SLOT_EMPTY || s == SLOT_TOMB || s >> 32 != h >> 32 {
        return None;
    }
    let e = (s & 0xFFFF_FFFF) as usize;
    (e >= 1 && e <= max_entries).then(|| e - 1)
}

/// The 8-byte word `w` of `key`, zero padded.
pub(crate) fn key_chunk(key: &[u8], w: usize) -> u64 {
    let mut buf = [0u8; 8];
    let start = (w * 8).min(key.len());
    let end = (start + 8).min(key.len());
    buf[..end - start].copy_from_slice(&key[start..end]);
    u64::from_le_bytes(buf)
}

impl KvCache {
    /// Compares entry `e`'s stored key with `key` (relaxed loads; readers
    /// validate the result with the entry seqlock).
    pub(crate) fn key_matches(&self, e: usize, key: &[u8]) -> bool {
        // Relaxed: covered by the caller's seqlock or by holding the lock.
        let lens = self.entry(e).lens.load(Ordering::Relaxed);
        if (lens & 0xFFFF_FFFF) as usize != key.len() {
            return false;
        }
        (0..key.len().div_ceil(8)).all(|w| self.key_word(e, w).load(Ordering::Relaxed) == key_chunk(key, w))
    }

    /// Writes `key` into entry `e` (inside the entry's seqlock write).
    pub(crate) fn store_key(&self, e: usize, key: &[u8]) {
        for w in 0..key.len().div_ceil(8) {
            // Relaxed: inside write_begin/write_end of entry `e`.
            self.key_word(e, w).store(key_chunk(key, w), Ordering::Relaxed);
        }
    }

    /// Lock holder: the slot and entry holding `key`, if present.
    pub(crate) fn find_locked(&self, key: &[u8], h: u64) -> Option<(usize, usize)> {
        let mask = self.layout.index_slots - 1;
        for i in 0..self.layout.index_slots {
            let slot = (h as usize).wrapping_add(i) & mask;
            // Relaxed: only the lock holder writes slots.
            let s = self.slot(slot).load(Ordering::Relaxed);
            if s == SLOT_EMPTY {
                return None;
            }
            if let Some(e) = slot_entry(s, h, self.layout.max_entries) {
                let (_, _, state) = unpack_block(self.entry(e).block.load(Ordering::Relaxed));
                if state == STATE_LIVE && self.entry(e).hash.load(Ordering::Relaxed) == h && self.key_matches(e, key) {
                    return Some((slot, e));
                }
            }
        }
        None
    }

    /// Lock holder: adds entry `e` (key hash `h`, not yet indexed).
    pub(crate) fn index_insert(&self, h: u64, e: usize) {
        let g = &self.header().gauges;
        // Relaxed: gauges are written only by the lock holder.
        if g.index_used.load(Ordering::Relaxed).saturating_add(1) > (self.layout.index_slots / 4 * 3) as u64 {
            // Rebuild also indexes `e` (it is already LIVE in the table).
            self.rebuild_index();
            return;
        }
        let mask = self.layout.index_slots - 1;
        for i in 0..self.layout.index_slots {
            let slot = (h as usize).wrapping_add(i) & mask;
            let s = self.slot(slot).load(Ordering::Relaxed);
            if s == SLOT_EMPTY || s == SLOT_TOMB {
                if s == SLOT_EMPTY {
                    g.index_used.fetch_add(1, Ordering::Relaxed);
                }
                // Release: a reader that loads this slot (Acquire) also sees
                // the entry's published state.
                self.slot(slot).store(slot_value(h, e), Ordering::Release);
                return;
            }
        }
    }

    /// Lock holder: removes entry `e` (key hash `h`) from the index.
    pub(crate) fn index_remove(&self, h: u64, e: usize) {
        let mask = self.layout.index_slots - 1;
        let want = slot_value(h, e);
        for i in 0..self.layout.index_slots {
            let slot = (h as usize).wrapping_add(i) & mask;
            let s = self.slot(slot).load(Ordering::Relaxed);
            if s == SLOT_EMPTY {
                return;
            }
            if s == want {
                // Relaxed: the entry itself was already retired under its
                // seqlock; a reader reaching it through a stale slot rejects it.
                self.slot(slot).store(SLOT_TOMB, Ordering::Relaxed);
                return;
            }
        }
    }

    /// Lock holder: rebuilds the index from the entry table (drops every
    /// tombstone). Readers that miss during the rebuild retry.
    pub(crate) fn rebuild_index(&self) {
        let lock = &self.header().lock;
        let v = seqlock::write_begin(&lock.index_epoch);
        for i in 0..self.layout.index_slots {
            self.slot(i).store(SLOT_EMPTY, Ordering::Relaxed);
        }
        let mask = self.layout.index_slots - 1;
        let mut used = 0u64;
        for e in 0..self.layout.max_entries {
            let head = self.entry(e);
            let (_, _, state) = unpack_block(head.block.load(Ordering::Relaxed));
            if state != STATE_LIVE {
                continue;
            }
            let h = head.hash.load(Ordering::Relaxed);
            for i in 0..self.layout.index_slots {
                let slot = (h as usize).wrapping_add(i) & mask;
                if self.slot(slot).load(Ordering::Relaxed) == SLOT_EMPTY {
                    self.slot(slot).store(slot_value(h, e), Ordering::Relaxed);
                    used += 1;
                    break;
                }
            }
        }
        self.header().gauges.index_used.store(used, Ordering::Relaxed);
        // write_end's Release publishes the rebuilt slots.
        seqlock::write_end(&lock.index_epoch, v);
    }
}
