//! [`HashMap<K, V>`]: a fixed-capacity open-addressing map in shared memory.
//!
//! Linear probing from `fixed_hash(key)` (the same in every process). Each
//! slot is `[ctl, key words, value words]`; `ctl` (see `ctl`) is a seqlock
//! version plus a state:
//!
//! ```text
//! EMPTY ──claim CAS──▶ CLAIMING ──key written──▶ KEYED ──validated──▶ OCCUPIED ◀──▶ UPDATING
//!   TOMBSTONE ──claim CAS──▲         (conflict: ──▶ TOMBSTONE)          │ remove CAS
//!       ▲────────────────────────────────────────────────────────────────┘
//! ```
//!
//! * **Readers** (`get`, iteration) read key and value between two loads of
//!   `ctl` (seqlock: Acquire load, relaxed word loads, Acquire fence, reload)
//!   and retry if it moved, so they never return a torn key or value. They
//!   stop at the first `EMPTY` slot or after `reach[home]` slots: one byte
//!   per home slot recording the largest displacement any key with that home
//!   was ever placed at (raised with a SeqCst CAS before the key becomes
//!   visible; 255 defers to a global maximum). Tombstones never turn back
//!   into `EMPTY`, so after heavy churn chains end by reach, not by `EMPTY`.
//! * **Updates** of an existing key CAS `OCCUPIED → UPDATING` (owner pid in
//!   the word), write the value, and store `OCCUPIED` with the next version.
//! * **New keys** take the first `EMPTY`/`TOMBSTONE` slot on the probe path
//!   (tombstones are reused, so insert/remove churn does not fill the map),
//!   publish the key as `KEYED`, then *validate*: re-scan the probe path for
//!   the same key. Two concurrent inserters of one key both publish `KEYED`
//!   with SeqCst before scanning, so at least one sees the other; the one
//!   nearer the home slot wins, the other turns its slot into a tombstone and
//!   retries as an update. A published (`OCCUPIED`) copy always wins. So the
//!   same key never occupies two slots.
//! * **Removal** is one CAS `OCCUPIED → TOMBSTONE`.
//!
//! # Crash tolerance
//! Busy states carry the owner's pid. A waiter that finds a slot busy for
//! longer than its spin budget checks that pid; if the process is gone it
//! turns the slot into a tombstone. What a crash loses: a killed insert of a
//! new key (never visible); a killed update **removes that key** (its value
//! may have been half written, so it is dropped rather than shown torn).
//! `len` may then be off by one. Waits on a live but stalled peer end with
//! [`Error::Timeout`]. Pids are checked without start time (see `ctl`).
//!
//! # Limits
//! No resizing; `insert` of a new key into a map whose every slot is
//! occupied returns [`Error::Full`]. Keep the load factor below ~70% for
//! short probe sequences. The hash is not DoS-resistant.

use std::marker::PhantomData;
use std::time::Duration;

use bytemuck::Pod;
use venom_core::loom::sync::{AtomicU64, Ordering, fence};

use crate::ctl::{Ctl, my_pid, pid_alive};
use crate::error::{Error, Result};
use crate::hash::fixed_hash;
use crate::object_segment::Region;
use crate::patience::{DEFAULT_STALL_TIMEOUT, Patience};
use crate::words::{LINE_WORDS, load_elem, store_elem, words_for};

const LEN: usize = 0;
const MAX_PROBE: usize = LINE_WORDS;
pub(crate) const HEADER_WORDS: usize = 2 * LINE_WORDS;
/// A reach byte of this value means "farther than a byte can say: use the
/// global `MAX_PROBE`".
const FAR: u64 = 255;

// Stable states.
const EMPTY: u64 = 0;
const OCCUPIED: u64 = 1;
const TOMBSTONE: u64 = 2;
// Busy kinds.
const CLAIMING: u64 = 0;
const KEYED: u64 = 1;
const UPDATING: u64 = 2;

/// What validation of a freshly keyed slot found.
enum Validation {
    /// No other copy of the key: publish.
    Unique,
    /// Another copy wins; wait for `(slot, ctl)` to move (if given), retry.
    Lost(Option<(usize, Ctl)>),
}

/// The algorithm over a slice of words.
pub(crate) struct MapCore<'a> {
    pub words: &'a [AtomicU64],
    pub mask: u64,
    pub kw: usize,
    pub vw: usize,
    pub pid: u32,
    pub stall: Duration,
}

impl<'a> MapCore<'a> {
    pub(crate) fn words_needed(capacity: u64, kw: usize, vw: usize) -> Option<usize> {
        (capacity as usize).checked_mul(1 + kw + vw)?.checked_add(HEADER_WORDS + Self::reach_words(capacity))
    }

