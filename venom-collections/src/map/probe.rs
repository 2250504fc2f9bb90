//! The map algorithm over a slice of words (see the module docs of `map`).

use std::time::Duration;

use bytemuck::Pod;
use venom_core::loom::sync::{AtomicU64, Ordering, fence};

use crate::ctl::{Ctl, pid_alive};
use crate::error::{Error, Result};
use crate::hash::fixed_hash;
use crate::patience::Patience;
use crate::words::{LINE_WORDS, load_elem, store_elem};

pub(crate) const LEN: usize = 0;
pub(crate) const MAX_PROBE: usize = LINE_WORDS;
pub(crate) const HEADER_WORDS: usize = 2 * LINE_WORDS;
/// A reach byte of this value means "farther than a byte can say: use the
/// global `MAX_PROBE`".
pub(crate) const FAR: u64 = 255;

// Stable states.
pub(crate) const EMPTY: u64 = 0;
pub(crate) const OCCUPIED: u64 = 1;
pub(crate) const TOMBSTONE: u64 = 2;
// Busy kinds.
pub(crate) const CLAIMING: u64 = 0;
pub(crate) const KEYED: u64 = 1;
pub(crate) const UPDATING: u64 = 2;

/// What validation of a freshly keyed slot found.
enum Validation {
    /// No other copy of the key: publish.
    Unique,
    /// Another copy wins; wait for `(slot, ctl)` to move (if given), retry.
    Lost(Option<(usize, Ctl)>),
}

/// The algorithm over a slice of words.
pub(crate) struct MapCore<'a> {
    /// `words_needed(mask + 1, kw, vw)` words (checked by the caller).
    pub words: &'a [AtomicU64],
    /// `capacity - 1`, capacity a power of two; every slot index is masked.
    pub mask: u64,
    /// Words per key / per value.
    pub kw: usize,
    pub vw: usize,
    /// Pid recorded in busy control words.
    pub pid: u32,
    /// Bound on every wait for a peer.
    pub stall: Duration,
}

impl<'a> MapCore<'a> {
    pub(crate) fn words_needed(capacity: u64, kw: usize, vw: usize) -> Option<usize> {
        (capacity as usize).checked_mul(1 + kw + vw)?.checked_add(HEADER_WORDS + Self::reach_words(capacity))
    }

    /// Words of reach bytes (one byte per home slot).
    #[inline]
    pub(crate) fn reach_words(capacity: u64) -> usize {
        (capacity as usize).div_ceil(8)
    }

    /// How far from `home` any key with that home slot was ever placed (an
    /// upper bound on the probe length for such keys).
    #[inline]
    pub(crate) fn reach(&self, home: u64, ordering: Ordering) -> u64 {
        let home = home & self.mask;
        let word = self.words[HEADER_WORDS + (home / 8) as usize].load(ordering);
        let r = (word >> ((home % 8) * 8)) & 0xFF;
        if r == FAR { self.words[MAX_PROBE].load(ordering).min(self.mask) } else { r.min(self.mask) }
    }

    /// Raises the reach of `home` to at least `d` (SeqCst: see `validate`).
    pub(crate) fn raise_reach(&self, home: u64, d: u64) {
        if d >= FAR {
            self.words[MAX_PROBE].fetch_max(d, Ordering::SeqCst);
        }
        let home = home & self.mask;
        let word = &self.words[HEADER_WORDS + (home / 8) as usize];
        let shift = (home % 8) * 8;
        let want = d.min(FAR);
        // Relaxed: only the value matters; the CAS below is SeqCst.
        let mut cur = word.load(Ordering::Relaxed);
        while (cur >> shift) & 0xFF < want {
            let new = (cur & !(0xFF << shift)) | (want << shift);
            match word.compare_exchange_weak(cur, new, Ordering::SeqCst, Ordering::Relaxed) {
                Ok(_) => break,
                Err(v) => cur = v,
            }
        }
    }

