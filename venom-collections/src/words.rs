//! Element storage in shared memory: values are kept as runs of 8-byte
//! atomic words.
//!
//! Every structure in this crate sees its part of the segment as a slice of
//! [`AtomicU64`] (from the `venom_core::loom` facade, so the same code runs
//! under loom on heap-allocated words). A `Pod` value of `n` bytes occupies
//! `ceil(n / 8)` words; the tail of the last word is zero padding. Copies are
//! per-word `Relaxed` atomics (or `venom_core::atomic_copy` for large values),
//! so a racing reader never performs a non-atomic access; whether the copy is
//! *consistent* is the job of each structure's protocol (stamps, seqlocks).

use bytemuck::Pod;
use venom_core::loom::sync::{AtomicU64, Ordering};

/// Words per cache line pair (128 bytes: x86_64 adjacent-line prefetch and
/// aarch64 big-core lines), used to keep hot counters apart.
pub(crate) const LINE_WORDS: usize = 16;

/// Number of 8-byte words a `T` occupies (at least one, so that zero-sized
/// types still have a slot).
pub(crate) const fn words_for<T>() -> usize {
    let w = core::mem::size_of::<T>().div_ceil(8);
    if w == 0 { 1 } else { w }
}

/// Writes `v` into `dst` (at least `words_for::<T>()` words).
#[inline]
pub(crate) fn store_elem<T: Pod>(dst: &[AtomicU64], v: &T) {
    if core::mem::size_of::<T>() <= 8 {
        // Relaxed: publication is ordered by the caller's protocol.
        dst[0].store(to_word(v), Ordering::Relaxed);
        return;
    }
    let bytes = bytemuck::bytes_of(v);
    #[cfg(not(loom))]
    if bytes.len() >= venom_core::atomic_copy::ASM_THRESHOLD {
        assert!(dst.len() * 8 >= bytes.len());
        // SAFETY: `dst` covers at least `bytes.len()` bytes (asserted) of live
        // words; atomic_copy::store performs only atomic-equivalent accesses,
        // which may race with other atomic accesses to the same words.
        unsafe { venom_core::atomic_copy::store(dst.as_ptr() as *mut u8, bytes) };
        return;
    }
    for (word, chunk) in dst.iter().zip(bytes.chunks(8)) {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        // Relaxed: publication is ordered by the caller's protocol.
        word.store(u64::from_ne_bytes(w), Ordering::Relaxed);
    }
}

/// Reads a `T` from `src` (at least `words_for::<T>()` words).
#[inline]
pub(crate) fn load_elem<T: Pod>(src: &[AtomicU64]) -> T {
    if core::mem::size_of::<T>() <= 8 {
        // Relaxed: consistency is checked by the caller's protocol.
        return from_word(src[0].load(Ordering::Relaxed));
    }
    let mut v = T::zeroed();
    let bytes = bytemuck::bytes_of_mut(&mut v);
    #[cfg(not(loom))]
    if bytes.len() >= venom_core::atomic_copy::ASM_THRESHOLD {
        assert!(src.len() * 8 >= bytes.len());
        // SAFETY: as in `store_elem`; `bytes` is private memory.
        unsafe { venom_core::atomic_copy::load(src.as_ptr() as *const u8, bytes) };
        return v;
    }
    for (word, chunk) in src.iter().zip(bytes.chunks_mut(8)) {
        // Relaxed: consistency is checked by the caller's protocol.
        let w = word.load(Ordering::Relaxed).to_ne_bytes();
        let n = chunk.len();
        chunk.copy_from_slice(&w[..n]);
    }
    v
}

/// A `T` of at most 8 bytes as one word (zero padded).
#[inline]
pub(crate) fn to_word<T: Pod>(v: &T) -> u64 {
    let bytes = bytemuck::bytes_of(v);
    let mut w = [0u8; 8];
    w[..bytes.len()].copy_from_slice(bytes);
    u64::from_ne_bytes(w)
}

/// Inverse of [`to_word`].
#[inline]
pub(crate) fn from_word<T: Pod>(w: u64) -> T {
    let mut v = T::zeroed();
    let bytes = bytemuck::bytes_of_mut(&mut v);
    let n = bytes.len();
    bytes.copy_from_slice(&w.to_ne_bytes()[..n]);
    v
}

/// Heap-allocated zeroed words, for loom models and unit tests.
#[cfg(loom)]
pub(crate) fn heap_words(n: usize) -> Vec<AtomicU64> {
    (0..n).map(|_| AtomicU64::new(0)).collect()
}