    /// Words of reach bytes (one byte per home slot).
    #[inline]
    fn reach_words(capacity: u64) -> usize {
        (capacity as usize).div_ceil(8)
    }

    /// How far from `home` any key with that home slot was ever placed (an
    /// upper bound on the probe length for such keys).
    #[inline]
    fn reach(&self, home: u64, ordering: Ordering) -> u64 {
        let home = home & self.mask;
        let word = self.words[HEADER_WORDS + (home / 8) as usize].load(ordering);
        let r = (word >> ((home % 8) * 8)) & 0xFF;
        if r == FAR { self.words[MAX_PROBE].load(ordering).min(self.mask) } else { r.min(self.mask) }
    }

    /// Raises the reach of `home` to at least `d` (SeqCst: see `validate`).
    fn raise_reach(&self, home: u64, d: u64) {
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
    fn slot(&self, i: u64) -> &'a [AtomicU64] {
        let stride = 1 + self.kw + self.vw;
        let at = HEADER_WORDS + Self::reach_words(self.mask + 1) + (i & self.mask) as usize * stride;
        &self.words[at..at + stride]
    }

    #[inline]
    fn home<K: Pod>(k: &K) -> u64 {
        fixed_hash(bytemuck::bytes_of(k))
    }

    /// Seqlock read of the key of a slot whose control word was `c`
    /// (Acquire-loaded by the caller). `None` if the slot changed.
    #[inline]
    fn read_key<K: Pod>(&self, slot: &[AtomicU64], c: Ctl) -> Option<K> {
        let k = load_elem::<K>(&slot[1..1 + self.kw]);
        // Acquire fence: if any word we read was written after `c`, the
        // reload below sees a newer control word (seqlock read side).
        fence(Ordering::Acquire);
        (slot[0].load(Ordering::Relaxed) == c.0).then_some(k)
    }

    /// Seqlock read of key and value.
    #[inline]
    fn read_pair<K: Pod, V: Pod>(&self, slot: &[AtomicU64], c: Ctl) -> Option<(K, V)> {
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

    pub(crate) fn get<K: Pod + Eq, V: Pod>(&self, key: &K) -> Result<Option<V>> {
        let h = Self::home(key);
        // Acquire: pairs with the SeqCst fetch_max of inserts that completed
        // before this call.
        let limit = self.reach(h, Ordering::Acquire);
        let mut patience = None;
        for d in 0..=limit {
            let slot = self.slot(h.wrapping_add(d));
            loop {
                // Acquire: seqlock read side.
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
                        Some((k, v)) if k == *key => return Ok(Some(v)),
                        Some(_) => break,
                    },
                    _ => break,
                }
            }
        }
        Ok(None)
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
        let h = Self::home(key);
        let limit = self.reach(h, Ordering::Acquire);
        let mut patience = None;
        for d in 0..=limit {
            let slot = self.slot(h.wrapping_add(d));
            loop {
                // Acquire: seqlock read side / CAS expected value.
                let c = Ctl(slot[0].load(Ordering::Acquire));
                if c.is_busy() {
                    if c.state() == UPDATING && self.read_key::<K>(slot, c).is_some_and(|k| k == *key) {
                        let p = patience.get_or_insert_with(|| Patience::new(self.stall));
                        self.wait_slot(slot, c, p)?;
                        continue;
                    }
                    break;
                }
                match c.state() {
                    EMPTY => return Ok(None),
                    OCCUPIED => match self.read_pair::<K, V>(slot, c) {
                        None => continue,
                        Some((k, v)) if k == *key => {
                            let tomb = Ctl::stable(TOMBSTONE, c.version() + 1);
                            // AcqRel: the exact version we read, so `v` is the
                            // value we remove; publishes the tombstone.
                            if slot[0].compare_exchange(c.0, tomb.0, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                                // Relaxed: approximate count.
                                self.words[LEN].fetch_sub(1, Ordering::Relaxed);
                                return Ok(Some(v));
                            }
                        }
                        Some(_) => break,
                    },
                    _ => break,
                }
            }
        }
        Ok(None)
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

    fn len(&self) -> u64 {
        // Relaxed: approximate count.
        (self.words[LEN].load(Ordering::Relaxed) as i64).max(0) as u64
    }
}

/// Marks a handle as owning copies of `T` without affecting auto traits.
type Invariant<T> = fn(T) -> T;

