//! The writer lock and the undo journal.
//!
//! The lock word holds the packed [`ProcessId`] of its owner (0 = free);
//! acquire is a CAS (Acquire), release a store. Waiters spin briefly, then
//! sleep on a futex in short slices; every 10 ms they check the owner's
//! liveness (pid + start time), and a waiter that finds it dead CASes the lock
//! over to itself and runs recovery before returning.
//!
//! Sleeping uses a `contended` flag rather than a waiter count, so a waiter
//! killed while asleep costs at most one spurious wake (a count would stay
//! too high forever and make every unlock a syscall): waiter `seen = wake_seq;
//! contended = 1; if owner != 0 { futex_wait(wake_seq, seen) }`, unlocker
//! `owner = 0; if contended { contended = 0; wake_seq += 1; futex_wake }`.
//! The flag and owner accesses are SeqCst (Dekker): either the unlocker sees
//! the flag, or the waiter sees the lock free. Every sleep is bounded (2 ms).
//!
//! Before the owner modifies an entry it saves the entry's words in the
//! journal and only then makes the entry's version odd. Recovery restores the
//! saved image if (and only if) the entry is still odd, so every entry
//! mutation is all-or-nothing; everything else (index, allocator, free list,
//! gauges) is rebuilt from the entry table.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use venom_core::loom::sync::{Ordering, fence};
use venom_core::{Liveness, ProcessId};

use super::KvCache;
use crate::error::{Error, Result};

/// How long `put`/`delete`/`clear` wait for a live writer.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(5);
const LIVENESS_EVERY: Duration = Duration::from_millis(10);

static PAUSE_HOOK: OnceLock<fn(&'static str)> = OnceLock::new();

/// Test support: installs a function called at named points inside write
/// operations (`"put:value-written"`, `"put:inside-insert"`,
/// `"put:inside-update"`, `"put:published"`). Crash tests use it to stop a
/// writer at a precise point and SIGKILL it. Only the first call has effect.
#[doc(hidden)]
pub fn set_pause_hook(hook: fn(&'static str)) {
    let _ = PAUSE_HOOK.set(hook);
}

#[inline]
pub(crate) fn pause_point(name: &'static str) {
    if let Some(hook) = PAUSE_HOOK.get() {
        hook(name);
    }
}

/// Proof of holding the writer lock; releases it on drop.
pub(crate) struct WriterGuard<'a> {
    cache: &'a KvCache,
}

impl Drop for WriterGuard<'_> {
    fn drop(&mut self) {
        let lock = &self.cache.header().lock;
        // SeqCst (includes Release: everything written under the lock
        // happens-before the next owner's Acquire CAS) for the Dekker pair
        // with a sleeping waiter, see the module docs.
        lock.owner.store(0, Ordering::SeqCst);
        if lock.contended.load(Ordering::SeqCst) != 0 && lock.contended.swap(0, Ordering::SeqCst) != 0 {
            lock.wake_seq.fetch_add(1, Ordering::SeqCst);
            venom_core::futex::wake(&lock.wake_seq, u32::MAX);
        }
    }
}

impl KvCache {
    fn me(&self) -> u64 {
        self.me
    }

    /// Acquires the writer lock, stealing it from a dead owner (and
    /// recovering) if necessary.
    pub(crate) fn lock(&self) -> Result<WriterGuard<'_>> {
        let lock = &self.header().lock;
        let me = self.me();
        // Acquire: pairs with the previous owner's Release in `drop`.
        if lock.owner.compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed).is_ok() {
            return Ok(WriterGuard { cache: self });
        }
        let start = Instant::now();
        let mut last_check: Option<Instant> = None;
        loop {
            for _ in 0..100 {
                venom_core::loom::spin_hint();
                if lock.owner.load(Ordering::Relaxed) == 0
                    && lock.owner.compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed).is_ok()
                {
                    return Ok(WriterGuard { cache: self });
                }
            }
            let owner = lock.owner.load(Ordering::Relaxed);
            if owner != 0 && owner != me && last_check.is_none_or(|t| t.elapsed() >= LIVENESS_EVERY) {
                last_check = Some(Instant::now());
                if ProcessId::packed_liveness(owner) == Liveness::Dead
                    && lock.owner.compare_exchange(owner, me, Ordering::Acquire, Ordering::Relaxed).is_ok()
                {
                    let guard = WriterGuard { cache: self };
                    self.recover()?;
                    return Ok(guard);
                }
            }
            if start.elapsed() >= LOCK_TIMEOUT {
                return Err(Error::Timeout(LOCK_TIMEOUT));
            }
            // Sleep until an unlock (bounded slice; see the module docs).
            let seen = lock.wake_seq.load(Ordering::SeqCst);
            lock.contended.store(1, Ordering::SeqCst);
            if lock.owner.load(Ordering::SeqCst) != 0 {
                venom_core::futex::wait(&lock.wake_seq, seen, Duration::from_millis(2));
            }
        }
    }

    /// Reader path: if the lock owner is dead, take the lock (which recovers)
    /// and release it. Returns whether a recovery ran.
    pub(crate) fn recover_if_owner_dead(&self) -> Result<bool> {
        let owner = self.header().lock.owner.load(Ordering::Relaxed);
        if owner == 0 || owner == self.me() || ProcessId::packed_liveness(owner) != Liveness::Dead {
            return Ok(false);
        }
        drop(self.lock()?);
        Ok(true)
    }

    /// Saves entry `e`'s words before a mutation (lock held).
    pub(crate) fn journal_begin(&self, e: usize) {
        let j = &self.header().journal;
        let h = self.entry(e);
        let words =
            [&h.hash, &h.lens, &h.block, &h.expires_at, &h.created_at, &h.last_access, &h.access_count, &h.referenced];
        for (slot, w) in j.image.iter().zip(words) {
            // Relaxed: ordered before the odd version by the fence below.
            slot.store(w.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        j.active.store(e as u64 + 1, Ordering::Relaxed);
        // Release fence: a recoverer that sees the entry's odd version (after
        // its Acquire fence) also sees the complete journal.
        fence(Ordering::Release);
    }

    /// Marks the journalled mutation complete.
    pub(crate) fn journal_end(&self) {
        // Release: the completed entry is visible before the journal clears.
        self.header().journal.active.store(0, Ordering::Release);
    }

    /// Rolls back a half-done entry mutation and rebuilds everything derived
    /// (lock held, previous owner dead).
    pub(crate) fn recover(&self) -> Result<()> {
        // Acquire: see everything the dead owner stored.
        fence(Ordering::Acquire);
        let hdr = self.header();
        let j = hdr.journal.active.load(Ordering::Relaxed);
        if j != 0 && ((j - 1) as usize) < self.layout.max_entries {
            let h = self.entry((j - 1) as usize);
            let v = h.version.load(Ordering::Relaxed);
            if v & 1 == 1 {
                let words = [
                    &h.hash,
                    &h.lens,
                    &h.block,
                    &h.expires_at,
                    &h.created_at,
                    &h.last_access,
                    &h.access_count,
                    &h.referenced,
                ];
                for (w, saved) in words.iter().zip(&hdr.journal.image) {
                    w.store(saved.load(Ordering::Relaxed), Ordering::Relaxed);
                }
                // Release: readers that see the even version see the
                // restored image. The version moves on (v + 1), so readers
                // that copied the half-written state fail validation.
                h.version.store(v.wrapping_add(1), Ordering::Release);
            }
        }
        hdr.journal.active.store(0, Ordering::Relaxed);
        self.rebuild_derived()?;
        hdr.gauges.recoveries.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}
