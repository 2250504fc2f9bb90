//! The [`Queue`] handle: blocking, recovery and accessors.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use bytemuck::Pod;
use venom_core::loom::sync::{AtomicU64, Ordering};

use super::ring::*;
use super::roster::Roster;
use crate::doorbell::Doorbell;
use crate::error::{Error, Result};
use crate::object_segment::Region;
use crate::patience::Patience;
use crate::words::words_for;

/// A bounded MPMC queue of `T` in an [`ObjectSegment`](crate::ObjectSegment).
///
/// Capacity is rounded up to a power of two (at least 2). `T` is copied in and out; it
/// must be `Pod` (no pointers, no padding concerns across processes).
///
/// ```
/// use std::time::Duration;
/// use venom_collections::ObjectSegment;
/// let name = format!("doc-queue-{}", std::process::id());
/// let seg = ObjectSegment::create(&name, 1 << 20)?;
/// let q = seg.queue::<[u32; 2]>("jobs", 4)?;
/// q.push([1, 2], Duration::from_millis(10))?;
/// assert_eq!(q.len(), 1);
/// assert_eq!(q.pop(Duration::from_millis(10))?, [1, 2]);
/// assert!(q.pop(Duration::from_millis(1)).is_err()); // timed out: empty
/// seg.unlink()?;
/// # Ok::<(), venom_collections::Error>(())
/// ```
pub struct Queue<T: Pod> {
    /// The queue's words (header, records, then `capacity` slots of
    /// `(1 + words_for::<T>()).next_power_of_two()` words), its capacity
    /// (a power of two >= 2, checked on attach), and the participant records
    /// held by the threads using this handle.
    roster: Arc<Roster>,
    /// `roster.region.words()`, `roster.mask` and `roster.id()`, copied here
    /// so that the fast path has no extra indirection.
    words: (*const AtomicU64, usize),
    mask: u64,
    id: u64,
    _t: PhantomData<fn(T) -> T>,
}

// SAFETY: `words` points into the mapping owned by `roster` (Send + Sync, see
// there) and is only accessed through atomics; `T: Pod` values are copied,
// never referenced across threads.
unsafe impl<T: Pod> Send for Queue<T> {}
// SAFETY: as above; all methods take `&self` and use atomics only.
unsafe impl<T: Pod> Sync for Queue<T> {}

impl<T: Pod> Queue<T> {
    /// Words per slot: stamp, value, padded to a power of two so that small
    /// slots never straddle a cache line.
    fn stride() -> usize {
        (1 + words_for::<T>()).next_power_of_two()
    }

    pub(crate) fn from_region(region: Region) -> Queue<T> {
        let roster = Arc::new(Roster::new(region, Self::stride()));
        let words = roster.region.words();
        let (words, mask, id) = ((words.as_ptr(), words.len()), roster.mask, roster.id());
        Queue { roster, words, mask, id, _t: PhantomData }
    }

    pub(crate) fn bytes(capacity: u64) -> Result<u64> {
        QueueCore::words_needed(capacity, Self::stride() - 1)
            .and_then(|w| (w as u64).checked_mul(8))
            .ok_or_else(|| Error::InvalidConfig(format!("queue capacity {capacity} is too large")))
    }

    pub(crate) fn init(words: &[AtomicU64], capacity: u64) {
        QueueCore::init(words, capacity, Self::stride());
    }

