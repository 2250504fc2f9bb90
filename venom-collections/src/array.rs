//! [`Array<T>`]: a fixed-length array in shared memory with atomic element
//! access.
//!
//! * Elements of at most 8 bytes live in one `AtomicU64` word each (the rest
//!   of the word is zero), so `load`/`store` are single atomic instructions
//!   and numeric elements ([`Numeric`]) also get `fetch_add` (CAS loop) and
//!   `compare_exchange`. Floats compare by **bit pattern** (`-0.0 != 0.0`, a
//!   NaN equals the same NaN), as `AtomicU64` on `f64::to_bits` would.
//! * Larger elements get a per-element seqlock (a `ctl` word, see `ctl`):
//!   writers CAS the word to busy (their pid inside), write, and publish the
//!   next version; readers retry until they read a version that did not
//!   move. Readers never see a torn element.
//!
//! Crash tolerance: word-sized operations are one instruction (nothing to
//! lose). A writer of a large element killed mid-store leaves it busy; the
//! next reader or writer that waits past its spin budget finds the pid dead
//! and publishes the element as it is — **possibly torn** (a mix of old and
//! new bytes), the one case where a torn value can be observed. Waits on a
//! live but stalled writer end with [`Error::Timeout`].

use std::marker::PhantomData;
use std::time::Duration;

use bytemuck::Pod;
use venom_core::loom::sync::{AtomicU64, Ordering, fence};

use crate::ctl::{Ctl, my_pid, pid_alive};
use crate::error::{Error, Result};
use crate::object_segment::Region;
use crate::patience::{DEFAULT_STALL_TIMEOUT, Patience};
use crate::words::{from_word, load_elem, store_elem, to_word, words_for};

/// Element types with atomic arithmetic in an [`Array`]: the primitive
/// integers (wrapping addition) and floats (IEEE addition).
pub trait Numeric: Pod + PartialEq {
    /// `self + rhs` (wrapping for integers).
    fn add(self, rhs: Self) -> Self;
}

macro_rules! numeric_int {
    ($($t:ty),*) => {$(
        impl Numeric for $t {
            #[inline]
            fn add(self, rhs: Self) -> Self { self.wrapping_add(rhs) }
        }
    )*};
}
numeric_int!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize);

impl Numeric for f32 {
    #[inline]
    fn add(self, rhs: Self) -> Self {
        self + rhs
    }
}

impl Numeric for f64 {
    #[inline]
    fn add(self, rhs: Self) -> Self {
        self + rhs
    }
}

/// A fixed-length array of `T` in an [`ObjectSegment`](crate::ObjectSegment).
///
/// ```
/// use venom_collections::ObjectSegment;
/// let name = format!("doc-array-{}", std::process::id());
/// let seg = ObjectSegment::create(&name, 1 << 20)?;
/// let a = seg.array::<f64>("prices", 1000)?;
/// a.store(0, 42.5)?;
/// assert_eq!(a.fetch_add(0, 0.5)?, 42.5);
/// assert_eq!(a.compare_exchange(0, 43.0, 1.0)?, Ok(43.0));
/// a.copy_from_slice(1, &[1.0, 2.0])?;
/// let mut out = [0.0; 3];
/// a.copy_to_slice(0, &mut out)?;
/// assert_eq!(out, [1.0, 1.0, 2.0]);
/// seg.unlink()?;
/// # Ok::<(), venom_collections::Error>(())
/// ```
pub struct Array<T: Pod> {
    region: Region,
    len: u64,
    /// Words per element: 1 for word-sized `T`, else `1 + words_for::<T>()`.
    stride: usize,
    pid: u32,
    stall: Duration,
    _t: PhantomData<fn(T) -> T>,
}

const fn is_word<T>() -> bool {
    core::mem::size_of::<T>() <= 8
}

impl<T: Pod> Array<T> {
    pub(crate) fn stride() -> usize {
        if is_word::<T>() { 1 } else { 1 + words_for::<T>() }
    }

    pub(crate) fn from_region(region: Region) -> Self {
        let len = region.capacity;
        Array { region, len, stride: Self::stride(), pid: my_pid(), stall: DEFAULT_STALL_TIMEOUT, _t: PhantomData }
    }

    pub(crate) fn bytes(len: u64) -> Result<u64> {
        len.checked_mul(Self::stride() as u64 * 8)
            .map(|b| b.max(8))
            .ok_or_else(|| Error::InvalidConfig(format!("array length {len} is too large")))
    }

