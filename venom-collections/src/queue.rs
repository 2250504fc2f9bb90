//! [`Queue<T>`]: a bounded MPMC FIFO in shared memory.
//!
//! The algorithm is Dmitry Vyukov's bounded MPMC queue (1024cores.net,
//! "Bounded MPMC queue"; also crossbeam's `ArrayQueue`): every slot carries a
//! `stamp` saying which position it is ready for. With 64-bit positions that
//! never wrap (2^64 operations), a slot at index `pos & mask`
//!
//! * is free for the producer of position `pos` when `stamp == pos`;
//! * holds the item of position `pos` when `stamp == pos + 1`;
//! * becomes free for `pos + capacity` when its consumer stores that.
//!
//! Producers claim a position with one CAS on `tail`, consumers with one CAS
//! on `head`. Right after its claim, the claimer records an *owner tag* in the
//! slot's `owner` word: its pid, its role (producer/consumer) and the low 41
//! bits of the position. A waiter trusts the tag only if role and position
//! match the hold it is looking at; a stale tag (from the slot's previous
//! holder) means "holder unknown, assume alive".
//!
//! # Crash tolerance
//! * A producer killed after claiming a position and before publishing it
//!   loses that one item (its `push` never returned). Consumers reaching the
//!   position wait; once the tag shows the holder's pid is gone, one of them
//!   skips the position (counted in [`Queue::recovered`]).
//! * A consumer killed after claiming a position and before freeing its slot
//!   loses the item it was popping (its `pop` never returned). Producers that
//!   wrap around to the slot find the dead holder and free it.
//! * Recovery happens inside the blocking [`Queue::push`]/[`Queue::pop`] (and
//!   [`Queue::recover`]); `try_*` report `Full`/empty instead of waiting.
//! * Known hole: a process killed in the two instructions between its claim
//!   CAS and the store of its tag leaves a stale tag, which cannot be told
//!   from a live holder about to write it. That position is never skipped:
//!   blocking calls reaching it return [`Error::Timeout`] (nothing spins or
//!   sleeps forever), but the queue stays stalled there. Closing this would
//!   need a second CAS per operation (claiming the slot itself).
//! * Liveness is checked by pid only; if a dead holder's pid is reused
//!   before anyone looks, the holder looks alive and waiters time out
//!   (never a wrong recovery). Handles record the pid when created: do not
//!   use a handle across `fork()`.
//!
//! # Layout
//! ```text
//! word 0     head (own 128-byte line)
//! word 16    tail (own line)
//! word 32    not_empty: Doorbell | 33 not_full: Doorbell | 34 recovered
//! word 48    slots: capacity × [stamp, owner, value words..., padding to 2^k words]
//! ```

use std::marker::PhantomData;
use std::time::Duration;

use bytemuck::Pod;
use venom_core::loom::sync::{AtomicU64, Ordering};

use crate::ctl::pid_alive;
use crate::doorbell::Doorbell;
use crate::error::{Error, Result};
use crate::object_segment::Region;
use crate::patience::{Contention, Patience};
use crate::words::{LINE_WORDS, load_elem, store_elem, words_for};

const HEAD: usize = 0;
const TAIL: usize = LINE_WORDS;
const NOT_EMPTY: usize = 2 * LINE_WORDS;
const NOT_FULL: usize = NOT_EMPTY + 1;
const RECOVERED: usize = NOT_EMPTY + 2;
pub(crate) const HEADER_WORDS: usize = 3 * LINE_WORDS;
const POS_MASK: u64 = (1 << 41) - 1;
const CONSUMER: u64 = 1 << 41;

/// The owner tag of `pid` holding position `pos` as producer or consumer.
#[inline]
pub(crate) fn owner_tag(pid: u32, consumer: bool, pos: u64) -> u64 {
    (u64::from(pid) << 42) | if consumer { CONSUMER } else { 0 } | (pos & POS_MASK)
}

/// Spins on an in-flight slot before a non-blocking call gives up.
const INFLIGHT_SPINS: u32 = 128;

/// Outcome of one non-blocking attempt.
pub(crate) enum Attempt<T> {
    Done(T),
    /// Full (push) or empty (pop).
    No,
    /// The slot for position `pos` is held by a peer mid-operation.
    Held(u64),
}

/// The algorithm over a slice of words (shared memory or, under loom, heap).
pub(crate) struct QueueCore<'a> {
    pub words: &'a [AtomicU64],
    pub mask: u64,
    pub stride: usize,
    pub me: u32,
}

impl<'a> QueueCore<'a> {
    pub(crate) fn words_needed(capacity: u64, elem_words: usize) -> Option<usize> {
        (capacity as usize).checked_mul(2 + elem_words)?.checked_add(HEADER_WORDS)
    }