    /// The algorithm, with the calling thread's participant record (claimed
    /// on its first call through this handle).
    #[inline]
    pub(crate) fn core(&self) -> QueueCore<'_> {
        // The stride is a constant of `T`: the slot arithmetic folds.
        QueueCore { words: self.words(), mask: self.mask, stride: Self::stride(), intent: self.roster.intent(self.id) }
    }

    /// The queue's words.
    #[inline]
    fn words(&self) -> &[AtomicU64] {
        // SAFETY: a copy of `roster.region.words()`: the region (and its
        // mapping) lives in `roster`, which lives as long as `self`.
        unsafe { core::slice::from_raw_parts(self.words.0, self.words.1) }
    }

    #[inline]
    fn bell(&self, word: usize) -> &Doorbell {
        let w = &self.words()[word];
        // SAFETY: Doorbell is repr(C), two AtomicU32 (8 bytes, align 4),
        // valid when zeroed; the word is 8-aligned, lives as long as the
        // region, and is only ever accessed as a Doorbell.
        unsafe { &*(w as *const AtomicU64 as *const Doorbell) }
    }

    /// Wakes waiters of `word`, if any (see `doorbell`: our SeqCst head or
    /// tail CAS is the condition half of the handshake).
    #[inline]
    fn notify(&self, word: usize) {
        self.bell(word).ring();
    }

    /// Pushes without waiting. Returns `Err(v)` if the queue is full (or the
    /// slot at the tail is held by a stalled or dead consumer).
    pub fn try_push(&self, v: T) -> std::result::Result<(), T> {
        match self.core().try_push(&v) {
            Attempt::Done(()) => {
                self.notify(NOT_EMPTY);
                Ok(())
            }
            _ => Err(v),
        }
    }

    /// Pops without waiting. `None` if empty (or the head position is held by
    /// a producer that has not published yet).
    pub fn try_pop(&self) -> Option<T> {
        match self.core().try_pop() {
            Attempt::Done(v) => {
                self.notify(NOT_FULL);
                Some(v)
            }
            _ => None,
        }
    }

    /// Pushes, sleeping on a futex while the queue is full, for at most
    /// `timeout` ([`Error::Timeout`]). Frees slots held by dead consumers.
    pub fn push(&self, v: T, timeout: Duration) -> Result<()> {
        crate::object_segment::guarded(Some(self.roster.region.segment()), self.push_unguarded(v, timeout))
    }

    #[inline]
    fn push_unguarded(&self, v: T, timeout: Duration) -> Result<()> {
        let mut patience = Patience::new(timeout);
        loop {
            match self.core().try_push(&v) {
                Attempt::Done(()) => {
                    self.notify(NOT_EMPTY);
                    return Ok(());
                }
                Attempt::No => {
                    let core = self.core();
                    let lost = || self.roster.region.check_mapped().is_err();
                    // SeqCst loads: the waiter half of the handshake.
                    let not_full = || {
                        let (h, t) = (core.head().load(Ordering::SeqCst), core.tail().load(Ordering::SeqCst));
                        // A lost (truncated) mapping also ends the sleep, so the
                        // loop below reports it instead of sleeping to the deadline.
                        ((t < h + core.capacity()) || lost()).then_some(())
                    };
                    if self.bell(NOT_FULL).wait_until(patience.remaining(), not_full).is_none() {
                        return Err(Error::Timeout(timeout));
                    }
                }
                Attempt::Held(pos) => {
                    if !self.core().recover(pos) && !patience.wait() {
                        return Err(Error::Timeout(timeout));
                    }
                }
            }
            // Slow path only: a truncated mapping reads as an empty queue.
            self.roster.region.check_mapped()?;
            if patience.expired() {
                return Err(Error::Timeout(timeout));
            }
        }
    }

    /// Pops, sleeping on a futex while the queue is empty, for at most
    /// `timeout` ([`Error::Timeout`]). Skips positions claimed by producers
    /// that died before publishing.
    pub fn pop(&self, timeout: Duration) -> Result<T> {
        crate::object_segment::guarded(Some(self.roster.region.segment()), self.pop_unguarded(timeout))
    }

    #[inline]
    fn pop_unguarded(&self, timeout: Duration) -> Result<T> {
        let mut patience = Patience::new(timeout);
        loop {
            match self.core().try_pop() {
                Attempt::Done(v) => {
                    self.notify(NOT_FULL);
                    return Ok(v);
                }
                Attempt::No => {
                    let core = self.core();
                    let lost = || self.roster.region.check_mapped().is_err();
                    let not_empty = || {
                        let (h, t) = (core.head().load(Ordering::SeqCst), core.tail().load(Ordering::SeqCst));
                        // A lost (truncated) mapping also ends the sleep, so the
                        // loop below reports it instead of sleeping to the deadline.
                        ((t > h) || lost()).then_some(())
                    };
                    if self.bell(NOT_EMPTY).wait_until(patience.remaining(), not_empty).is_none() {
                        return Err(Error::Timeout(timeout));
                    }
                }
                Attempt::Held(pos) => {
                    if self.core().recover(pos) {
                        self.notify(NOT_FULL);
                    } else if !patience.wait() {
                        return Err(Error::Timeout(timeout));
                    }
                }
            }
            // Slow path only: a truncated mapping reads as an empty queue.
            self.roster.region.check_mapped()?;
            if patience.expired() {
                return Err(Error::Timeout(timeout));
            }
        }
    }

    /// Checks the head and tail positions for slots held by dead processes
    /// and frees them. Returns how many were recovered.
    pub fn recover(&self) -> u64 {
        let before = self.recovered();
        let core = self.core();
        let head = core.head().load(Ordering::SeqCst);
        core.recover(head);
        let tail = core.tail().load(Ordering::SeqCst);
        core.recover(tail.wrapping_sub(core.capacity()));
        self.recovered() - before
    }

    /// Positions skipped or freed because their holder died.
    pub fn recovered(&self) -> u64 {
        // Relaxed: a statistic.
        self.words()[RECOVERED].load(Ordering::Relaxed)
    }

    /// Items in the queue (a snapshot; includes in-flight pushes).
    pub fn len(&self) -> usize {
        let core = self.core();
        loop {
            // SeqCst: a consistent (tail, head) pair when tail is unchanged.
            let tail = core.tail().load(Ordering::SeqCst);
            let head = core.head().load(Ordering::SeqCst);
            if core.tail().load(Ordering::SeqCst) == tail {
                return tail.saturating_sub(head).min(core.capacity()) as usize;
            }
        }
    }

    /// Whether the queue is empty (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The capacity (a power of two).
    pub fn capacity(&self) -> usize {
        (self.mask + 1) as usize
    }
}

impl<T: Pod> Queue<T> {
    /// Fails with `Error::Core(Truncated)` if the segment's file was shrunk
    /// under this process's mapping. `Result`-returning methods check this
    /// themselves; the others (`len`, `try_pop`, ...) see a lost mapping as
    /// zeroes, and this tells the two apart.
    pub fn check_mapped(&self) -> crate::Result<()> {
        self.roster.region.check_mapped()
    }
}
