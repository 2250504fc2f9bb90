//! The participants table: one intent record per thread using a queue, and
//! the per-thread cache that finds it (see the module docs of `queue`).

use std::cell::{Cell, RefCell};
use std::sync::{Arc, Mutex, Weak};

use venom_core::loom::sync::Ordering;

use super::ring::*;
use crate::object_segment::Region;

/// Source of [`Roster::id`]s: never reused within a process, so a cached id
/// can never name a different (dropped and replaced) handle.
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

thread_local! {
    /// The `(roster id, intent word)` this thread used last: the fast path.
    static LAST: Cell<(u64, usize)> = const { Cell::new((0, 0)) };
    /// The one used before `LAST`, so that a thread moving items from one
    /// queue to another stays off the slow path.
    static PREV: Cell<(u64, usize)> = const { Cell::new((0, 0)) };
    /// Every record this thread holds, released when it exits.
    static SEATS: RefCell<Vec<Seat>> = const { RefCell::new(Vec::new()) };
}

/// A thread's registration with one handle; gives its record back when the
/// thread exits (if the handle is still alive; otherwise the handle did).
struct Seat {
    id: u64,
    word: usize,
    roster: Weak<Roster>,
}

impl Drop for Seat {
    fn drop(&mut self) {
        // A queue used from a later thread-local destructor must not reuse
        // the record released here (`LAST` itself is never destroyed).
        for cache in [&LAST, &PREV] {
            if cache.get().0 == self.id {
                cache.set((0, 0));
            }
        }
        if let Some(r) = self.roster.upgrade() {
            r.give_back(Some(self.word));
        }
    }
}

/// The per-handle side of the table: which records the threads using this
/// handle hold. Dropping it (with the handle) releases them all.
pub(crate) struct Roster {
    /// Unique in this process (from `NEXT_ID`).
    id: u64,
    /// The queue's words; owned here so a thread exiting after the handle was
    /// dropped can still release its record safely.
    pub(crate) region: Region,
    pub(crate) mask: u64,
    pub(crate) stride: usize,
    /// This process as a packed `ProcessId` (sampled when the handle was made).
    me: u64,
    /// Intent words of the records held through this handle (`SCRATCH` for
    /// an anonymous registration).
    held: Mutex<Vec<usize>>,
}

// SAFETY: `region` is a reference-counted mapping (`Arc<Segment>`) plus a
// pointer into it that is only read through atomics, valid for as long as the
// roster lives; `held` is behind a Mutex and the rest are plain integers.
unsafe impl Send for Roster {}
// SAFETY: as above; every method takes `&self` and touches shared memory
// through atomics only.
unsafe impl Sync for Roster {}

impl Roster {
    pub(crate) fn new(region: Region, stride: usize) -> Roster {
        let mask = region.capacity - 1;
        Roster {
            // Relaxed: only uniqueness matters.
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            region,
            mask,
            stride,
            me: venom_core::ProcessId::current().pack(),
            held: Mutex::new(Vec::new()),
        }
    }

    /// This handle's process-unique id.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The calling thread's intent word (`id` is `self.id()`, passed in so
    /// that the fast path reads nothing behind the `Arc`).
    #[inline]
    pub(crate) fn intent(self: &Arc<Self>, id: u64) -> usize {
        let (last, word) = LAST.get();
        if last == id { word } else { self.swap_in(id) }
    }

    /// `intent` when this handle is not the last one used: `PREV`, else the
    /// thread's seat; either way it becomes `LAST`.
    #[cold]
    fn swap_in(self: &Arc<Self>, id: u64) -> usize {
        let (prev, word) = PREV.get();
        let word = if prev == id { word } else { self.seat() };
        PREV.set(LAST.get());
        LAST.set((id, word));
        word
    }

