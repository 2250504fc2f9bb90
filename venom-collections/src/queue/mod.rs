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
//! on `head`; a claim is finished by the claimer's store of the slot stamp.
//!
//! # Intent records (crash recovery)
//! A waiter that finds a position stalled (claimed, not finished) must tell a
//! dead claimer from a live one that is merely descheduled, without guessing
//! from time. Every thread using a queue owns a *participant record* (one
//! 128-byte line in the queue's header, [`PARTICIPANTS`](ring::PARTICIPANTS)
//! of them, shared by all processes): `owner`, the packed `ProcessId` (pid
//! and start time) of its process, 0 when free, claimed by CAS; and
//! `intent = VALID | role | position`. Before every claim CAS the thread
//! stores the intent `(role, pos)` it is about to claim (right after reading
//! the counter, so the store commits while the stamp load is in flight);
//! that one plain store replaces the old per-slot owner tag, so a successful
//! `try_push`/`try_pop` costs no extra store and no extra locked
//! instruction. An attempt that ends without a claim (full, empty, held)
//! withdraws its intent with a second store. Invariants:
//!
//! 1. A thread's claim CAS of `(role, pos)` is preceded by its store of
//!    intent `(role, pos)`, and its record keeps that value at least until
//!    its stamp store finishing the claim (the next intent store, a
//!    withdrawal (0) after a failed CAS, or the release of the record all
//!    come after it in program order, all with `Release`). An intent for a
//!    position the thread did not win is overwritten by its next attempt or
//!    withdrawn before it returns.
//! 2. The claim CAS is `SeqCst` (a release); every later write of `head` /
//!    `tail` is an RMW, so a waiter whose `SeqCst` load reads the counter
//!    past `pos` synchronizes with the claim and then sees the claimer's
//!    intent `(role, pos)` or a later value; a later value (read with
//!    `Acquire`, stored with `Release` after the stamp) means the claim is
//!    finished, which the waiter sees when it re-reads the stamp.
//! 3. Hence, after reading the counter and scanning the records, a waiter
//!    that re-reads the stamp unchanged knows the claimer's record shows
//!    `(role, pos)`. It recovers the position only if at least one record
//!    shows `(role, pos)` and every such record's owner is dead: a live
//!    claimer is never robbed; records left by threads that announced `pos`
//!    but lost the CAS (or died before it) can only delay recovery while
//!    their thread lives (a live thread withdraws such an intent before it
//!    returns without a claim).
//! 4. Recovering is itself a claim: skipping a dead producer's position
//!    claims it as consumer (intent announced first), so a recoverer killed
//!    mid-way is recovered like anyone else. Freeing a dead consumer's slot
//!    is one CAS on the stamp.
//! 5. A record is freed when its thread exits (thread-local destructor) or
//!    its handle is dropped, and a dead process's record is reclaimed only
//!    once its intent is no longer pending (the slot has moved past the
//!    position, or the counter never reached it): the evidence of an
//!    unrecovered claim is never erased.
//! 6. If all records are taken, a thread registers *anonymously*: it bumps
//!    a counter instead and writes its intents to a scratch word nobody
//!    scans. While that counter is non-zero, recovery is off (waiters time
//!    out instead of guessing).
//!
//! Why `Release` and not `Relaxed` for the intent store: the claim CAS alone
//! would order a `Relaxed` intent before the claim (2), but "a later intent
//! implies the earlier claim finished" needs the later store itself to be a
//! release (a plain store does not extend a release sequence). On x86 both
//! compile to a plain `mov`.
//!
//! Each thread finds its record through a thread-local cache keyed by a
//! process-unique handle id: one thread-local read per operation. The loom
//! models in `tests.rs` kill a claimer between its intent and its CAS and
//! between its CAS and its stamp store, next to live peers and a recoverer.
//!
//! # Crash tolerance
//! * A producer killed after claiming a position and before publishing it
//!   loses that one item (its `push` never returned). Consumers reaching the
//!   position wait; once the records show its claimer dead, one of them
//!   skips the position (counted in [`Queue::recovered`]).
//! * A consumer killed after claiming a position and before freeing its slot
//!   loses the item it was popping (its `pop` never returned). Producers that
//!   wrap around to the slot find the dead holder and free it.
//! * There is no window: the intent is announced before the claim CAS, so a
//!   process killed at any instruction is recoverable. A killed process that
//!   had not claimed yet costs nothing. No item is ever delivered twice.
//! * Recovery happens inside the blocking [`Queue::push`]/[`Queue::pop`] (and
//!   [`Queue::recover`]); `try_*` report `Full`/empty instead of waiting.
//! * Limits: at most [`PARTICIPANTS`](ring::PARTICIPANTS) (64) threads, over
//!   all processes, hold records at once. Beyond that threads run
//!   anonymously (see 6): correct, but a stalled position then makes
//!   blocking calls return [`Error::Timeout`](crate::Error::Timeout) until
//!   the anonymous threads are gone; if an anonymous *process* is killed the
//!   counter never drops and recovery stays off for the queue's lifetime.
//! * Liveness is the packed `ProcessId` (pid + start time), so a reused pid
//!   does not look alive. Do not use a handle across `fork()`: the child
//!   would write into its parent's record. A thread's record is released when
//!   it exits, except the main thread's (Rust runs no thread-local
//!   destructors at process exit): it is reclaimed after the process dies.
//!
//! # Layout
//! ```text
//! word 0     head (own 128-byte line)
//! word 16    tail (own line)
//! word 32    not_empty: Doorbell | 33 not_full: Doorbell | 34 recovered | 35 anonymous threads
//! word 48    scratch intent word of anonymous threads (own line)
//! word 64    64 participant records, one line each: [owner, intent, unused...]
//! word 1088  slots: capacity × [stamp, value words..., padding to 2^k words]
//! ```

mod handle;
mod ring;
mod roster;
#[cfg(test)]
mod tests; // unit tests (recovery) and loom models

pub use handle::*;

/// Items in a queue's words, for [`ObjectSegment::objects`](crate::ObjectSegment::objects):
/// `tail - head` clamped to the capacity (a monitoring snapshot).
pub(crate) fn items_in(words: &[venom_core::loom::sync::AtomicU64], capacity: u64) -> Option<u64> {
    use venom_core::loom::sync::Ordering;
    // Relaxed: an approximate count for tools; nothing is read through it.
    let head = words.get(ring::HEAD)?.load(Ordering::Relaxed);
    let tail = words.get(ring::TAIL)?.load(Ordering::Relaxed);
    Some(tail.saturating_sub(head).min(capacity))
}