    /// Stamps every slot with its first position. Fresh words are zero.
    pub(crate) fn init(words: &[AtomicU64], capacity: u64, stride: usize) {
        for i in 0..capacity as usize {
            // Relaxed: published by the directory's READY store.
            words[HEADER_WORDS + i * stride].store(i as u64, Ordering::Relaxed);
        }
    }

    #[inline]
    fn capacity(&self) -> u64 {
        self.mask + 1
    }

    #[inline]
    fn slot(&self, pos: u64) -> &'a [AtomicU64] {
        let i = HEADER_WORDS + (pos & self.mask) as usize * self.stride;
        &self.words[i..i + self.stride]
    }

    #[inline]
    pub(crate) fn head(&self) -> &'a AtomicU64 {
        &self.words[HEAD]
    }

    #[inline]
    pub(crate) fn tail(&self) -> &'a AtomicU64 {
        &self.words[TAIL]
    }

    #[inline]
    pub(crate) fn try_push<T: Pod>(&self, v: &T) -> Attempt<()> {
        // Relaxed: only a hint; the slot stamp (Acquire) decides.
        let mut tail = self.tail().load(Ordering::Relaxed);
        let mut spins = 0;
        let mut backoff = Contention::default();
        loop {
            let slot = self.slot(tail);
            // Acquire: pairs with the consumer's Release that freed the slot,
            // so its read of the old value happens before our write.
            let stamp = slot[0].load(Ordering::Acquire);
            if stamp == tail {
                // SeqCst: the tail CAS is the "condition" half of the
                // not_empty event-count handshake (see `notify`).
                match self.tail().compare_exchange_weak(tail, tail + 1, Ordering::SeqCst, Ordering::Relaxed) {
                    Ok(_) => {
                        // Relaxed: read only by waiters, as a liveness hint
                        // validated by its role and position.
                        slot[1].store(owner_tag(self.me, false, tail), Ordering::Relaxed);
                        store_elem(&slot[2..], v);
                        // Release: publishes the value.
                        slot[0].store(tail + 1, Ordering::Release);
                        return Attempt::Done(());
                    }
                    Err(t) => {
                        tail = t;
                        backoff.spin();
                    }
                }
            } else if stamp < tail {
                // The slot still holds position tail - capacity: full, or its
                // consumer is mid-pop. SeqCst pairs with the head CAS.
                let head = self.head().load(Ordering::SeqCst);
                if head.wrapping_add(self.capacity()) <= tail {
                    return Attempt::No;
                }
                spins += 1;
                if spins > INFLIGHT_SPINS {
                    return Attempt::Held(tail - self.capacity());
                }
                venom_core::loom::spin_hint();
                tail = self.tail().load(Ordering::Relaxed);
            } else {
                // Another producer got here first, so `tail` has moved on. If
                // it has not, the stamp is from the future: corrupt memory.
                let t = self.tail().load(Ordering::Relaxed);
                if t == tail {
                    spins += 1;
                    if spins > INFLIGHT_SPINS {
                        return Attempt::No;
                    }
                }
                tail = t;
            }
        }
    }

    #[inline]
    pub(crate) fn try_pop<T: Pod>(&self) -> Attempt<T> {
        // Relaxed: a hint, as in `try_push`.
        let mut head = self.head().load(Ordering::Relaxed);
        let mut spins = 0;
        let mut backoff = Contention::default();
        loop {
            let slot = self.slot(head);
            // Acquire: pairs with the producer's Release publishing the value.
            let stamp = slot[0].load(Ordering::Acquire);
            if stamp == head + 1 {
                // SeqCst: the condition half of the not_full handshake.
                match self.head().compare_exchange_weak(head, head + 1, Ordering::SeqCst, Ordering::Relaxed) {
                    Ok(_) => {
                        // Relaxed owner hint, as in `try_push`.
                        slot[1].store(owner_tag(self.me, true, head), Ordering::Relaxed);
                        let v = load_elem::<T>(&slot[2..]);
                        // Release: our read happens before the next write.
                        slot[0].store(head + self.capacity(), Ordering::Release);
                        return Attempt::Done(v);
                    }
                    Err(h) => {
                        head = h;
                        backoff.spin();
                    }
                }
            } else if stamp <= head {
                // Not yet published for this position: empty, or a producer
                // is mid-push (tail moved past head).
                let tail = self.tail().load(Ordering::SeqCst);
                if tail <= head {
                    return Attempt::No;
                }
                spins += 1;
                if spins > INFLIGHT_SPINS {
                    return Attempt::Held(head);
                }
                venom_core::loom::spin_hint();
                head = self.head().load(Ordering::Relaxed);
            } else {
                // Another consumer took `head`; as in `try_push`, a head that
                // does not move means a corrupt stamp.
                let h = self.head().load(Ordering::Relaxed);
                if h == head {
                    spins += 1;
                    if spins > INFLIGHT_SPINS {
                        return Attempt::No;
                    }
                }
                head = h;
            }
        }
    }

    /// Frees position `pos` if the peer holding it is dead. Returns whether
    /// progress was made (recovered, or the slot moved on by itself).
    pub(crate) fn recover(&self, pos: u64) -> bool {
        let slot = self.slot(pos);
        // Acquire: the tag is read after the stamp it belongs to.
        let stamp = slot[0].load(Ordering::Acquire);
        let owner = slot[1].load(Ordering::Acquire);
        let dead = |consumer: bool| {
            owner & (CONSUMER | POS_MASK) == owner_tag(0, consumer, pos) && !pid_alive((owner >> 42) as u32)
        };
        if stamp == pos && self.tail().load(Ordering::SeqCst) > pos {
            if !dead(false) {
                return false;
            }
            // A dead producer claimed `pos` but never published: skip it by
            // claiming the position as its consumer (SeqCst as in try_pop).
            if self.head().compare_exchange(pos, pos + 1, Ordering::SeqCst, Ordering::Relaxed).is_err() {
                return true;
            }
            // Release: hands the slot to the producer of pos + capacity.
            slot[0].store(pos + self.capacity(), Ordering::Release);
        } else if stamp == pos + 1 && self.head().load(Ordering::SeqCst) > pos {
            if !dead(true) {
                return false;
            }
            // A dead consumer claimed `pos` but never freed the slot. AcqRel:
            // one recoverer wins and hands the slot on.
            if slot[0].compare_exchange(pos + 1, pos + self.capacity(), Ordering::AcqRel, Ordering::Relaxed).is_err() {
                return true;
            }
        } else {
            return true;
        }
        // Relaxed: a statistic.
        self.words[RECOVERED].fetch_add(1, Ordering::Relaxed);
        true
    }
}

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
    region: Region,
    mask: u64,
    stride: usize,
    me: u32,
    _t: PhantomData<fn(T) -> T>,
}

