//! Rebuilding everything derived from the entry table: the free-entry list,
//! the buddy tree, the gauges and the index. Runs at creation, after
//! [`KvCache::clear`] and when a writer steals the lock from a dead owner.
//! Entries that fail validation (impossible fields, overlapping blocks) are
//! dropped rather than trusted, so a corrupt table degrades to a smaller
//! cache instead of out-of-bounds accesses.

use venom_core::loom::sync::Ordering;

use super::KvCache;
use super::config::GRANULE;
use super::layout::{NIL, NO_BLOCK, STATE_FREE, STATE_LIVE, pack_block, unpack_block};
use crate::error::Result;
use crate::hash::{HashSeed, seeded_hash};
use venom_core::seqlock;

impl KvCache {
    /// Lock held (or segment not yet published).
    pub(crate) fn rebuild_derived(&self) -> Result<()> {
        let n = self.layout.max_entries;
        // (granule, order, entry) of every plausible live block.
        let mut blocks: Vec<(u64, u64, usize)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for e in 0..n {
            let head = self.entry(e);
            // Relaxed: lock held; the previous owner is dead or was us.
            let v = head.version.load(Ordering::Relaxed);
            if v & 1 == 1 {
                // Only possible in a corrupt table (the journal covers the one
                // legitimate case): drop the entry.
                head.version.store(v.wrapping_add(1), Ordering::Relaxed);
                self.drop_entry(e);
                continue;
            }
            let (granule, order, state) = unpack_block(head.block.load(Ordering::Relaxed));
            if state != STATE_LIVE {
                continue;
            }
            let lens = head.lens.load(Ordering::Relaxed);
            let (key_len, val_len) = ((lens & 0xFFFF_FFFF) as usize, (lens >> 32) as usize);
            let ok = key_len <= self.layout.max_key_len
                && val_len <= self.layout.max_value_len
                && if order == NO_BLOCK {
                    val_len == 0
                } else {
                    order < 32
                        && granule % (1 << order) == 0
                        && granule as usize + (1usize << order) <= self.layout.data_granules
                        && val_len <= GRANULE << order
                };
            // The stored hash must be the key's hash (else lookups could
            // never find it) and keys must be unique.
            let ok = ok && {
                let key = self.stored_key(e, key_len);
                head.hash.load(Ordering::Relaxed) == seeded_hash(HashSeed::keyed(self.seed), &key) && seen.insert(key)
            };
            if !ok {
                self.drop_entry(e);
            } else if order != NO_BLOCK {
                blocks.push((granule, order, e));
            }
        }
        blocks.sort_unstable();
        let mut end = 0u64;
        blocks.retain(|&(g, order, e)| {
            if g < end {
                self.drop_entry(e);
                return false;
            }
            end = g + (1 << order);
            true
        });
        self.tree().rebuild(blocks.iter().map(|&(g, o, _)| (g, o)));

        let (mut len, mut value_bytes, mut min_exp, mut free_head) = (0u64, 0u64, u64::MAX, NIL);
        for e in (0..n).rev() {
            let head = self.entry(e);
            let (_, _, state) = unpack_block(head.block.load(Ordering::Relaxed));
            if state == STATE_LIVE {
                len += 1;
                value_bytes += head.lens.load(Ordering::Relaxed) >> 32;
                let exp = head.expires_at.load(Ordering::Relaxed);
                if exp != 0 {
                    min_exp = min_exp.min(exp);
                }
            } else {
                // A FREE entry's block word only links the free list; readers
                // reject FREE entries whatever the link says.
                head.block.store(pack_block(free_head, 0, STATE_FREE), Ordering::Relaxed);
                free_head = e as u64;
            }
        }
        let used: u64 = blocks.iter().map(|&(_, o, _)| (GRANULE as u64) << o).sum();
        let g = &self.header().gauges;
        g.len.store(len, Ordering::Relaxed);
        g.value_bytes.store(value_bytes, Ordering::Relaxed);
        g.used_bytes.store(used, Ordering::Relaxed);
        g.min_expires.store(min_exp, Ordering::Relaxed);
        g.free_head.store(free_head, Ordering::Relaxed);
        if g.clock_hand.load(Ordering::Relaxed) >= n as u64 {
            g.clock_hand.store(0, Ordering::Relaxed);
        }
        self.rebuild_index();
        Ok(())
    }

    /// The first `len` bytes of entry `e`'s key (lock held).
    pub(crate) fn stored_key(&self, e: usize, len: usize) -> Vec<u8> {
        let mut key = Vec::with_capacity(len.div_ceil(8) * 8);
        for w in 0..len.div_ceil(8) {
            // Relaxed: lock held, or validated by the caller's seqlock.
            key.extend_from_slice(&self.key_word(e, w).load(Ordering::Relaxed).to_le_bytes());
        }
        key.truncate(len);
        key
    }

    /// Marks entry `e` FREE under its seqlock (recovery only).
    fn drop_entry(&self, e: usize) {
        let head = self.entry(e);
        let v = seqlock::write_begin(&head.version);
        head.block.store(pack_block(NIL, 0, STATE_FREE), Ordering::Relaxed);
        seqlock::write_end(&head.version, v);
    }
}
