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
//!   blocking calls reaching it return [`Error::Timeout`](crate::Error::Timeout) (nothing spins or
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

mod handle;
mod ring;
#[cfg(test)]
mod tests; // unit tests (recovery) and loom models

pub use handle::*;
