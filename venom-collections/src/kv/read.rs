//! The lock-free read path: probe the index, validate the entry and the copied
//! value with the entry seqlock, update access statistics.
//!
//! Readers never take the writer lock. A reader that meets an entry a writer
//! is modifying retries (spin, then yield); after 20 ms it checks whether the
//! lock owner died and, if so, runs recovery itself. A *live* writer stalled
//! in the middle of an entry update (e.g. SIGSTOPped) makes readers of that
//! one key fail with [`Error::Timeout`] after 2 s; other keys are unaffected.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use venom_core::loom::sync::Ordering;

use super::KvCache;
use super::clock::now_ns;
use super::config::GRANULE;
use super::index::slot_entry;
use super::layout::{NO_BLOCK, SLOT_EMPTY, STATE_LIVE, unpack_block};
use crate::error::{Error, Result};
use crate::hash::{HashSeed, seeded_hash};
use venom_core::seqlock;

/// How long a reader keeps retrying an entry that a writer holds odd before
/// checking whether that writer died.
const STALL_CHECK: Duration = Duration::from_millis(20);
/// How long a reader waits for a live writer before giving up.
const READ_TIMEOUT: Duration = Duration::from_secs(2);

/// Result of examining one entry.
enum Look {
    Hit(usize),
    Expired,
    Mismatch,
    /// A writer is modifying the entry (or modified it while we read).
    Busy,
}

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl KvCache {
    /// Copies the value of `key` into `buf`; returns its length, or `None` if
    /// absent. [`Error::BufferTooSmall`] if `buf` is shorter than the value.
    pub fn get_into(&self, key: &[u8], buf: &mut [u8]) -> Result<Option<usize>> {
        crate::object_segment::guarded(self.seg.as_ref(), self.get_into_unguarded(key, buf))
    }

    #[inline]
    fn get_into_unguarded(&self, key: &[u8], buf: &mut [u8]) -> Result<Option<usize>> {
        let mut short = None;
        let got = self.read(key, true, &mut |src, len| {
            short = None;
            match buf.get_mut(..len) {
                // SAFETY: `src` is valid for `len` bytes of the data region
                // (bounds checked by `look`); concurrent writers use atomics.
                Some(dst) => unsafe { venom_core::atomic_copy::load(src, dst) },
                None => short = Some(len),
            }
        })?;
        match (got, short) {
            (Some(len), Some(_)) => Err(Error::BufferTooSmall { needed: len, got: buf.len() }),
            (got, _) => Ok(got),
        }
    }

    /// Returns a copy of the value of `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        crate::object_segment::guarded(self.seg.as_ref(), self.get_unguarded(key))
    }

    #[inline]
    fn get_unguarded(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let mut out = Vec::new();
        let got = self.read(key, true, &mut |src, len| {
            out.resize(len, 0);
            // SAFETY: as in `get_into`.
            unsafe { venom_core::atomic_copy::load(src, &mut out) }
        })?;
        Ok(got.map(|_| out))
    }

    /// Calls `f` with a validated private copy of the value of `key` (a
    /// per-thread buffer, so no allocation in the steady state).
    pub fn get_with<R>(&self, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>> {
        crate::object_segment::guarded(self.seg.as_ref(), self.get_with_unguarded(key, f))
    }

    #[inline]
    fn get_with_unguarded<R>(&self, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>> {
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut buf) => self.get_with_buf(key, &mut buf, f),
            // Re-entrant call from inside `f`: use a fresh buffer.
            Err(_) => self.get_with_buf(key, &mut Vec::new(), f),
        })
    }

    fn get_with_buf<R>(&self, key: &[u8], buf: &mut Vec<u8>, f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>> {
        let got = self.read(key, true, &mut |src, len| {
            buf.resize(len, 0);
            // SAFETY: as in `get_into`.
            unsafe { venom_core::atomic_copy::load(src, &mut buf[..len]) }
        })?;
        Ok(got.map(|len| f(&buf[..len])))
    }

    /// Whether `key` is present and unexpired. Does not count as an access.
    pub fn contains(&self, key: &[u8]) -> Result<bool> {
        crate::object_segment::guarded(self.seg.as_ref(), self.contains_unguarded(key))
    }

    #[inline]
    fn contains_unguarded(&self, key: &[u8]) -> Result<bool> {
        Ok(self.read(key, false, &mut |_, _| {})?.is_some())
    }

    pub(crate) fn check_key(&self, key: &[u8]) -> Result<()> {
        if key.len() > self.layout.max_key_len {
            return Err(Error::KeyTooLarge { len: key.len(), max: self.layout.max_key_len });
        }
        Ok(())
    }

    /// Looks `key` up; on a hit calls `sink(src, len)` to copy the value
    /// (possibly several times if a writer interferes) and returns the
    /// validated length.
    fn read(&self, key: &[u8], touch: bool, sink: &mut dyn FnMut(*const u8, usize)) -> Result<Option<usize>> {
        self.check_key(key)?;
        let h = seeded_hash(HashSeed::keyed(self.seed), key);
        let mask = self.layout.index_slots - 1;
        let epoch_word = &self.header().lock.index_epoch;
        let mut spins = 0u32;
        let mut stalled_since: Option<Instant> = None;
        'retry: loop {
            if spins > 0 {
                self.read_backoff(&mut spins, &mut stalled_since)?;
            }
            spins += 1;
            let Some(epoch) = seqlock::try_read_begin(epoch_word) else { continue };
            let now = now_ns();
            for i in 0..self.layout.index_slots {
                let slot = (h as usize).wrapping_add(i) & mask;
                // Acquire: see the entry state published before the slot.
                let s = self.slot(slot).load(Ordering::Acquire);
                if s == SLOT_EMPTY {
                    break;
                }
                let Some(e) = slot_entry(s, h, self.layout.max_entries) else { continue };
                match self.look(e, h, key, now, sink)? {
                    Look::Hit(len) => {
                        if touch {
                            self.touch(e, now);
                        }
                        return Ok(Some(len));
                    }
                    Look::Expired => break,
                    Look::Mismatch => {}
                    Look::Busy => continue 'retry,
                }
            }
            if !seqlock::read_validate(epoch_word, epoch) {
                continue;
            }
            if touch {
                // Relaxed: statistics only (see KvStats).
                self.stripe().misses.fetch_add(1, Ordering::Relaxed);
            }
            return Ok(None);
        }
    }

    /// Examines entry `e` under its seqlock.
    fn look(&self, e: usize, h: u64, key: &[u8], now: u64, sink: &mut dyn FnMut(*const u8, usize)) -> Result<Look> {
        let head = self.entry(e);
        let Some(v) = seqlock::try_read_begin(&head.version) else { return Ok(Look::Busy) };
        // Relaxed loads: validated by read_validate below.
        let block = head.block.load(Ordering::Relaxed);
        let (granule, order, state) = unpack_block(block);
        if state != STATE_LIVE || head.hash.load(Ordering::Relaxed) != h || !self.key_matches(e, key) {
            return Ok(if seqlock::read_validate(&head.version, v) { Look::Mismatch } else { Look::Busy });
        }
        let expires = head.expires_at.load(Ordering::Relaxed);
        if expires != 0 && now >= expires {
            return Ok(if seqlock::read_validate(&head.version, v) { Look::Expired } else { Look::Busy });
        }
        let len = (head.lens.load(Ordering::Relaxed) >> 32) as usize;
        let in_bounds = if order == NO_BLOCK {
            len == 0
        } else {
            order < 32
                && granule as usize + (1usize << order) <= self.layout.data_granules
                && len <= GRANULE << order
                && len <= self.layout.max_value_len
        };
        if !in_bounds {
            if seqlock::read_validate(&head.version, v) {
                return Err(Error::Corrupt(format!("entry {e} points outside the data region")));
            }
            return Ok(Look::Busy);
        }
        // An empty value gets a valid (unused) pointer: the data region start.
        sink(self.data_ptr(if len > 0 { granule } else { 0 }), len);
        Ok(if seqlock::read_validate(&head.version, v) { Look::Hit(len) } else { Look::Busy })
    }

    /// Records a validated hit on entry `e`.
    fn touch(&self, e: usize, now: u64) {
        let head = self.entry(e);
        // Relaxed: statistics and the CLOCK hint publish no other data; a
        // stale or lost update only skews analytics or eviction order.
        // Loads before stores keep hot entries' cache lines shared.
        self.stripe().hits.fetch_add(1, Ordering::Relaxed);
        head.access_count.fetch_add(1, Ordering::Relaxed);
        if head.last_access.load(Ordering::Relaxed) != now {
            head.last_access.store(now, Ordering::Relaxed);
        }
        if head.referenced.load(Ordering::Relaxed) == 0 {
            head.referenced.store(1, Ordering::Relaxed);
        }
    }

    /// Waits between read attempts: spin, then yield; after STALL_CHECK of
    /// retrying, recover from a dead writer; after READ_TIMEOUT, give up.
    fn read_backoff(&self, spins: &mut u32, stalled_since: &mut Option<Instant>) -> Result<()> {
        if *spins < 64 {
            venom_core::loom::spin_hint();
            return Ok(());
        }
        std::thread::yield_now();
        let start = *stalled_since.get_or_insert_with(Instant::now);
        if *spins % 64 == 0 && start.elapsed() >= STALL_CHECK {
            if self.recover_if_owner_dead()? {
                *stalled_since = None;
                *spins = 1;
            } else if start.elapsed() >= READ_TIMEOUT {
                return Err(Error::Timeout(READ_TIMEOUT));
            }
        }
        Ok(())
    }
}
