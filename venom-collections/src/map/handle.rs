//! The [`HashMap`] handle.

use std::marker::PhantomData;
use std::time::Duration;

use bytemuck::Pod;

use super::probe::MapCore;
use crate::ctl::my_pid;
use crate::error::{Error, Result};
use crate::object_segment::Region;
use crate::patience::DEFAULT_STALL_TIMEOUT;
use crate::words::words_for;

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
    /// Header, reach bytes, then `mask + 1` slots.
    region: Region,
    /// `capacity - 1`; capacity is a power of two (checked on attach).
    mask: u64,
    /// This process's pid, recorded in busy control words.
    pid: u32,
    /// How long to wait on a live peer stuck mid-write.
    stall: Duration,
    _t: PhantomData<Invariant<(K, V)>>,
}

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
    pub(crate) fn core(&self) -> MapCore<'_> {
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
        crate::object_segment::guarded(Some(self.region.segment()), self.get_unguarded(key))
    }

    #[inline]
    fn get_unguarded(&self, key: &K) -> Result<Option<V>> {
        self.core().get(key)
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &K) -> Result<bool> {
        crate::object_segment::guarded(Some(self.region.segment()), self.contains_key_unguarded(key))
    }

    #[inline]
    fn contains_key_unguarded(&self, key: &K) -> Result<bool> {
        Ok(self.core().get::<K, V>(key)?.is_some())
    }

    /// Inserts or updates; returns the previous value.
    pub fn insert(&self, key: K, value: V) -> Result<Option<V>> {
        crate::object_segment::guarded(Some(self.region.segment()), self.insert_unguarded(key, value))
    }

    #[inline]
    fn insert_unguarded(&self, key: K, value: V) -> Result<Option<V>> {
        self.core().insert(&key, &value)
    }

    /// Removes `key`; returns its value.
    pub fn remove(&self, key: &K) -> Result<Option<V>> {
        crate::object_segment::guarded(Some(self.region.segment()), self.remove_unguarded(key))
    }

    #[inline]
    fn remove_unguarded(&self, key: &K) -> Result<Option<V>> {
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

impl<K: Pod + Eq, V: Pod> HashMap<K, V> {
    /// Fails with `Error::Core(Truncated)` if the segment's file was shrunk
    /// under this process's mapping. `Result`-returning methods check this
    /// themselves; the others (`len`, `try_pop`, ...) see a lost mapping as
    /// zeroes, and this tells the two apart.
    pub fn check_mapped(&self) -> crate::Result<()> {
        self.region.check_mapped()
    }
}