    #[inline]
    fn elem(&self, i: u64) -> Result<&[AtomicU64]> {
        if i >= self.len {
            return Err(Error::IndexOutOfBounds { index: i, len: self.len });
        }
        let at = i as usize * self.stride;
        Ok(&self.region.words()[at..at + self.stride])
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How long an access waits on a writer stuck mid-store of a large
    /// element before [`Error::Timeout`] (default 2 s).
    pub fn set_stall_timeout(&mut self, t: Duration) {
        self.stall = t;
    }

    /// Reads element `i`.
    #[inline]
    pub fn load(&self, i: usize) -> Result<T> {
        crate::object_segment::guarded(Some(self.region.segment()), self.load_unguarded(i))
    }

    #[inline]
    fn load_unguarded(&self, i: usize) -> Result<T> {
        let e = self.elem(i as u64)?;
        if is_word::<T>() {
            // Acquire: pairs with Release stores, so an element can publish
            // other data.
            return Ok(from_word(e[0].load(Ordering::Acquire)));
        }
        let mut patience = None;
        loop {
            let c = self.idle_ctl(e, &mut patience)?;
            let v = load_elem::<T>(&e[1..]);
            // Acquire fence: a newer write is reflected in the reload.
            fence(Ordering::Acquire);
            if e[0].load(Ordering::Relaxed) == c.0 {
                return Ok(v);
            }
        }
    }

    /// Writes element `i`.
    #[inline]
    pub fn store(&self, i: usize, v: T) -> Result<()> {
        crate::object_segment::guarded(Some(self.region.segment()), self.store_unguarded(i, v))
    }

    #[inline]
    fn store_unguarded(&self, i: usize, v: T) -> Result<()> {
        let e = self.elem(i as u64)?;
        if is_word::<T>() {
            // Release: see `load`.
            e[0].store(to_word(&v), Ordering::Release);
            return Ok(());
        }
        let mut patience = None;
        loop {
            let c = self.idle_ctl(e, &mut patience)?;
            let busy = Ctl::busy(0, self.pid, c.version());
            // Acquire: we follow the previous writer.
            if e[0].compare_exchange(c.0, busy.0, Ordering::Acquire, Ordering::Relaxed).is_err() {
                continue;
            }
            // Release fence: the busy word is ordered before the data writes.
            fence(Ordering::Release);
            store_elem(&e[1..], &v);
            // Release: publishes the element.
            e[0].store(Ctl::stable(0, c.version() + 1).0, Ordering::Release);
            return Ok(());
        }
    }

    /// Element `e`'s control word once no writer holds it: waits (bounded,
    /// repairing a dead writer's element) while it is busy.
    fn idle_ctl(&self, e: &[AtomicU64], patience: &mut Option<Patience>) -> Result<Ctl> {
        loop {
            // Acquire: seqlock read side (for `load`) and CAS expected value
            // (for `store`): the element's previous write is visible.
            let c = Ctl(e[0].load(Ordering::Acquire));
            if !c.is_busy() {
                return Ok(c);
            }
            self.wait(e, c, patience.get_or_insert_with(|| Patience::new(self.stall)))?;
        }
    }

    fn wait(&self, e: &[AtomicU64], c: Ctl, patience: &mut Patience) -> Result<()> {
        loop {
            // Acquire: the caller re-reads after a change.
            if e[0].load(Ordering::Acquire) != c.0 {
                return Ok(());
            }
            if patience.check_liveness() && !pid_alive(c.pid()) {
                // AcqRel: one repairer publishes the (possibly torn) element.
                let _ =
                    e[0].compare_exchange(c.0, Ctl::stable(0, c.version() + 1).0, Ordering::AcqRel, Ordering::Relaxed);
                return Ok(());
            }
            if !patience.wait() {
                return Err(Error::Timeout(self.stall));
            }
        }
    }

    /// Copies elements `start..start + dst.len()` into `dst` (each element
    /// atomically; the slice as a whole is not a snapshot).
    pub fn copy_to_slice(&self, start: usize, dst: &mut [T]) -> Result<()> {
        crate::object_segment::guarded(Some(self.region.segment()), self.copy_to_slice_unguarded(start, dst))
    }

    #[inline]
    fn copy_to_slice_unguarded(&self, start: usize, dst: &mut [T]) -> Result<()> {
        self.check_range(start, dst.len())?;
        for (k, out) in dst.iter_mut().enumerate() {
            *out = self.load(start + k)?;
        }
        Ok(())
    }

    /// Stores `src` into elements `start..start + src.len()`.
    pub fn copy_from_slice(&self, start: usize, src: &[T]) -> Result<()> {
        crate::object_segment::guarded(Some(self.region.segment()), self.copy_from_slice_unguarded(start, src))
    }

    #[inline]
    fn copy_from_slice_unguarded(&self, start: usize, src: &[T]) -> Result<()> {
        self.check_range(start, src.len())?;
        for (k, v) in src.iter().enumerate() {
            self.store(start + k, *v)?;
        }
        Ok(())
    }

    fn check_range(&self, start: usize, n: usize) -> Result<()> {
        match start.checked_add(n) {
            Some(end) if end as u64 <= self.len => Ok(()),
            // Report the first index that does not exist: `start` itself
            // when it is already past the end, else `len`. Never overflows.
            _ => Err(Error::IndexOutOfBounds { index: (start as u64).max(self.len), len: self.len }),
        }
    }
}

impl<T: Numeric> Array<T> {
    fn word(&self, i: usize) -> Result<&AtomicU64> {
        if !is_word::<T>() {
            return Err(Error::InvalidConfig("atomic arithmetic needs elements of at most 8 bytes".into()));
        }
        Ok(&self.elem(i as u64)?[0])
    }

