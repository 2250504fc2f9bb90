//! Mutations (writer lock held): put, delete, clear, eviction and expiry.
//!
//! A put never writes into a block a reader can reach: the value goes into a
//! freshly allocated block, the entry is switched to it under the entry
//! seqlock, and only then is the old block freed.

use venom_core::loom::sync::Ordering;

use super::KvCache;
use super::alloc::order_for;
use super::clock::now_ns;
use super::config::{Eviction, GRANULE};
use super::layout::{NIL, NO_BLOCK, STATE_FREE, STATE_LIVE, pack_block, unpack_block};
use super::lock::pause_point;
use crate::error::{Error, Result};
use crate::hash::{HashSeed, seeded_hash};
use venom_core::seqlock;

/// Why an entry is removed (selects the statistic).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Removal {
    Deleted,
    Evicted,
    Expired,
}

impl KvCache {
    pub(crate) fn put_inner(&self, key: &[u8], value: &[u8], ttl_ns: Option<u64>) -> Result<()> {
        self.check_key(key)?;
        if value.len() > self.layout.max_value_len {
            return Err(Error::ValueTooLarge { len: value.len(), max: self.layout.max_value_len });
        }
        let h = seeded_hash(HashSeed::keyed(self.seed), key);
        let _guard = self.lock()?;
        let now = now_ns();
        let expires = ttl_ns.map_or(0, |t| now.saturating_add(t));
        let mut existing = self.find_locked(key, h).map(|(_, e)| e);
        if let Some(e) = existing
            && self.is_expired(e, now)
        {
            self.remove_entry(e, Removal::Expired)?;
            existing = None;
        }
        let order = if value.is_empty() { NO_BLOCK } else { order_for(value.len()) };
        let granule = match self.alloc_block(order, existing, now) {
            Ok(g) => g,
            Err(err) => return Err(self.rejected(err)),
        };
        if order != NO_BLOCK {
            seqlock::before_data_write();
            // SAFETY: the block [granule, granule + 2^order) was just
            // allocated inside the data region and holds >= value.len()
            // bytes; stale readers only read it with atomic copies.
            unsafe { venom_core::atomic_copy::store(self.data_ptr(granule), value) };
        }
        pause_point("put:value-written");
        match existing {
            Some(e) => self.publish_update(e, granule, order, value.len(), expires, now)?,
            None => {
                let e = match self.alloc_entry(now) {
                    Ok(e) => e,
                    Err(err) => {
                        self.free_block(granule, order)?;
                        return Err(self.rejected(err));
                    }
                };
                self.publish_insert(e, h, key, granule, order, value.len(), expires, now);
                pause_point("put:published");
                self.index_insert(h, e);
            }
        }
        if expires != 0 {
            self.header().gauges.min_expires.fetch_min(expires, Ordering::Relaxed);
        }
        Ok(())
    }

    fn rejected(&self, err: Error) -> Error {
        if matches!(err, Error::CacheFull) {
            self.stripe().rejects.fetch_add(1, Ordering::Relaxed);
        }
        err
    }

