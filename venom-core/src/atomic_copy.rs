//! Copies between private buffers and shared memory that another process may
//! be writing at the same time.
//!
//! A plain or volatile copy of such memory is a data race and therefore
//! undefined behaviour under the Rust memory model, even if a seqlock later
//! discards the result (see crossbeam's `AtomicCell` notes and P1478,
//! "byte-wise atomic memcpy"). Every copy here is *defined* to behave as a
//! sequence of `Relaxed` atomic accesses of at most 8 bytes each, so racing
//! copies are sound; ordering comes from the fences of the caller's protocol
//! (the seqlock in [`crate::seqlock`]).
//!
//! Two implementations with that same meaning:
//! * **portable:** `AtomicU8` for an unaligned head and tail, `AtomicU64` for
//!   the aligned middle. Used on every target for copies below
//!   [`ASM_THRESHOLD`], and always on non-x86_64 targets and under Miri.
//! * **x86_64, large copies:** `rep movsb` in inline assembly. The assembly
//!   block is opaque to the compiler, and on x86_64 every aligned 1/2/4/8-byte
//!   access it performs is single-copy atomic; the block is equivalent to a
//!   sequence of relaxed byte-wise atomic accesses, which is exactly the
//!   contract above. With ERMS (every x86_64 CPU since Ivy Bridge) it runs at
//!   memcpy speed, which per-word atomics cannot (LLVM never vectorises
//!   atomic loads).

use core::sync::atomic::{AtomicU8, AtomicU64, Ordering};

/// Copies of at least this many bytes use the `rep movsb` path on x86_64.
pub const ASM_THRESHOLD: usize = 256;

/// Copies `dst.len()` bytes from shared memory at `src` into `dst`.
///
/// # Safety
/// `src..src + dst.len()` must be valid for reads for the duration of the
/// call (a live mapping). Concurrent writes by other threads or processes are
/// allowed if they too use atomic accesses (this module or atomics).
#[inline]
pub unsafe fn load(src: *const u8, dst: &mut [u8]) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    if dst.len() >= ASM_THRESHOLD {
        // SAFETY: src is readable for dst.len() bytes (caller), dst is a
        // unique writable slice; the ranges cannot overlap because dst is a
        // private `&mut` borrow. `rep movsb` with DF=0 (guaranteed by the
        // ABI at function boundaries and not changed here) copies forward.
        unsafe {
            core::arch::asm!(
                "rep movsb",
                inout("rcx") dst.len() => _,
                inout("rsi") src => _,
                inout("rdi") dst.as_mut_ptr() => _,
                options(nostack, preserves_flags)
            );
        }
        return;
    }
    // SAFETY: forwarded caller contract.
    unsafe { load_portable(src, dst) }
}

/// Copies `src` into shared memory at `dst`.
///
/// # Safety
/// `dst..dst + src.len()` must be valid for writes for the duration of the
/// call. Concurrent readers are allowed if they use atomic accesses.
#[inline]
pub unsafe fn store(dst: *mut u8, src: &[u8]) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    if src.len() >= ASM_THRESHOLD {
        // SAFETY: dst is writable for src.len() bytes (caller); src is a
        // shared borrow of private memory and cannot overlap the mapping.
        unsafe {
            core::arch::asm!(
                "rep movsb",
                inout("rcx") src.len() => _,
                inout("rsi") src.as_ptr() => _,
                inout("rdi") dst => _,
                options(nostack, preserves_flags)
            );
        }
        return;
    }
    // SAFETY: forwarded caller contract.
    unsafe { store_portable(dst, src) }
}

/// Fills `len` bytes of shared memory at `dst` with `byte`.
///
/// # Safety
/// As for [`store`].
pub unsafe fn fill(dst: *mut u8, byte: u8, len: usize) {
    let block = [byte; 4096];
    let mut off = 0;
    while off < len {
        let n = (len - off).min(block.len());
        // SAFETY: dst + off .. + n lies within the caller's range.
        unsafe { store(dst.add(off), &block[..n]) };
        off += n;
    }
}

/// The portable byte-wise atomic load.
///
/// # Safety
/// As for [`load`].
pub unsafe fn load_portable(src: *const u8, dst: &mut [u8]) {
    let len = dst.len();
    let head = (src.align_offset(8)).min(len);
    let mut i = 0;
    while i < head {
        // SAFETY: src + i is in range; AtomicU8 has alignment 1.
        dst[i] = unsafe { (*(src.add(i) as *const AtomicU8)).load(Ordering::Relaxed) };
        i += 1;
    }
    while i + 8 <= len {
        // SAFETY: src + i is 8-aligned (after the head) and in range.
        let w = unsafe { (*(src.add(i) as *const AtomicU64)).load(Ordering::Relaxed) };
        dst[i..i + 8].copy_from_slice(&w.to_ne_bytes());
        i += 8;
    }
    while i < len {
        // SAFETY: in range, alignment 1.
        dst[i] = unsafe { (*(src.add(i) as *const AtomicU8)).load(Ordering::Relaxed) };
        i += 1;
    }
}

/// The portable byte-wise atomic store.
///
/// # Safety
/// As for [`store`].
pub unsafe fn store_portable(dst: *mut u8, src: &[u8]) {
    let len = src.len();
    let head = (dst.align_offset(8)).min(len);
    let mut i = 0;
    while i < head {
        // SAFETY: dst + i is in range; AtomicU8 has alignment 1.
        unsafe { (*(dst.add(i) as *const AtomicU8)).store(src[i], Ordering::Relaxed) };
        i += 1;
    }
    while i + 8 <= len {
        let w = u64::from_ne_bytes(src[i..i + 8].try_into().unwrap_or([0; 8]));
        // SAFETY: dst + i is 8-aligned (after the head) and in range.
        unsafe { (*(dst.add(i) as *const AtomicU64)).store(w, Ordering::Relaxed) };
        i += 8;
    }
    while i < len {
        // SAFETY: in range, alignment 1.
        unsafe { (*(dst.add(i) as *const AtomicU8)).store(src[i], Ordering::Relaxed) };
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_alignment_and_size() {
        let mut shared = vec![0u64; 1200];
        let base = shared.as_mut_ptr() as *mut u8;
        for off in 0..9 {
            for len in [0, 1, 7, 8, 9, 63, 255, 256, 257, 4000] {
                let src: Vec<u8> = (0..len).map(|i| (i * 7 + off) as u8).collect();
                let mut out = vec![0u8; len];
                // SAFETY: off + len <= 4009 < 9600 bytes of `shared`.
                unsafe {
                    store(base.add(off), &src);
                    load(base.add(off), &mut out);
                }
                assert_eq!(src, out, "off {off} len {len}");
            }
        }
        // SAFETY: as above.
        unsafe { fill(base.add(3), 0xAB, 5000) };
        let mut out = vec![0u8; 5000];
        // SAFETY: as above.
        unsafe { load(base.add(3), &mut out) };
        assert!(out.iter().all(|&b| b == 0xAB));
    }
}
