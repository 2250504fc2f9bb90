//! The Vyukov ring over a slice of words, with the intent records that make
//! claims recoverable (see the module docs of `queue`).

use bytemuck::Pod;
use venom_core::loom::sync::{AtomicU64, Ordering};

use crate::patience::Contention;
use crate::words::{LINE_WORDS, load_elem, store_elem};

pub(crate) const HEAD: usize = 0;
pub(crate) const TAIL: usize = LINE_WORDS;
pub(crate) const NOT_EMPTY: usize = 2 * LINE_WORDS;
pub(crate) const NOT_FULL: usize = NOT_EMPTY + 1;
pub(crate) const RECOVERED: usize = NOT_EMPTY + 2;
/// Threads registered without a record (table full); recovery is off while
/// it is non-zero.
pub(crate) const ANON: usize = NOT_EMPTY + 3;
/// The intent word of threads without a record: written, never scanned.
pub(crate) const SCRATCH: usize = 3 * LINE_WORDS;
/// First participant record: `[owner, intent, padding...]`, one line each.
pub(crate) const RECORDS: usize = 4 * LINE_WORDS;
/// Participant records per queue (threads using it at once, all processes).
#[cfg(not(loom))]
pub(crate) const PARTICIPANTS: usize = 64;
#[cfg(loom)]
pub(crate) const PARTICIPANTS: usize = 3;
pub(crate) const HEADER_WORDS: usize = RECORDS + PARTICIPANTS * LINE_WORDS;

/// Set in a live intent word.
pub(crate) const VALID: u64 = 1 << 63;
/// Set in the intent of a consumer (head) claim.
pub(crate) const CONSUMER: u64 = 1 << 62;
pub(crate) const POS_MASK: u64 = CONSUMER - 1;
/// Under loom, "the kernel says this owner is dead" is this bit in the
/// owner word, set by a model thread that stops (see `tests.rs`).
#[cfg(loom)]
pub(crate) const LOOM_DEAD: u64 = 1 << 63;

/// The intent word of a claim of position `pos` as producer or consumer.
#[inline]
pub(crate) fn intent(consumer: bool, pos: u64) -> u64 {
    VALID | if consumer { CONSUMER } else { 0 } | (pos & POS_MASK)
}

/// Word index of the owner word of record `i` (its intent word follows).
#[inline]
pub(crate) fn record(i: usize) -> usize {
    RECORDS + i * LINE_WORDS
}

/// Whether a record owner (a packed `ProcessId`, 0 = free) may still run.
pub(crate) fn owner_alive(owner: u64) -> bool {
    #[cfg(loom)]
    return owner & LOOM_DEAD == 0;
    #[cfg(not(loom))]
    crate::ctl::packed_alive(owner)
}

/// Spins on an in-flight slot before a non-blocking call gives up (few
/// under loom: each spin is a scheduling point).
#[cfg(not(loom))]
pub(crate) const INFLIGHT_SPINS: u32 = 128;
#[cfg(loom)]
pub(crate) const INFLIGHT_SPINS: u32 = 2;

/// Outcome of one non-blocking attempt.
pub(crate) enum Attempt<T> {
    Done(T),
    /// Full (push) or empty (pop).
    No,
    /// The slot for position `pos` is held by a peer mid-operation.
    Held(u64),
}

impl<T> Attempt<T> {
    #[inline(always)]
    fn map<U>(self, f: impl FnOnce(T) -> U) -> Attempt<U> {
        match self {
            Attempt::Done(t) => Attempt::Done(f(t)),
            Attempt::No => Attempt::No,
            Attempt::Held(pos) => Attempt::Held(pos),
        }
    }
}

/// Who the intent records say holds a position.
#[derive(Debug, PartialEq, Eq)]
enum Holders {
    /// Some record with that intent belongs to a live process.
    Live,
    /// At least one record has that intent and all their owners are dead.
    Dead,
    /// No record has that intent.
    Nobody,
}

/// The algorithm over a slice of words (shared memory or, under loom, heap).
pub(crate) struct QueueCore<'a> {
    /// `HEADER_WORDS + (mask + 1) * stride` words (checked by the caller).
    pub words: &'a [AtomicU64],
    /// `capacity - 1`, capacity a power of two >= 2.
    pub mask: u64,
    /// Words per slot (>= 2: stamp, value words).
    pub stride: usize,
    /// The calling thread's intent word: `record(i) + 1` for its record `i`,
    /// or `SCRATCH` if it has none (then `ANON > 0` while it is registered).
    pub intent: usize,
}