// SAFETY: the handle only holds a reference-counted mapping and a pointer into
// it; every access to the shared words is atomic, and `T: Pod` values are
// copied, never referenced across threads.
unsafe impl<T: Pod> Send for Queue<T> {}
// SAFETY: as above; all methods take `&self` and use atomics only.
unsafe impl<T: Pod> Sync for Queue<T> {}

impl<T: Pod> Queue<T> {
    /// Words per slot: stamp, owner, value, padded to a power of two so
    /// that small slots never straddle a cache line.
    fn stride() -> usize {
        (2 + words_for::<T>()).next_power_of_two()
    }

    pub(crate) fn from_region(region: Region) -> Queue<T> {
        let stride = Self::stride();
        let mask = region.capacity - 1;
        Queue { region, mask, stride, me: std::process::id(), _t: PhantomData }
    }

    pub(crate) fn bytes(capacity: u64) -> Result<u64> {
        QueueCore::words_needed(capacity, Self::stride() - 2)
            .and_then(|w| (w as u64).checked_mul(8))
            .ok_or_else(|| Error::InvalidConfig(format!("queue capacity {capacity} is too large")))
    }

    pub(crate) fn init(words: &[AtomicU64], capacity: u64) {
        QueueCore::init(words, capacity, Self::stride());
    }

