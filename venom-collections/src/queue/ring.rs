//! The Vyukov ring over a slice of words (see the module docs of `queue`).

use bytemuck::Pod;
use venom_core::loom::sync::{AtomicU64, Ordering};

use crate::ctl::pid_alive;
use crate::patience::Contention;
use crate::words::{LINE_WORDS, load_elem, store_elem};

pub(crate) const HEAD: usize = 0;
pub(crate) const TAIL: usize = LINE_WORDS;
pub(crate) const NOT_EMPTY: usize = 2 * LINE_WORDS;
pub(crate) const NOT_FULL: usize = NOT_EMPTY + 1;
pub(crate) const RECOVERED: usize = NOT_EMPTY + 2;
pub(crate) const HEADER_WORDS: usize = 3 * LINE_WORDS;
pub(crate) const POS_MASK: u64 = (1 << 41) - 1;
pub(crate) const CONSUMER: u64 = 1 << 41;

/// The owner tag of `pid` holding position `pos` as producer or consumer.
#[inline]
pub(crate) fn owner_tag(pid: u32, consumer: bool, pos: u64) -> u64 {
    (u64::from(pid) << 42) | if consumer { CONSUMER } else { 0 } | (pos & POS_MASK)
}

/// Spins on an in-flight slot before a non-blocking call gives up.
pub(crate) const INFLIGHT_SPINS: u32 = 128;

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
    /// `HEADER_WORDS + (mask + 1) * stride` words (checked by the caller).
    pub words: &'a [AtomicU64],
    /// `capacity - 1`, capacity a power of two >= 2.
    pub mask: u64,
    /// Words per slot (>= 3: stamp, owner tag, value words).
    pub stride: usize,
    /// Pid recorded in owner tags.
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
    pub(crate) fn capacity(&self) -> u64 {
        self.mask + 1
    }

    #[inline]
    pub(crate) fn slot(&self, pos: u64) -> &'a [AtomicU64] {
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