    /// Atomically adds `v` to element `i` (wrapping for integers); returns
    /// the previous value.
    #[inline]
    pub fn fetch_add(&self, i: usize, v: T) -> Result<T> {
        crate::object_segment::guarded(Some(self.region.segment()), self.fetch_add_unguarded(i, v))
    }

    #[inline]
    fn fetch_add_unguarded(&self, i: usize, v: T) -> Result<T> {
        let w = self.word(i)?;
        // Relaxed: the CAS below decides.
        let mut cur = w.load(Ordering::Relaxed);
        loop {
            let new = to_word(&from_word::<T>(cur).add(v));
            // AcqRel: a read-modify-write that others may synchronise on.
            match w.compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return Ok(from_word(cur)),
                Err(x) => cur = x,
            }
        }
    }

    /// Atomically replaces element `i` with `new` if it equals `current` (bit
    /// for bit). `Ok(previous)` on success, `Err(actual)` otherwise.
    #[inline]
    pub fn compare_exchange(&self, i: usize, current: T, new: T) -> Result<std::result::Result<T, T>> {
        crate::object_segment::guarded(Some(self.region.segment()), self.compare_exchange_unguarded(i, current, new))
    }

    #[inline]
    fn compare_exchange_unguarded(&self, i: usize, current: T, new: T) -> Result<std::result::Result<T, T>> {
        let w = self.word(i)?;
        // AcqRel / Acquire: as a std atomic compare_exchange.
        Ok(w.compare_exchange(to_word(&current), to_word(&new), Ordering::AcqRel, Ordering::Acquire)
            .map(from_word)
            .map_err(from_word))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use crate::ObjectSegment;
    use crate::ctl::Ctl;
    use venom_core::loom::sync::Ordering;

    #[test]
    fn large_element_left_busy_by_a_dead_writer_is_repaired() {
        let name = format!("coll-arec-{}", std::process::id());
        let seg = ObjectSegment::create(&name, 1 << 16).unwrap();
        let a = seg.array::<[u64; 3]>("a", 4).unwrap();
        a.store(1, [7; 3]).unwrap();
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let dead = c.id();
        c.wait().unwrap();
        let w = &a.region.words()[4];
        let v = Ctl(w.load(Ordering::SeqCst)).version();
        w.store(Ctl::busy(0, dead, v).0, Ordering::SeqCst);
        assert_eq!(a.load(1).unwrap(), [7; 3]);
        a.store(1, [8; 3]).unwrap();
        assert_eq!(a.load(1).unwrap(), [8; 3]);
        seg.unlink().unwrap();
    }
}

impl<T: Pod> Array<T> {
    /// Fails with `Error::Core(Truncated)` if the segment's file was shrunk
    /// under this process's mapping. `Result`-returning methods check this
    /// themselves; the others (`len`, `try_pop`, ...) see a lost mapping as
    /// zeroes, and this tells the two apart.
    pub fn check_mapped(&self) -> crate::Result<()> {
        self.region.check_mapped()
    }
}