    #[inline]
    fn core(&self) -> QueueCore<'_> {
        QueueCore { words: self.region.words(), mask: self.mask, stride: self.stride, me: self.me }
    }

    #[inline]
    fn bell(&self, word: usize) -> &Doorbell {
        let w = &self.region.words()[word];
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
        let mut patience = Patience::new(timeout);
        loop {
            match self.core().try_push(&v) {
                Attempt::Done(()) => {
                    self.notify(NOT_EMPTY);
                    return Ok(());
                }
                Attempt::No => {
                    let core = self.core();
                    // SeqCst loads: the waiter half of the handshake.
                    let not_full = || {
                        let (h, t) = (core.head().load(Ordering::SeqCst), core.tail().load(Ordering::SeqCst));
                        (t < h + core.capacity()).then_some(())
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
            if patience.expired() {
                return Err(Error::Timeout(timeout));
            }
        }
    }

    /// Pops, sleeping on a futex while the queue is empty, for at most
    /// `timeout` ([`Error::Timeout`]). Skips positions claimed by producers
    /// that died before publishing.
    pub fn pop(&self, timeout: Duration) -> Result<T> {
        let mut patience = Patience::new(timeout);
        loop {
            match self.core().try_pop() {
                Attempt::Done(v) => {
                    self.notify(NOT_FULL);
                    return Ok(v);
                }
                Attempt::No => {
                    let core = self.core();
                    let not_empty = || {
                        let (h, t) = (core.head().load(Ordering::SeqCst), core.tail().load(Ordering::SeqCst));
                        (t > h).then_some(())
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
        self.region.words()[RECOVERED].load(Ordering::Relaxed)
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

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;

    fn core(w: &[AtomicU64]) -> QueueCore<'_> {
        QueueCore { words: w, mask: 1, stride: 3, me: 1 }
    }

    #[test]
    fn loom_queue_mpmc() {
        loom::model(|| {
            let words = Arc::new(crate::words::heap_words(QueueCore::words_needed(2, 1).unwrap()));
            QueueCore::init(&words, 2, 3);
            let w2 = words.clone();
            let producer = loom::thread::spawn(move || {
                let q = core(&w2);
                (1..=2u64).filter(|v| matches!(q.try_push(v), Attempt::Done(()))).count()
            });
            let q = core(&words);
            let mut got = Vec::new();
            for _ in 0..2 {
                if let Attempt::Done(v) = q.try_pop::<u64>() {
                    got.push(v);
                }
            }
            let pushed = producer.join().unwrap();
            while let Attempt::Done(v) = q.try_pop::<u64>() {
                got.push(v);
            }
            assert_eq!(got.len(), pushed);
            assert!(got.windows(2).all(|w| w[0] < w[1]), "FIFO order: {got:?}");
        });
    }

    #[test]
    fn loom_queue_two_producer_consumers() {
        loom::model(|| {
            let words = Arc::new(crate::words::heap_words(QueueCore::words_needed(2, 1).unwrap()));
            QueueCore::init(&words, 2, 3);
            let w2 = words.clone();
            let t = loom::thread::spawn(move || {
                let q = core(&w2);
                assert!(matches!(q.try_push(&1u64), Attempt::Done(())));
                match q.try_pop::<u64>() {
                    Attempt::Done(v) => Some(v),
                    _ => None,
                }
            });
            let q = core(&words);
            assert!(matches!(q.try_push(&2u64), Attempt::Done(())));
            let mine = match q.try_pop::<u64>() {
                Attempt::Done(v) => Some(v),
                _ => None,
            };
            let theirs = t.join().unwrap();
            let mut got: Vec<u64> = [mine, theirs].into_iter().flatten().collect();
            while let Attempt::Done(v) = q.try_pop::<u64>() {
                got.push(v);
            }
            got.sort();
            assert_eq!(got, vec![1, 2], "every item popped exactly once");
        });
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::ObjectSegment;

    /// The pid of a process that has exited.
    fn dead_pid() -> u32 {
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        pid
    }

    #[test]
    fn dead_producer_and_dead_consumer_slots_are_recovered() {
        let name = format!("coll-qrec-{}", std::process::id());
        let seg = ObjectSegment::create(&name, 1 << 16).unwrap();
        let q = seg.queue::<u64>("q", 4).unwrap();
        let core = q.core();
        let dead = dead_pid();
        // A producer claimed position 0 and died before publishing.
        core.tail().store(1, Ordering::SeqCst);
        core.slot(0)[1].store(owner_tag(dead, false, 0), Ordering::SeqCst);
        q.try_push(7).unwrap();
        assert_eq!(q.try_pop(), None, "position 0 is held");
        assert_eq!(q.pop(Duration::from_secs(5)).unwrap(), 7);
        assert_eq!(q.recovered(), 1);
        // Fill positions 2..=5, then a consumer claims position 2 and dies.
        for v in 2..6 {
            q.try_push(v).unwrap();
        }
        core.head().store(3, Ordering::SeqCst);
        core.slot(2)[1].store(owner_tag(dead, true, 2), Ordering::SeqCst);
        assert_eq!(q.try_push(6), Err(6), "slot of position 2 is held");
        q.push(6, Duration::from_secs(5)).unwrap();
        assert_eq!(q.recovered(), 2);
        let rest: Vec<u64> = std::iter::from_fn(|| q.try_pop()).collect();
        assert_eq!(rest, vec![3, 4, 5, 6]);
        // A claim whose tag is stale (holder unknown) is never skipped, even
        // if the stale tag's pid is dead: typed timeout.
        core.slot(7)[1].store(owner_tag(dead, true, 3), Ordering::SeqCst);
        core.tail().store(8, Ordering::SeqCst);
        assert!(matches!(q.pop(Duration::from_millis(50)), Err(Error::Timeout(_))));
        seg.unlink().unwrap();
    }
}
