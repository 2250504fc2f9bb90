//! Copies between private buffers and shared memory that another process may
//! be writing at the same time: a byte-wise atomic memcpy.
//!
//! A plain or volatile copy of such memory is a data race and therefore
//! undefined behaviour under the Rust memory model, even if a seqlock later
//! discards the result (see crossbeam's `AtomicCell` notes and C++ P1478,
//! "byte-wise atomic memcpy"). Every copy here is *defined* to behave as a
//! sequence of `Relaxed` atomic **byte** accesses, so racing copies are
//! sound; ordering comes from the fences of the caller's protocol (the
//! seqlock in `venom_core::seqlock`). Because the granularity is always one
//! byte, copies at different offsets and lengths never mix access sizes on the
//! same location (racing mixed-size atomics are not allowed in Rust).
//!
//! Rule for users: memory accessed through this module must not also be
//! accessed through `AtomicU32`/`AtomicU64` & co. concurrently. Keep control
//! words and copied payload in separate places.
//!
//! Implementations, all with that same meaning:
//! * **x86_64:** inline assembly, `rep movsb` for copies of at least
//!   [`ASM_THRESHOLD`] bytes (memcpy speed with ERMS, every x86_64 CPU since
//!   Ivy Bridge) and a qword/byte `mov` loop below it. An `asm!` block is
//!   opaque to the compiler; the hardware performs the copy with accesses
//!   that are each single-copy atomic at byte granularity (or coarser),
//!   which refines the byte-wise relaxed contract.
//! * **aarch64:** the same idea with an `ldp`/`stp` 16-byte loop and a byte
//!   tail.
//! * **Miri:** loops of `AtomicU8` accesses on the shared side, the contract
//!   spelled out, so Miri checks the protocols built on top.

#[cfg(miri)]
use core::sync::atomic::{AtomicU8, Ordering};

/// Copies of at least this many bytes use `rep movsb` on x86_64.
pub const ASM_THRESHOLD: usize = 256;

/// Copies `dst.len()` bytes from shared memory at `src` into `dst`.
///
/// # Safety
/// `src..src + dst.len()` must be valid for reads for the duration of the
/// call (a live mapping) and must not overlap `dst`. Concurrent writes by
/// other threads or processes are allowed if they also go through this
/// module.
#[inline]
pub unsafe fn load(src: *const u8, dst: &mut [u8]) {
    #[cfg(miri)]
    for (i, d) in dst.iter_mut().enumerate() {
        // SAFETY: in range (caller); AtomicU8 has alignment 1.
        *d = unsafe { (*(src.add(i) as *const AtomicU8)).load(Ordering::Relaxed) };
    }
    // SAFETY: forwarded caller contract; `dst` is a unique private borrow.
    #[cfg(not(miri))]
    unsafe {
        copy(dst.as_mut_ptr(), src, dst.len())
    }
}

/// Like [`load`], into uninitialised memory (e.g. a `Vec`'s spare
/// capacity); afterwards every byte of `dst` is initialised.
///
/// # Safety
/// As for [`load`].
#[inline]
pub unsafe fn load_uninit(src: *const u8, dst: &mut [core::mem::MaybeUninit<u8>]) {
    #[cfg(miri)]
    for (i, d) in dst.iter_mut().enumerate() {
        // SAFETY: in range (caller); AtomicU8 has alignment 1.
        d.write(unsafe { (*(src.add(i) as *const AtomicU8)).load(Ordering::Relaxed) });
    }
    // SAFETY: forwarded caller contract; `dst` is a unique private borrow,
    // and writing (never reading) uninitialised bytes is fine.
    #[cfg(not(miri))]
    unsafe {
        copy(dst.as_mut_ptr() as *mut u8, src, dst.len())
    }
}