    /// The slow path of `intent`: finds or claims this thread's record.
    #[cold]
    fn seat(self: &Arc<Self>) -> usize {
        let found = SEATS.try_with(|seats| {
            let mut seats = seats.borrow_mut();
            if let Some(s) = seats.iter().find(|s| s.id == self.id) {
                return s.word;
            }
            // Forget seats of dropped handles (their records went with them).
            seats.retain(|s| s.roster.strong_count() > 0);
            let word = self.register();
            seats.push(Seat { id: self.id, word, roster: Arc::downgrade(self) });
            word
        });
        // Thread-local storage already destroyed (a queue used from a TLS
        // destructor): the record is released with the handle instead.
        found.unwrap_or_else(|_| self.register())
    }

    /// Claims a record (or registers anonymously) and notes it in `held`.
    fn register(&self) -> usize {
        let core = self.bare();
        let word = match core.claim_record(self.me) {
            Some(i) => record(i) + 1,
            None => {
                // SeqCst: see `recover` (before any claim of ours).
                core.words[ANON].fetch_add(1, Ordering::SeqCst);
                SCRATCH
            }
        };
        self.held.lock().unwrap_or_else(|e| e.into_inner()).push(word);
        word
    }

    /// Releases `word` (or, with `None`, every record held through this
    /// handle). Each record is released once: whoever removes it from `held`.
    fn give_back(&self, word: Option<usize>) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let gone: Vec<usize> = match word {
            Some(w) => held.iter().position(|&h| h == w).map(|i| held.swap_remove(i)).into_iter().collect(),
            None => std::mem::take(&mut *held),
        };
        drop(held);
        let core = self.bare();
        for w in gone {
            core.release(w);
        }
    }

    /// The algorithm without an intent word of our own (for table upkeep).
    fn bare(&self) -> QueueCore<'_> {
        QueueCore { words: self.region.words(), mask: self.mask, stride: self.stride, intent: SCRATCH }
    }
}

impl Drop for Roster {
    fn drop(&mut self) {
        self.give_back(None);
    }
}

impl QueueCore<'_> {
    /// Whether a record's intent may still describe an unfinished claim: the
    /// slot is at `pos` (unpublished or published) and the counter is past it.
    pub(crate) fn intent_pending(&self, word: u64) -> bool {
        if word & VALID == 0 {
            return false;
        }
        let pos = word & POS_MASK;
        // Acquire: as in `recover`.
        let stamp = self.slot(pos)[0].load(Ordering::Acquire);
        let counter = if word & CONSUMER != 0 { self.head() } else { self.tail() };
        // SeqCst: as in `recover`.
        (stamp == pos || stamp == pos + 1) && counter.load(Ordering::SeqCst) > pos
    }

    /// Claims a participant record for `me` (a packed `ProcessId`, non-zero):
    /// a free one, else one whose owner is dead and whose intent is no longer
    /// pending. Returns its index.
    pub(crate) fn claim_record(&self, me: u64) -> Option<usize> {
        for reclaim in [false, true] {
            for i in 0..PARTICIPANTS {
                let rec = record(i);
                // Relaxed: validated by the CAS below.
                let owner = self.words[rec].load(Ordering::Relaxed);
                if reclaim {
                    // Acquire: the dead owner's last intent.
                    if owner == 0
                        || owner_alive(owner)
                        || self.intent_pending(self.words[rec + 1].load(Ordering::Acquire))
                    {
                        continue;
                    }
                } else if owner != 0 {
                    continue;
                }
                // AcqRel: after the previous owner's release; our intents
                // follow it.
                if self.words[rec].compare_exchange(owner, me, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                    // Release: as in `withdraw`.
                    self.words[rec + 1].store(0, Ordering::Release);
                    return Some(i);
                }
            }
        }
        None
    }

    /// Gives back a record claimed by `claim_record`, or an anonymous
    /// registration (`intent == SCRATCH`). The thread must not be mid-claim.
    pub(crate) fn release(&self, intent_word: usize) {
        if intent_word == SCRATCH {
            // SeqCst: pairs with the fetch_add (see `recover`).
            self.words[ANON].fetch_sub(1, Ordering::SeqCst);
            return;
        }
        // Release (both): our completed claims happen before the record's
        // next owner and before any scanner that reads the cleared words.
        self.words[intent_word].store(0, Ordering::Release);
        self.words[intent_word - 1].store(0, Ordering::Release);
    }
}