    #[inline]
    pub(crate) fn slot(&self, i: u64) -> &'a [AtomicU64] {
        let stride = 1 + self.kw + self.vw;
        let at = HEADER_WORDS + Self::reach_words(self.mask + 1) + (i & self.mask) as usize * stride;
        &self.words[at..at + stride]
    }

    #[inline]
    pub(crate) fn home<K: Pod>(k: &K) -> u64 {
        fixed_hash(bytemuck::bytes_of(k))
    }

    /// Seqlock read of the key of a slot whose control word was `c`
    /// (Acquire-loaded by the caller). `None` if the slot changed.
    #[inline]
    pub(crate) fn read_key<K: Pod>(&self, slot: &[AtomicU64], c: Ctl) -> Option<K> {
        let k = load_elem::<K>(&slot[1..1 + self.kw]);
        // Acquire fence: if any word we read was written after `c`, the
        // reload below sees a newer control word (seqlock read side).
        fence(Ordering::Acquire);
        (slot[0].load(Ordering::Relaxed) == c.0).then_some(k)
    }

    /// Seqlock read of key and value.
    #[inline]
    pub(crate) fn read_pair<K: Pod, V: Pod>(&self, slot: &[AtomicU64], c: Ctl) -> Option<(K, V)> {
        let k = load_elem::<K>(&slot[1..1 + self.kw]);
        let v = load_elem::<V>(&slot[1 + self.kw..]);
        // Acquire fence: as in `read_key`.
        fence(Ordering::Acquire);
        (slot[0].load(Ordering::Relaxed) == c.0).then_some((k, v))
    }

    /// Waits until the slot's control word differs from `c`, repairing the
    /// slot if its busy owner died.
    fn wait_slot(&self, slot: &[AtomicU64], c: Ctl, patience: &mut Patience) -> Result<()> {
        loop {
            // Acquire: the caller re-reads the slot after this returns.
            if slot[0].load(Ordering::Acquire) != c.0 {
                return Ok(());
            }
            if c.is_busy() && patience.check_liveness() && !pid_alive(c.pid()) {
                let repaired = Ctl::stable(TOMBSTONE, c.version() + 1);
                // AcqRel: one repairer wins; the tombstone is published.
                if slot[0].compare_exchange(c.0, repaired.0, Ordering::AcqRel, Ordering::Relaxed).is_ok()
                    && c.state() == UPDATING
                {
                    // Relaxed: approximate count; the updated key is gone.
                    self.words[LEN].fetch_sub(1, Ordering::Relaxed);
                }
                return Ok(());
            }
            if !patience.wait() {
                return Err(Error::Timeout(self.stall));
            }
        }
    }

    /// Finds `key`: its slot, the control word of the consistent read, and
    /// the value read with it; `None` when the key is absent. Waits (within
    /// the stall budget) while another thread updates this very key; an
    /// update of another key or an insert not yet visible is passed over.
    #[inline]
    fn find<K: Pod + Eq, V: Pod>(&self, key: &K) -> Result<Option<(&'a [AtomicU64], Ctl, V)>> {
        let h = Self::home(key);
        // Acquire: pairs with the SeqCst fetch_max of inserts that completed
        // before this call.
        let limit = self.reach(h, Ordering::Acquire);
        let mut patience = None;
        for d in 0..=limit {
            let slot = self.slot(h.wrapping_add(d));
            loop {
                // Acquire: seqlock read side (and the expected value of a
                // caller's CAS).
                let c = Ctl(slot[0].load(Ordering::Acquire));
                if c.is_busy() {
                    if c.state() != UPDATING {
                        break; // an insert not yet visible
                    }
                    match self.read_key::<K>(slot, c) {
                        None => continue,
                        Some(k) if k == *key => {
                            let p = patience.get_or_insert_with(|| Patience::new(self.stall));
                            self.wait_slot(slot, c, p)?;
                            continue;
                        }
                        Some(_) => break,
                    }
                }
                match c.state() {
                    EMPTY => return Ok(None),
                    OCCUPIED => match self.read_pair::<K, V>(slot, c) {
                        None => continue,
                        Some((k, v)) if k == *key => return Ok(Some((slot, c, v))),
                        Some(_) => break,
                    },
                    _ => break,
                }
            }
        }
        Ok(None)
    }

    pub(crate) fn get<K: Pod + Eq, V: Pod>(&self, key: &K) -> Result<Option<V>> {
        Ok(self.find::<K, V>(key)?.map(|(_, _, v)| v))
    }

    pub(crate) fn insert<K: Pod + Eq, V: Pod>(&self, key: &K, value: &V) -> Result<Option<V>> {
        let h = Self::home(key);
        let mut patience = Patience::new(self.stall);
        'restart: loop {
            if patience.expired() {
                return Err(Error::Timeout(self.stall));
            }
            // SeqCst: see `validate`.
            let limit = self.reach(h, Ordering::SeqCst);
            let mut free: Option<(u64, Ctl)> = None;
            let mut chain_end = false;
            for d in 0..=self.mask {
                if d > limit && free.is_some() {
                    break;
                }
                let slot = self.slot(h.wrapping_add(d));
                loop {
                    // Acquire: seqlock read side / CAS expected value.
                    let c = Ctl(slot[0].load(Ordering::Acquire));
                    if c.is_busy() {
                        if c.state() == UPDATING {
                            match self.read_key::<K>(slot, c) {
                                None => continue,
                                Some(k) if k == *key => {
                                    self.wait_slot(slot, c, &mut patience)?;
                                    continue 'restart;
                                }
                                Some(_) => {}
                            }
                        }
                        break; // pending inserts are resolved by validation
                    }
                    match c.state() {
                        EMPTY => {
                            free = free.or(Some((d, c)));
                            chain_end = true;
                            break;
                        }
                        OCCUPIED => match self.read_key::<K>(slot, c) {
                            None => continue,
                            Some(k) if k == *key => {
                                if let Some(old) = self.update(slot, c, value) {
                                    return Ok(Some(old));
                                }
                                continue;
                            }
                            Some(_) => break,
                        },
                        _ => {
                            free = free.or(Some((d, c)));
                            break;
                        }
                    }
                }
                if chain_end {
                    break;
                }
            }
            let Some((d, c)) = free else { return Err(Error::Full(self.mask + 1)) };
            let slot = self.slot(h.wrapping_add(d));
            let claimed = Ctl::busy(CLAIMING, self.pid, c.version());
            // Acquire: orders our key writes after the previous occupant's
            // history; failure means someone else took the slot.
            if slot[0].compare_exchange(c.0, claimed.0, Ordering::Acquire, Ordering::Relaxed).is_err() {
                continue;
            }
            // SeqCst: readers and validators must scan at least to `d`.
            self.raise_reach(h, d);
            store_elem(&slot[1..1 + self.kw], key);
            // SeqCst: the "write" half of the validation handshake; also
            // releases the key to validators that see KEYED.
            slot[0].store(Ctl::busy(KEYED, self.pid, c.version()).0, Ordering::SeqCst);
            match self.validate(key, h, d, &mut patience) {
                Ok(Validation::Unique) => {
                    store_elem(&slot[1 + self.kw..], value);
                    // Relaxed: approximate count.
                    self.words[LEN].fetch_add(1, Ordering::Relaxed);
                    // Release: publishes key and value to readers.
                    slot[0].store(Ctl::stable(OCCUPIED, c.version() + 1).0, Ordering::Release);
                    return Ok(None);
                }
                Ok(Validation::Lost(other)) => {
                    // Release: retire our claim as a reusable tombstone.
                    slot[0].store(Ctl::stable(TOMBSTONE, c.version() + 1).0, Ordering::Release);
                    if let Some((i, oc)) = other {
                        self.wait_slot(self.slot(i as u64), oc, &mut patience)?;
                    }
                }
                Err(e) => {
                    slot[0].store(Ctl::stable(TOMBSTONE, c.version() + 1).0, Ordering::Release);
                    return Err(e);
                }
            }
        }
    }

    /// In-place update of an occupied slot; `None` if the CAS lost a race.
    fn update<V: Pod>(&self, slot: &[AtomicU64], c: Ctl, value: &V) -> Option<V> {
        let busy = Ctl::busy(UPDATING, self.pid, c.version());
        // Acquire: we read the old value written by the previous writer.
        slot[0].compare_exchange(c.0, busy.0, Ordering::Acquire, Ordering::Relaxed).ok()?;
        // Release fence: the busy word is ordered before our value writes, so
        // a seqlock reader that sees any new word also sees the word change.
        fence(Ordering::Release);
        let old = load_elem::<V>(&slot[1 + self.kw..]);
        store_elem(&slot[1 + self.kw..], value);
        // Release: publishes the new value.
        slot[0].store(Ctl::stable(OCCUPIED, c.version() + 1).0, Ordering::Release);
        Some(old)
    }

    /// Scans the probe path for another copy of `key` (see module docs).
    fn validate<K: Pod + Eq>(&self, key: &K, h: u64, mine: u64, patience: &mut Patience) -> Result<Validation> {
        // SeqCst: ordered after our KEYED store in the single total order.
        let limit = self.reach(h, Ordering::SeqCst);
        for d in 0..=limit {
            if d == mine {
                continue;
            }
            let at = h.wrapping_add(d) & self.mask;
            let slot = self.slot(at);
            loop {
                // SeqCst: the "read" half of the handshake.
                let c = Ctl(slot[0].load(Ordering::SeqCst));
                if c.is_busy() {
                    if c.state() == CLAIMING {
                        self.wait_slot(slot, c, patience)?;
                        continue;
                    }
                    match self.read_key::<K>(slot, c) {
                        None => continue,
                        Some(k) if k != *key => break,
                        Some(_) if c.state() == UPDATING => return Ok(Validation::Lost(Some((at as usize, c)))),
                        Some(_) if d < mine => return Ok(Validation::Lost(Some((at as usize, c)))),
                        Some(_) => {
                            // A farther competitor: it will see us and yield,
                            // or publish first and we retry as an update.
                            self.wait_slot(slot, c, patience)?;
                            continue;
                        }
                    }
                }
                match c.state() {
                    EMPTY => return Ok(Validation::Unique),
                    OCCUPIED => match self.read_key::<K>(slot, c) {
                        None => continue,
                        Some(k) if k == *key => return Ok(Validation::Lost(None)),
                        Some(_) => break,
                    },
                    _ => break,
                }
            }
        }
        Ok(Validation::Unique)
    }

    pub(crate) fn remove<K: Pod + Eq, V: Pod>(&self, key: &K) -> Result<Option<V>> {
        let mut patience = Patience::new(self.stall);
        loop {
            let Some((slot, c, v)) = self.find::<K, V>(key)? else {
                return Ok(None);
            };
            let tomb = Ctl::stable(TOMBSTONE, c.version() + 1);
            // AcqRel: the exact version we read, so `v` is the value we
            // remove; publishes the tombstone.
            if slot[0].compare_exchange(c.0, tomb.0, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                // Relaxed: approximate count.
                self.words[LEN].fetch_sub(1, Ordering::Relaxed);
                return Ok(Some(v));
            }
            // The slot changed since the read (this key updated or removed
            // meanwhile): back off, then look again within the stall budget.
            if !patience.wait() {
                return Err(Error::Timeout(self.stall));
            }
        }
    }

    /// The pair in slot `i`, if occupied (consistent snapshot).
    pub(crate) fn entry<K: Pod, V: Pod>(&self, i: u64) -> Option<(K, V)> {
        let slot = self.slot(i);
        for _ in 0..64 {
            // Acquire: seqlock read side.
            let c = Ctl(slot[0].load(Ordering::Acquire));
            if c.is_busy() || c.state() != OCCUPIED {
                return None;
            }
            if let Some(p) = self.read_pair(slot, c) {
                return Some(p);
            }
        }
        None
    }

    pub(crate) fn len(&self) -> u64 {
        // Relaxed: approximate count.
        (self.words[LEN].load(Ordering::Relaxed) as i64).max(0) as u64
    }
}