impl<'a> QueueCore<'a> {
    pub(crate) fn words_needed(capacity: u64, elem_words: usize) -> Option<usize> {
        (capacity as usize).checked_mul(1 + elem_words)?.checked_add(HEADER_WORDS)
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

    /// Announces that this thread is about to CAS `head`/`tail` from `pos`.
    /// Release: our previous claim's stamp store happens before anyone who
    /// reads this value (Acquire in `holders`), so a waiter that sees our
    /// intent move on also sees that claim completed. The claim CAS that
    /// follows is SeqCst (a release): whoever reads the counter past `pos`
    /// also sees this store (or a later one).
    #[inline]
    fn announce(&self, consumer: bool, pos: u64) {
        self.words[self.intent].store(intent(consumer, pos), Ordering::Release);
    }

    /// Withdraws an intent whose claim CAS failed, before returning without a
    /// claim (a live stale intent would block recovery of that position).
    #[inline]
    fn withdraw(&self) {
        // Release: as in `announce`.
        self.words[self.intent].store(0, Ordering::Release);
    }

    /// Returns `r` (no claim made), withdrawing our intent.
    #[inline]
    fn give_up<R>(&self, r: Attempt<R>) -> Attempt<R> {
        self.withdraw();
        r
    }

    #[inline]
    pub(crate) fn try_push<T: Pod>(&self, v: &T) -> Attempt<()> {
        self.claim(false).map(|(tail, slot)| {
            store_elem(&slot[1..], v);
            // Release: publishes the value.
            slot[0].store(tail + 1, Ordering::Release);
        })
    }

    #[inline]
    pub(crate) fn try_pop<T: Pod>(&self) -> Attempt<T> {
        self.claim(true).map(|(head, slot)| {
            let v = load_elem::<T>(&slot[1..]);
            // Release: our read happens before the next write.
            slot[0].store(head + self.capacity(), Ordering::Release);
            v
        })
    }

    /// Vyukov's claim loop, written once for both ends: a producer claims
    /// `tail` (its slot is ready when the stamp equals the position: freed
    /// by the consumer of the previous lap), a consumer claims `head` (ready
    /// when the stamp is the position + 1: published). Returns the claimed
    /// position and its slot; the caller moves the value and stores the
    /// slot's next stamp with Release.
    #[inline(always)]
    fn claim(&self, consumer: bool) -> Attempt<(u64, &'a [AtomicU64])> {
        let (mine, other, ready) = if consumer { (self.head(), self.tail(), 1) } else { (self.tail(), self.head(), 0) };
        // Relaxed: only a hint; the slot stamp (Acquire) decides.
        let mut pos = mine.load(Ordering::Relaxed);
        let mut spins = 0;
        let mut backoff = Contention::default();
        loop {
            let slot = self.slot(pos);
            // Announced before the stamp load, so that the store commits
            // while the load is in flight (the CAS must wait for it).
            self.announce(consumer, pos);
            // Acquire: pairs with the other end's Release stamp store (the
            // consumer's that freed the slot, so its read of the old value
            // happens before our write; the producer's that published it).
            let stamp = slot[0].load(Ordering::Acquire);
            if stamp == pos + ready {
                // SeqCst: the counter CAS is the "condition" half of the
                // not_empty / not_full event-count handshake (see `notify`),
                // and the release that publishes our intent to recoverers.
                match mine.compare_exchange_weak(pos, pos + 1, Ordering::SeqCst, Ordering::Relaxed) {
                    Ok(_) => return Attempt::Done((pos, slot)),
                    Err(p) => {
                        pos = p;
                        backoff.spin();
                    }
                }
            } else if stamp < pos + ready {
                // The slot is not ready for `pos`: the ring is full (producer)
                // or empty (consumer), or the other end's claimant of this
                // slot is mid-operation. SeqCst pairs with the other end's CAS.
                let o = other.load(Ordering::SeqCst);
                let exhausted = if consumer { o <= pos } else { o.wrapping_add(self.capacity()) <= pos };
                if exhausted {
                    return self.give_up(Attempt::No);
                }
                spins += 1;
                if spins > INFLIGHT_SPINS {
                    // The position a peer is mid-operation on: ours for a
                    // consumer waiting on a producer mid-push, the previous
                    // lap's for a producer waiting on a consumer mid-pop
                    // (wrapping: a corrupt stamp must not panic here).
                    let held = if consumer { pos } else { pos.wrapping_sub(self.capacity()) };
                    return self.give_up(Attempt::Held(held));
                }
                venom_core::loom::spin_hint();
                pos = mine.load(Ordering::Relaxed);
            } else {
                // Another claimant of our end got here first, so the counter
                // has moved on. If it has not, the stamp is from the future:
                // corrupt memory.
                let p = mine.load(Ordering::Relaxed);
                if p == pos {
                    spins += 1;
                    if spins > INFLIGHT_SPINS {
                        return self.give_up(Attempt::No);
                    }
                }
                pos = p;
            }
        }
    }

    /// Scans the records for the intent `(consumer, pos)`, skipping our own
    /// (we are not mid-claim: any match there is a withdrawn-in-spirit
    /// leftover). Must run after the load of `head`/`tail` that showed the
    /// claim (see the module docs).
    fn holders(&self, consumer: bool, pos: u64) -> Holders {
        let want = intent(consumer, pos);
        let mut dead = false;
        for i in 0..PARTICIPANTS {
            let rec = record(i);
            if rec + 1 == self.intent {
                continue;
            }
            // Acquire: pairs with `announce` (Release), so a later intent of
            // the same thread implies its claim of `pos` completed.
            if self.words[rec + 1].load(Ordering::Acquire) != want {
                continue;
            }
            // Acquire: pairs with the Release of `release`/`claim_record`, so
            // a changed owner implies the old owner was done with `pos`.
            let owner = self.words[rec].load(Ordering::Acquire);
            if owner == 0 {
                continue; // released: its thread had finished
            }
            if owner_alive(owner) {
                return Holders::Live;
            }
            dead = true;
        }
        if dead { Holders::Dead } else { Holders::Nobody }
    }

    /// Frees position `pos` if the claim stalling it belongs to a dead
    /// process. Returns whether progress was made (recovered, or the slot
    /// moved on by itself).
    pub(crate) fn recover(&self, pos: u64) -> bool {
        let slot = self.slot(pos);
        // Acquire: the claim state is read after the stamp it belongs to.
        let stamp = slot[0].load(Ordering::Acquire);
        // SeqCst counter loads: they read the release sequence of the claim
        // CAS of `pos`, so the claimer's intent is visible to `holders`; and
        // they precede the ANON load in the SeqCst order (see below).
        let consumer = if stamp == pos && self.head().load(Ordering::SeqCst) > pos {
            true // a recoverer skipping a dead producer's position
        } else if stamp == pos && self.tail().load(Ordering::SeqCst) > pos {
            false // a producer that has not published
        } else if stamp == pos + 1 && self.head().load(Ordering::SeqCst) > pos {
            true // a consumer that has not freed the slot
        } else {
            return true;
        };
        // SeqCst: an anonymous thread's fetch_add precedes its claims, so a
        // claim we saw implies we see its count.
        if self.words[ANON].load(Ordering::SeqCst) != 0 {
            return false;
        }
        let holders = self.holders(consumer, pos);
        // Acquire: re-check after the scan; a finished holder is visible now.
        if slot[0].load(Ordering::Acquire) != stamp {
            return true;
        }
        if holders != Holders::Dead {
            return false;
        }
        if !consumer {
            // A dead producer claimed `pos` but never published: skip it by
            // claiming the position as its consumer, announced like any claim
            // so that our own death here is recoverable too.
            self.announce(true, pos);
            // SeqCst as in try_pop.
            if self.head().compare_exchange(pos, pos + 1, Ordering::SeqCst, Ordering::Relaxed).is_err() {
                self.withdraw();
                return true;
            }
        }
        // AcqRel: one recoverer wins and hands the slot to the producer of
        // pos + capacity (Release), after the dead holder's accesses.
        if slot[0].compare_exchange(stamp, pos + self.capacity(), Ordering::AcqRel, Ordering::Relaxed).is_err() {
            return true;
        }
        // Relaxed: a statistic.
        self.words[RECOVERED].fetch_add(1, Ordering::Relaxed);
        true
    }
}