    fn publish_update(&self, e: usize, granule: u64, order: u64, len: usize, expires: u64, now: u64) -> Result<()> {
        let head = self.entry(e);
        // Relaxed loads/stores of entry words: we hold the lock; readers are
        // ordered by the seqlock.
        let (old_g, old_order, _) = unpack_block(head.block.load(Ordering::Relaxed));
        let old_lens = head.lens.load(Ordering::Relaxed);
        self.journal_begin(e);
        let v = seqlock::write_begin(&head.version);
        head.lens.store((old_lens & 0xFFFF_FFFF) | (len as u64) << 32, Ordering::Relaxed);
        head.block.store(pack_block(granule, order, STATE_LIVE), Ordering::Relaxed);
        head.expires_at.store(expires, Ordering::Relaxed);
        head.last_access.store(now, Ordering::Relaxed);
        pause_point("put:inside-update");
        seqlock::write_end(&head.version, v);
        self.journal_end();
        self.free_block(old_g, old_order)?;
        let g = &self.header().gauges;
        g.value_bytes.fetch_add(len as u64, Ordering::Relaxed);
        g.value_bytes.fetch_sub(old_lens >> 32, Ordering::Relaxed);
        self.stripe().updates.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn publish_insert(&self, e: usize, h: u64, key: &[u8], granule: u64, order: u64, len: usize, exp: u64, now: u64) {
        let head = self.entry(e);
        self.journal_begin(e);
        let v = seqlock::write_begin(&head.version);
        head.hash.store(h, Ordering::Relaxed);
        head.lens.store(key.len() as u64 | (len as u64) << 32, Ordering::Relaxed);
        self.store_key(e, key);
        head.expires_at.store(exp, Ordering::Relaxed);
        head.created_at.store(now, Ordering::Relaxed);
        head.last_access.store(now, Ordering::Relaxed);
        head.access_count.store(0, Ordering::Relaxed);
        head.referenced.store(0, Ordering::Relaxed);
        head.block.store(pack_block(granule, order, STATE_LIVE), Ordering::Relaxed);
        pause_point("put:inside-insert");
        seqlock::write_end(&head.version, v);
        self.journal_end();
        let g = &self.header().gauges;
        g.len.fetch_add(1, Ordering::Relaxed);
        g.value_bytes.fetch_add(len as u64, Ordering::Relaxed);
        self.stripe().inserts.fetch_add(1, Ordering::Relaxed);
    }

    /// Removes `key`; returns whether a live (unexpired) entry was removed.
    pub fn delete(&self, key: &[u8]) -> Result<bool> {
        crate::object_segment::guarded(self.seg.as_ref(), self.delete_unguarded(key))
    }

    #[inline]
    fn delete_unguarded(&self, key: &[u8]) -> Result<bool> {
        self.check_key(key)?;
        let h = seeded_hash(HashSeed::keyed(self.seed), key);
        let _guard = self.lock()?;
        let Some((_, e)) = self.find_locked(key, h) else { return Ok(false) };
        if self.is_expired(e, now_ns()) {
            self.remove_entry(e, Removal::Expired)?;
            return Ok(false);
        }
        self.remove_entry(e, Removal::Deleted)?;
        Ok(true)
    }

    /// Removes every entry. Each entry's removal is atomic; a crash part-way
    /// leaves some entries removed.
    pub fn clear(&self) -> Result<()> {
        crate::object_segment::guarded(self.seg.as_ref(), self.clear_unguarded())
    }

    #[inline]
    fn clear_unguarded(&self) -> Result<()> {
        let _guard = self.lock()?;
        for e in 0..self.layout.max_entries {
            let head = self.entry(e);
            let (_, _, state) = unpack_block(head.block.load(Ordering::Relaxed));
            if state == STATE_LIVE {
                self.journal_begin(e);
                let v = seqlock::write_begin(&head.version);
                head.block.store(pack_block(NIL, 0, STATE_FREE), Ordering::Relaxed);
                seqlock::write_end(&head.version, v);
                self.journal_end();
                self.stripe().deletes.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.rebuild_derived()
    }

    /// Reclaims every expired entry now; returns how many.
    pub fn purge_expired(&self) -> Result<usize> {
        crate::object_segment::guarded(self.seg.as_ref(), self.purge_expired_unguarded())
    }

    #[inline]
    fn purge_expired_unguarded(&self) -> Result<usize> {
        let _guard = self.lock()?;
        self.purge_expired_locked(now_ns(), true)
    }

    pub(crate) fn is_expired(&self, e: usize, now: u64) -> bool {
        let exp = self.entry(e).expires_at.load(Ordering::Relaxed);
        exp != 0 && now >= exp
    }

    /// Retires entry `e`: entry first (seqlock), then index, block, gauges.
    pub(crate) fn remove_entry(&self, e: usize, why: Removal) -> Result<()> {
        let head = self.entry(e);
        let g = &self.header().gauges;
        let (granule, order, _) = unpack_block(head.block.load(Ordering::Relaxed));
        let lens = head.lens.load(Ordering::Relaxed);
        let h = head.hash.load(Ordering::Relaxed);
        self.journal_begin(e);
        let v = seqlock::write_begin(&head.version);
        head.block.store(pack_block(g.free_head.load(Ordering::Relaxed), 0, STATE_FREE), Ordering::Relaxed);
        seqlock::write_end(&head.version, v);
        self.journal_end();
        g.free_head.store(e as u64, Ordering::Relaxed);
        self.index_remove(h, e);
        self.free_block(granule, order)?;
        g.len.fetch_sub(1, Ordering::Relaxed);
        g.value_bytes.fetch_sub(lens >> 32, Ordering::Relaxed);
        let s = self.stripe();
        match why {
            Removal::Deleted => s.deletes.fetch_add(1, Ordering::Relaxed),
            Removal::Evicted => s.evictions.fetch_add(1, Ordering::Relaxed),
            Removal::Expired => s.expirations.fetch_add(1, Ordering::Relaxed),
        };
        Ok(())
    }

    fn alloc_block(&self, order: u64, pinned: Option<usize>, now: u64) -> Result<u64> {
        if order == NO_BLOCK {
            return Ok(0);
        }
        loop {
            if let Some(g) = self.tree().alloc(order) {
                // Only a corrupt tree can hand out a block past the data
                // region; never write there.
                if g as usize + (1usize << order) > self.layout.data_granules {
                    return Err(Error::Corrupt(format!("allocator returned block {g}/{order} out of range")));
                }
                self.header().gauges.used_bytes.fetch_add((GRANULE as u64) << order, Ordering::Relaxed);
                return Ok(g);
            }
            if !self.make_room(pinned, now)? {
                return Err(Error::CacheFull);
            }
        }
    }

    fn free_block(&self, granule: u64, order: u64) -> Result<()> {
        if order == NO_BLOCK {
            return Ok(());
        }
        self.tree().free(granule, order)?;
        self.header().gauges.used_bytes.fetch_sub((GRANULE as u64) << order, Ordering::Relaxed);
        Ok(())
    }

    fn alloc_entry(&self, now: u64) -> Result<usize> {
        let g = &self.header().gauges;
        loop {
            let head = g.free_head.load(Ordering::Relaxed);
            if head != NIL && (head as usize) < self.layout.max_entries {
                let (next, _, _) = unpack_block(self.entry(head as usize).block.load(Ordering::Relaxed));
                g.free_head.store(next, Ordering::Relaxed);
                return Ok(head as usize);
            }
            if !self.make_room(None, now)? {
                return Err(Error::CacheFull);
            }
        }
    }

    /// Frees something: expired entries first, then a CLOCK victim if the
    /// policy allows. Returns whether anything was freed.
    fn make_room(&self, pinned: Option<usize>, now: u64) -> Result<bool> {
        if self.purge_expired_locked(now, false)? > 0 {
            return Ok(true);
        }
        if self.layout.eviction == Eviction::Clock {
            return self.clock_evict(pinned);
        }
        Ok(false)
    }

    /// CLOCK / second chance (Corbató 1968): clear set reference bits until
    /// an entry with a clear bit is found, evict it.
    fn clock_evict(&self, pinned: Option<usize>) -> Result<bool> {
        let g = &self.header().gauges;
        let n = self.layout.max_entries;
        let mut hand = g.clock_hand.load(Ordering::Relaxed) as usize % n;
        for _ in 0..2 * n + 1 {
            let e = hand;
            hand = (hand + 1) % n;
            let head = self.entry(e);
            let (_, _, state) = unpack_block(head.block.load(Ordering::Relaxed));
            if state != STATE_LIVE || pinned == Some(e) {
                continue;
            }
            // Relaxed: the reference bit is a hint set by readers.
            if head.referenced.swap(0, Ordering::Relaxed) != 0 {
                continue;
            }
            g.clock_hand.store(hand as u64, Ordering::Relaxed);
            self.remove_entry(e, Removal::Evicted)?;
            return Ok(true);
        }
        g.clock_hand.store(hand as u64, Ordering::Relaxed);
        Ok(false)
    }

    /// Removes expired entries if the earliest expiry has passed (or
    /// `force`); recomputes the earliest remaining expiry.
    pub(crate) fn purge_expired_locked(&self, now: u64, force: bool) -> Result<usize> {
        let g = &self.header().gauges;
        if !force && g.min_expires.load(Ordering::Relaxed) > now {
            return Ok(0);
        }
        let (mut removed, mut min) = (0, u64::MAX);
        for e in 0..self.layout.max_entries {
            let head = self.entry(e);
            let (_, _, state) = unpack_block(head.block.load(Ordering::Relaxed));
            let exp = head.expires_at.load(Ordering::Relaxed);
            if state != STATE_LIVE || exp == 0 {
                continue;
            }
            if now >= exp {
                self.remove_entry(e, Removal::Expired)?;
                removed += 1;
            } else {
                min = min.min(exp);
            }
        }
        g.min_expires.store(min, Ordering::Relaxed);
        Ok(removed)
    }
}