/// A fixed-capacity hash map from `K` to `V` in an
/// [`ObjectSegment`](crate::ObjectSegment).
///
/// Capacity is rounded up to a power of two.
///
/// ```
/// use venom_collections::ObjectSegment;
/// let name = format!("doc-map-{}", std::process::id());
/// let seg = ObjectSegment::create(&name, 1 << 20)?;
/// let scores = seg.hash_map::<u64, f64>("scores", 1024)?;
/// assert_eq!(scores.insert(123, 95.5)?, None);
/// assert_eq!(scores.insert(123, 96.0)?, Some(95.5));
/// assert_eq!(scores.get(&123)?, Some(96.0));
/// assert!(scores.contains_key(&123)?);
/// assert_eq!(scores.iter().collect::<Vec<_>>(), vec![(123, 96.0)]);
/// assert_eq!(scores.remove(&123)?, Some(96.0));
/// assert!(scores.is_empty());
/// seg.unlink()?;
/// # Ok::<(), venom_collections::Error>(())
/// ```
pub struct HashMap<K: Pod + Eq, V: Pod> {
    region: Region,
    mask: u64,
    pid: u32,
    stall: Duration,
    _t: PhantomData<Invariant<(K, V)>>,
}

// SAFETY: a mapping handle plus a pointer into it; all shared accesses are
// atomic and keys/values are copied.
unsafe impl<K: Pod + Eq, V: Pod> Send for HashMap<K, V> {}
// SAFETY: as above.
unsafe impl<K: Pod + Eq, V: Pod> Sync for HashMap<K, V> {}

impl<K: Pod + Eq, V: Pod> HashMap<K, V> {
    pub(crate) fn from_region(region: Region) -> Self {
        let mask = region.capacity - 1;
        HashMap { region, mask, pid: my_pid(), stall: DEFAULT_STALL_TIMEOUT, _t: PhantomData }
    }

    pub(crate) fn bytes(capacity: u64) -> Result<u64> {
        MapCore::words_needed(capacity, words_for::<K>(), words_for::<V>())
            .and_then(|w| (w as u64).checked_mul(8))
            .ok_or_else(|| Error::InvalidConfig(format!("map capacity {capacity} is too large")))
    }

    #[inline]
    fn core(&self) -> MapCore<'_> {
        MapCore {
            words: self.region.words(),
            mask: self.mask,
            kw: words_for::<K>(),
            vw: words_for::<V>(),
            pid: self.pid,
            stall: self.stall,
        }
    }

    /// How long operations wait on a peer stuck mid-write before returning
    /// [`Error::Timeout`] (default 2 s).
    pub fn set_stall_timeout(&mut self, t: Duration) {
        self.stall = t;
    }

    /// The value for `key`.
    pub fn get(&self, key: &K) -> Result<Option<V>> {
        self.core().get(key)
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &K) -> Result<bool> {
        Ok(self.core().get::<K, V>(key)?.is_some())
    }

    /// Inserts or updates; returns the previous value.
    pub fn insert(&self, key: K, value: V) -> Result<Option<V>> {
        self.core().insert(&key, &value)
    }

    /// Removes `key`; returns its value.
    pub fn remove(&self, key: &K) -> Result<Option<V>> {
        self.core().remove(key)
    }

    /// Number of entries (approximate under concurrent writes).
    pub fn len(&self) -> usize {
        self.core().len() as usize
    }

    /// Whether the map looks empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Slots (a power of two).
    pub fn capacity(&self) -> usize {
        (self.mask + 1) as usize
    }

    /// Iterates over a weakly consistent snapshot: every pair returned was
    /// present at some moment during the iteration; concurrent changes may or
    /// may not be seen.
    pub fn iter(&self) -> Iter<'_, K, V> {
        Iter { map: self, next: 0 }
    }
}

/// Iterator over a [`HashMap`]'s pairs.
pub struct Iter<'a, K: Pod + Eq, V: Pod> {
    map: &'a HashMap<K, V>,
    next: u64,
}