/// Copies `src` into shared memory at `dst`.
///
/// # Safety
/// `dst..dst + src.len()` must be valid for writes for the duration of the
/// call and must not overlap `src`. Concurrent readers are allowed if they
/// also go through this module.
#[inline]
pub unsafe fn store(dst: *mut u8, src: &[u8]) {
    #[cfg(miri)]
    for (i, &b) in src.iter().enumerate() {
        // SAFETY: in range (caller); AtomicU8 has alignment 1.
        unsafe { (*(dst.add(i) as *const AtomicU8)).store(b, Ordering::Relaxed) };
    }
    // SAFETY: forwarded caller contract.
    #[cfg(not(miri))]
    unsafe {
        copy(dst, src.as_ptr(), src.len())
    }
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

/// The one copy routine behind [`load`] and [`store`].
///
/// # Safety
/// Both ranges valid for `len` bytes, not overlapping.
#[cfg(all(target_arch = "x86_64", not(miri)))]
#[inline]
unsafe fn copy(dst: *mut u8, src: *const u8, len: usize) {
    if len >= ASM_THRESHOLD {
        // SAFETY: caller guarantees both ranges; DF=0 is guaranteed by the
        // ABI at function boundaries and not changed here, so the copy runs
        // forwards. Only rcx/rsi/rdi are touched.
        unsafe {
            core::arch::asm!(
                "rep movsb",
                inout("rcx") len => _,
                inout("rsi") src => _,
                inout("rdi") dst => _,
                options(nostack, preserves_flags)
            );
        }
    } else {
        // SAFETY: as above; the loop reads/writes exactly `len` bytes, in
        // 8-byte (unaligned loads/stores are fine on x86) then 1-byte steps.
        unsafe {
            core::arch::asm!(
                "2:",
                "cmp {n}, 8",
                "jb 3f",
                "mov {t}, qword ptr [{s}]",
                "mov qword ptr [{d}], {t}",
                "add {s}, 8",
                "add {d}, 8",
                "sub {n}, 8",
                "jmp 2b",
                "3:",
                "test {n}, {n}",
                "jz 4f",
                "mov {t:l}, byte ptr [{s}]",
                "mov byte ptr [{d}], {t:l}",
                "inc {s}",
                "inc {d}",
                "dec {n}",
                "jmp 3b",
                "4:",
                s = inout(reg) src => _,
                d = inout(reg) dst => _,
                n = inout(reg) len => _,
                t = out(reg) _,
                options(nostack)
            );
        }
    }
}

/// See the x86_64 version.
///
/// # Safety
/// Both ranges valid for `len` bytes, not overlapping.
#[cfg(all(target_arch = "aarch64", not(miri)))]
#[inline]
unsafe fn copy(dst: *mut u8, src: *const u8, len: usize) {
    // SAFETY: caller guarantees both ranges; the loop moves exactly `len`
    // bytes, 16 at a time with post-indexed ldp/stp, then one at a time.
    unsafe {
        core::arch::asm!(
            "2:",
            "cmp {n}, #16",
            "b.lo 3f",
            "ldp {a}, {b}, [{s}], #16",
            "stp {a}, {b}, [{d}], #16",
            "sub {n}, {n}, #16",
            "b 2b",
            "3:",
            "cbz {n}, 4f",
            "ldrb {a:w}, [{s}], #1",
            "strb {a:w}, [{d}], #1",
            "sub {n}, {n}, #1",
            "b 3b",
            "4:",
            s = inout(reg) src => _,
            d = inout(reg) dst => _,
            n = inout(reg) len => _,
            a = out(reg) _,
            b = out(reg) _,
            options(nostack)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn miri_round_trips_every_alignment_and_size() {
        let sizes: &[usize] = if cfg!(miri) { &[0, 1, 7, 8, 9, 17] } else { &[0, 1, 7, 8, 9, 63, 255, 256, 257, 4000] };
        let mut shared = vec![0u64; 1200];
        let base = shared.as_mut_ptr() as *mut u8;
        for off in 0..9 {
            for &len in sizes {
                let src: Vec<u8> = (0..len).map(|i| (i * 7 + off) as u8).collect();
                let mut out = vec![0u8; len];
                // SAFETY: off + len <= 4009 < 9600 bytes of `shared`.
                unsafe {
                    store(base.add(off), &src);
                    load(base.add(off), &mut out);
                }
                assert_eq!(src, out, "off {off} len {len}");
                let mut un = vec![core::mem::MaybeUninit::<u8>::uninit(); len];
                // SAFETY: as above.
                unsafe { load_uninit(base.add(off), &mut un) };
                // SAFETY: `load_uninit` initialised every byte.
                assert!(un.iter().zip(&src).all(|(u, s)| unsafe { u.assume_init() } == *s));
            }
        }
        let n = if cfg!(miri) { 40 } else { 5000 };
        // SAFETY: as above.
        unsafe { fill(base.add(3), 0xAB, n) };
        let mut out = vec![0u8; n];
        // SAFETY: as above.
        unsafe { load(base.add(3), &mut out) };
        assert!(out.iter().all(|&b| b == 0xAB));
    }
}
