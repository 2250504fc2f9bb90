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
//! [`Error::Timeout`](crate::Error::Timeout). Pids are checked without start time (see `ctl`).
//!
//! # Limits
//! No resizing; `insert` of a new key into a map whose every slot is
//! occupied returns [`Error::Full`](crate::Error::Full). Keep the load factor below ~70% for
//! short probe sequences. The hash is not DoS-resistant.

mod handle;
mod probe;
#[cfg(test)]
mod tests; // unit tests (recovery) and loom models

pub use handle::*;

/// Entries of a map's words, for [`ObjectSegment::objects`](crate::ObjectSegment::objects)
/// (approximate under concurrent writes).
pub(crate) fn items_in(words: &[venom_core::loom::sync::AtomicU64]) -> Option<u64> {
    // Relaxed: an approximate count for tools.
    Some((words.get(probe::LEN)?.load(venom_core::loom::sync::Ordering::Relaxed) as i64).max(0) as u64)
}