impl<K: Pod + Eq, V: Pod> Iterator for Iter<'_, K, V> {
    type Item = (K, V);

    fn next(&mut self) -> Option<(K, V)> {
        let core = self.map.core();
        while self.next <= self.map.mask {
            let i = self.next;
            self.next += 1;
            if let Some(p) = core.entry(i) {
                return Some(p);
            }
        }
        None
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;

    fn core(w: &[AtomicU64]) -> MapCore<'_> {
        MapCore { words: w, mask: 3, kw: 1, vw: 1, pid: 1, stall: Duration::from_secs(1) }
    }

    fn heap() -> Arc<Vec<AtomicU64>> {
        Arc::new(crate::words::heap_words(MapCore::words_needed(4, 1, 1).unwrap()))
    }

    #[test]
    fn loom_map_same_key_never_duplicates() {
        loom::model(|| {
            let words = heap();
            let w2 = words.clone();
            let t = loom::thread::spawn(move || core(&w2).insert(&7u64, &1u64).unwrap());
            let mine = core(&words).insert(&7u64, &2u64).unwrap();
            let theirs = t.join().unwrap();
            let m = core(&words);
            // Exactly one insert created the key; the other updated it.
            assert!(mine.is_none() != theirs.is_none(), "{mine:?} {theirs:?}");
            let copies = (0..4).filter(|&i| m.entry::<u64, u64>(i).is_some()).count();
            assert_eq!(copies, 1);
            assert_eq!(m.len(), 1);
        });
    }

    #[test]
    fn loom_map_insert_remove() {
        loom::model(|| {
            let words = heap();
            core(&words).insert(&1u64, &10u64).unwrap();
            let w2 = words.clone();
            let t = loom::thread::spawn(move || core(&w2).remove::<u64, u64>(&1).unwrap());
            core(&words).insert(&2u64, &20u64).unwrap();
            let got = core(&words).get::<u64, u64>(&2).unwrap();
            assert_eq!(t.join().unwrap(), Some(10));
            assert_eq!(got, Some(20));
            assert_eq!(core(&words).get::<u64, u64>(&1).unwrap(), None);
            assert_eq!(core(&words).len(), 1);
        });
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::ObjectSegment;

    fn dead_pid() -> u32 {
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        pid
    }

    #[test]
    fn reach_bytes_saturate_to_the_global_maximum() {
        let name = format!("coll-mreach-{}", std::process::id());
        let seg = ObjectSegment::create(&name, 1 << 16).unwrap();
        let m = seg.hash_map::<u64, u64>("m", 1024).unwrap();
        let core = m.core();
        core.raise_reach(9, 3);
        core.raise_reach(9, 2);
        assert_eq!((core.reach(9, Ordering::SeqCst), core.reach(10, Ordering::SeqCst)), (3, 0));
        core.raise_reach(9, 300);
        assert_eq!(core.reach(9, Ordering::SeqCst), 300);
        core.raise_reach(17, 400);
        assert_eq!(core.reach(9, Ordering::SeqCst), 400, "saturated homes share the global bound");
        assert_eq!(core.reach(8, Ordering::SeqCst), 0, "neighbours in the same word are untouched");
        seg.unlink().unwrap();
    }

    #[test]
    fn slots_left_busy_by_a_dead_writer_are_repaired() {
        let name = format!("coll-mrec-{}", std::process::id());
        let seg = ObjectSegment::create(&name, 1 << 16).unwrap();
        let m = seg.hash_map::<u64, u64>("m", 8).unwrap();
        m.insert(1, 10).unwrap();
        m.insert(2, 20).unwrap();
        let core = m.core();
        let dead = dead_pid();
        let slot_of = |k: u64| {
            (0..8).map(|i| core.slot(i)).find(|s| s[1].load(Ordering::SeqCst) == k && s[0].load(Ordering::SeqCst) != 0)
        };
        // Key 1: its updater died mid-write. Readers repair it (key dropped).
        let s1 = slot_of(1).unwrap();
        let c = Ctl(s1[0].load(Ordering::SeqCst));
        s1[0].store(Ctl::busy(UPDATING, dead, c.version()).0, Ordering::SeqCst);
        assert_eq!(m.get(&1).unwrap(), None);
        assert_eq!(m.len(), 1);
        // Key 2 stays; an inserter of key 3 that died while KEYED does not
        // block another insert of key 3.
        let free = (0..8).map(|i| core.slot(i)).find(|s| s[0].load(Ordering::SeqCst) == 0).unwrap();
        free[1].store(3, Ordering::SeqCst);
        free[0].store(Ctl::busy(KEYED, dead, 0).0, Ordering::SeqCst);
        for home in 0..8 {
            core.raise_reach(home, 7);
        }
        assert_eq!(m.insert(3, 30).unwrap(), None);
        assert_eq!(m.get(&3).unwrap(), Some(30));
        assert_eq!(m.get(&2).unwrap(), Some(20));
        assert_eq!(m.iter().filter(|&(k, _)| k == 3).count(), 1);
        // A live owner that never finishes: typed timeout, no hang.
        let mut m2 = seg.open_hash_map::<u64, u64>("m").unwrap();
        m2.set_stall_timeout(Duration::from_millis(50));
        let s2 = slot_of(2).unwrap();
        let c = Ctl(s2[0].load(Ordering::SeqCst));
        s2[0].store(Ctl::busy(UPDATING, std::process::id(), c.version()).0, Ordering::SeqCst);
        assert!(matches!(m2.get(&2), Err(Error::Timeout(_))));
        assert!(matches!(m2.insert(2, 0), Err(Error::Timeout(_))));
        seg.unlink().unwrap();
    }
}
