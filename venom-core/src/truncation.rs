//! Surviving a segment file that shrinks under a live mapping.
//!
//! Any process that can open a segment (same uid, mode 0600 by default) can
//! `ftruncate` it. Every other process that has it mapped then gets `SIGBUS`
//! on its next access past the new end of file, which kills it. File seals
//! (`F_SEAL_SHRINK`) would prevent the shrink, but they exist only for
//! `memfd` files, not for named `/dev/shm` objects.
//!
//! So venom turns the fault into a typed error instead:
//!
//! * every mapping venom makes is recorded in a fixed-size, lock-free
//!   registry (start, length, a *lost* flag; slots are seqlocked so the
//!   handler never reads a torn range);
//! * a `SIGBUS` handler (installed once, `SA_SIGINFO | SA_ONSTACK`) looks the
//!   fault address up. If it lies in a registered mapping, the handler
//!   replaces the **whole** mapping in place with private anonymous zero
//!   pages (`mmap(MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS)`, a plain syscall,
//!   async-signal-safe), marks it lost and returns: the faulting instruction
//!   re-executes on a zero page;
//! * every public operation checks the lost flag before it reports success
//!   ([`Segment::check_mapped`](crate::Segment::check_mapped)) and returns
//!   [`Error::Truncated`](crate::Error::Truncated) instead, so the zeroes are
//!   never handed out as data;
//! * blocking waits (queue pops, channel requests, the daemon's loop) also
//!   touch the mapping's last byte on their liveness interval
//!   ([`Segment::probe_truncation`](crate::Segment::probe_truncation)): a
//!   waiter that only polls lines near the header notices any shrink within
//!   that interval instead of timing out on a zeroed segment.
//!
//! Any other `SIGBUS` is passed on to the handler that was installed before
//! ours exactly as the kernel would have: an `SA_SIGINFO` handler gets the
//! same three arguments, a plain handler the signal number, `SIG_DFL` resets
//! the disposition and re-raises (the process dies by `SIGBUS` as before),
//! `SIG_IGN` ignores a `SIGBUS` sent by another process but not a real
//! fault (the kernel kills the process then, and so do we). Rust's own
//! stack-overflow handler is chained like any other. `SIGSEGV` is not
//! touched.
//!
//! The kernel raises the same `SIGBUS` when a page of a shared-memory file
//! cannot be allocated (`/dev/shm` full); venom cannot tell the two apart
//! from inside the handler and reports both as a lost mapping.
//!
//! Limits: the registry has [`REGISTRY_CAPACITY`] slots; mappings made while
//! it is full are not protected (a truncation then kills the process as
//! before). A handler installed *after* ours that does not chain to it
//! disables the protection. Once lost, a mapping stays lost: drop the handle
//! and open the segment again.

// Under loom only the registry is built (for its model), not the handler.
#![cfg_attr(loom, allow(dead_code))]

#[cfg(not(loom))]
use std::sync::Once;
#[cfg(not(loom))]
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};

#[cfg(loom)]
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};

/// How many live mappings the registry protects at once.
pub const REGISTRY_CAPACITY: usize = 4096;

/// Low two bits of a slot's `seq`: its state. The upper bits count reuses,
/// so a reader can tell that a slot changed while it read it (a seqlock).
const FREE: usize = 0;
const CLAIMED: usize = 1;
const ACTIVE: usize = 2;
const STATE: usize = 3;

struct Slot {
    seq: AtomicUsize,
    start: AtomicUsize,
    len: AtomicUsize,
    lost: AtomicBool,
}

impl Slot {
    #[cfg(not(loom))]
    const fn new() -> Slot {
        Slot {
            seq: AtomicUsize::new(FREE),
            start: AtomicUsize::new(0),
            len: AtomicUsize::new(0),
            lost: AtomicBool::new(false),
        }
    }

    #[cfg(loom)]
    fn new() -> Slot {
        Slot {
            seq: AtomicUsize::new(FREE),
            start: AtomicUsize::new(0),
            len: AtomicUsize::new(0),
            lost: AtomicBool::new(false),
        }
    }
}

/// A fixed-size, lock-free table of mappings. Writers (register/unregister)
/// are ordinary threads; the reader is the signal handler, which may
/// interrupt anything, so it only loads atomics and validates what it read
/// like a seqlock reader.
struct Registry<const N: usize> {
    slots: [Slot; N],
}

impl<const N: usize> Registry<N> {
    /// Claims a free slot for `start..start + len`; `None` when full.
    fn register(&self, start: usize, len: usize) -> Option<usize> {
        for (i, s) in self.slots.iter().enumerate() {
            // Relaxed: a hint; the CAS below decides.
            let cur = s.seq.load(Ordering::Relaxed);
            if cur & STATE != FREE {
                continue;
            }
            // Acquire on success: the previous owner's accesses to the slot
            // (its Release unregister) happen-before ours.
            if s.seq.compare_exchange(cur, cur | CLAIMED, Ordering::Acquire, Ordering::Relaxed).is_err() {
                continue;
            }
            s.start.store(start, Ordering::Relaxed);
            s.len.store(len, Ordering::Relaxed);
            s.lost.store(false, Ordering::Relaxed);
            // Release: a reader that sees ACTIVE (Acquire) sees the fields.
            s.seq.store((cur & !STATE) | ACTIVE, Ordering::Release);
            return Some(i);
        }
        None
    }

    /// Frees slot `i` (before its mapping is unmapped), bumping the reuse
    /// count so a concurrent reader's validation fails.
    fn unregister(&self, i: usize) {
        let s = &self.slots[i];
        // Relaxed: only the owner writes `seq` while the slot is ACTIVE.
        let cur = s.seq.load(Ordering::Relaxed);
        // Release: our reads of the slot are done before it can be reused.
        s.seq.store((cur & !STATE).wrapping_add(STATE + 1) | FREE, Ordering::Release);
    }

    /// The slot whose range contains `addr`, with that range, read
    /// consistently (seqlock validation) — or `None`.
    fn find(&self, addr: usize) -> Option<(usize, usize, usize)> {
        for (i, s) in self.slots.iter().enumerate() {
            // Acquire: pairs with the Release in `register`.
            let before = s.seq.load(Ordering::Acquire);
            if before & STATE != ACTIVE {
                continue;
            }
            let (start, len) = (s.start.load(Ordering::Relaxed), s.len.load(Ordering::Relaxed));
            // Acquire fence: the field loads above are ordered before the
            // re-check, so an unregister/re-register in between is seen.
            fence(Ordering::Acquire);
            if s.seq.load(Ordering::Relaxed) != before {
                continue;
            }
            if addr >= start && addr - start < len {
                return Some((i, start, len));
            }
        }
        None
    }

    fn mark_lost(&self, i: usize) {
        // Release: publishes "lost" to other threads of this process.
        self.slots[i].lost.store(true, Ordering::Release);
    }

    fn is_lost(&self, i: usize) -> bool {
        // Acquire: pairs with the Release in `mark_lost`. On the faulting
        // thread the handler ran before the access completed anyway; other
        // threads re-check on every operation.
        self.slots[i].lost.load(Ordering::Acquire)
    }

    fn active(&self) -> usize {
        // Relaxed: a diagnostic count.
        self.slots.iter().filter(|s| s.seq.load(Ordering::Relaxed) & STATE == ACTIVE).count()
    }
}

/// Set once any mapping of this process has been lost: the fast path of
/// every check is this one load of a static, which stays false (and
/// cached) in a process that never saw a truncation.
#[cfg(not(loom))]
static ANY_LOST: AtomicBool = AtomicBool::new(false);

/// The mappings the `SIGBUS` handler may repair. Static memory only: the
/// handler must not allocate or lock.
#[cfg(not(loom))]
static REGISTRY: Registry<REGISTRY_CAPACITY> = Registry { slots: [const { Slot::new() }; REGISTRY_CAPACITY] };

/// A registered mapping; unregisters on drop. Obtain with [`register`].
#[derive(Debug)]
pub(crate) struct Guard {
    slot: Option<usize>,
}

/// Records `start..start + len` as a venom mapping the handler may repair.
/// Returns an unprotected guard when the registry is full or the handler
/// could not be installed.
#[cfg(not(loom))]
pub(crate) fn register(start: *mut u8, len: usize) -> Guard {
    install();
    if !INSTALLED.load(Ordering::Acquire) || len == 0 {
        return Guard { slot: None };
    }
    Guard { slot: REGISTRY.register(start as usize, len) }
}

/// Under loom nothing is mapped for real; the registry itself is modelled
/// by `loom_registry`.
#[cfg(loom)]
pub(crate) fn register(_start: *mut u8, _len: usize) -> Guard {
    Guard { slot: None }
}

impl Guard {
    /// Whether the handler replaced this mapping after a truncation.
    #[inline]
    pub(crate) fn is_lost(&self) -> bool {
        // `any_lost` is a hint; the per-slot flag is read with Acquire. On
        // the faulting thread the handler ran before the access returned.
        // Acquire fence: the caller's loads from the mapping are ordered
        // before the flag loads below (compiler and CPU), so a value read
        // from a replaced (zero) page is always followed by seeing the flag.
        #[cfg(not(loom))]
        fence(Ordering::Acquire);
        #[cfg(not(loom))]
        return any_lost() && self.slot.is_some_and(|i| REGISTRY.is_lost(i));
        #[cfg(loom)]
        return false;
    }

    /// Whether the mapping is protected (the registry had room).
    pub(crate) fn is_protected(&self) -> bool {
        self.slot.is_some()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        // Called before the mapping is unmapped (field order in `Mapping`).
        #[cfg(not(loom))]
        if let Some(i) = self.slot {
            REGISTRY.unregister(i);
        }
    }
}

/// The disposition that was in place before ours, for chaining. Written once
/// inside `INSTALL`, before our handler can run.
#[cfg(not(loom))]
static mut PREVIOUS: core::mem::MaybeUninit<libc::sigaction> = core::mem::MaybeUninit::zeroed();
#[cfg(not(loom))]
static INSTALL: Once = Once::new();
/// Whether installation succeeded (if not, nothing is protected).
#[cfg(not(loom))]
static INSTALLED: AtomicBool = AtomicBool::new(false);

#[cfg(not(loom))]
fn install() {
    INSTALL.call_once(|| {
        // SAFETY: zeroed sigaction is a valid value (empty mask, no flags);
        // the first `sigaction` only reads the old disposition into
        // PREVIOUS, which nothing reads before our handler is installed by
        // the second call, and which is never written again.
        unsafe {
            let mut new: libc::sigaction = core::mem::zeroed();
            new.sa_sigaction = on_sigbus as *const () as usize;
            new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut new.sa_mask);
            let prev = (&raw mut PREVIOUS).cast::<libc::sigaction>();
            if libc::sigaction(libc::SIGBUS, core::ptr::null(), prev) == 0
                && libc::sigaction(libc::SIGBUS, &new, core::ptr::null_mut()) == 0
            {
                // Release: `register` only hands out protected guards after
                // seeing this (Acquire).
                INSTALLED.store(true, Ordering::Release);
            }
        }
    });
}

/// The `SIGBUS` handler. Async-signal-safe: atomic loads/stores, `mmap`,
/// and chaining.
#[cfg(not(loom))]
extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers;
    // `si_addr` is the faulting address for a hardware SIGBUS.
    let addr = unsafe { (*info).si_addr() } as usize;
    // SAFETY: __errno_location returns this thread's errno slot; we restore
    // it so the interrupted code does not see our mmap's errno.
    let errno = unsafe { *libc::__errno_location() };
    let repaired = repair(addr);
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
    if !repaired {
        // SAFETY: PREVIOUS was written before this handler was installed.
        unsafe { chain(sig, info, ctx) };
    }
}

/// Replaces the registered mapping containing `addr` with zero pages.
#[cfg(not(loom))]
fn repair(addr: usize) -> bool {
    let Some((i, start, len)) = REGISTRY.find(addr) else { return false };
    // Mark the mapping lost BEFORE replacing it. Another thread of this
    // process can read the zero pages as soon as the mmap below has
    // replaced them; it then checks the flag (after an Acquire fence in
    // `Guard::is_lost`), and the flag store must already be visible by then.
    // The mmap call (a syscall, whose TLB shootdown interrupts every CPU
    // running this address space) orders our stores before the new pages
    // become reachable.
    REGISTRY.mark_lost(i);
    // Release: after the slot's flag, so whoever sees this sees that too.
    ANY_LOST.store(true, Ordering::Release);
    // Why this is sound: `find` validated that `start..start + len` is a registered,
    // live mapping containing the fault address. The faulting thread is
    // inside an access to that very mapping, so its owner holds it borrowed
    // and cannot unregister or unmap it meanwhile (and no other registered
    // mapping overlaps a live one). MAP_FIXED replaces exactly those pages;
    // venom only accesses mapped memory through atomics, for which zero bits
    // are valid values. mmap is a plain syscall, async-signal-safe.
    // SAFETY: replaces exactly a live, registered venom mapping (above).
    let p = unsafe {
        libc::mmap(
            start as *mut libc::c_void,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_FIXED | libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    // On failure the flag stays set (the mapping is unusable either way)
    // and the fault is chained, which ends the process as it would have.
    p != libc::MAP_FAILED
}

/// Hands a fault that is not ours to the previous disposition.
///
/// # Safety
/// Only from `on_sigbus`, with its arguments.
#[cfg(not(loom))]
unsafe fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: written once before our handler was installed, never again.
    let prev = unsafe { &*(&raw const PREVIOUS).cast::<libc::sigaction>() };
    let handler = prev.sa_sigaction;
    // SAFETY: `info` is the kernel's siginfo for this delivery.
    let from_kernel = unsafe { (*info).si_code } > 0;
    // An ignored SIGBUS sent by a process (kill, sigqueue) stays ignored. A
    // fault cannot be ignored: the kernel would kill the process, so do the
    // same (returning would re-fault forever).
    if handler == libc::SIG_IGN && !from_kernel {
        return;
    }
    if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        // Restore the default action and re-raise: the signal is blocked
        // while we run, so it is delivered (and kills the process, as it
        // would have without us) as soon as we return. A hardware fault
        // would also simply recur on return.
        // SAFETY: sigaction and raise are async-signal-safe; a zeroed
        // sigaction with SIG_DFL is valid.
        unsafe {
            let mut dfl: libc::sigaction = core::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            libc::sigemptyset(&mut dfl.sa_mask);
            libc::sigaction(sig, &dfl, core::ptr::null_mut());
            libc::raise(sig);
        }
        return;
    }
    if prev.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous handler was installed with SA_SIGINFO, so it
        // has this signature; we pass the kernel's own arguments.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { core::mem::transmute(handler) };
        f(sig, info, ctx);
    } else {
        // SAFETY: a handler installed without SA_SIGINFO takes only the
        // signal number.
        let f: extern "C" fn(libc::c_int) = unsafe { core::mem::transmute(handler) };
        f(sig);
    }
}

/// Whether any venom mapping of this process was ever lost to a
/// truncation: the cheap first test of every check (one load of a static).
#[inline]
pub fn any_lost() -> bool {
    // Relaxed: a hint; the per-mapping flag is then read with Acquire.
    #[cfg(not(loom))]
    return ANY_LOST.load(Ordering::Relaxed);
    #[cfg(loom)]
    return false;
}

/// Number of mappings currently registered (for tests and diagnostics).
pub fn registered_mappings() -> usize {
    #[cfg(not(loom))]
    return REGISTRY.active();
    #[cfg(loom)]
    return 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(not(loom))]
    #[test]
    fn register_find_unregister() {
        let r: Registry<2> = Registry { slots: [const { Slot::new() }; 2] };
        let a = r.register(4096, 8192).unwrap();
        let b = r.register(65536, 4096).unwrap();
        assert_ne!(a, b);
        assert!(r.register(1 << 20, 4096).is_none(), "full");
        assert_eq!(r.find(4096 + 8191), Some((a, 4096, 8192)));
        assert_eq!(r.find(4096 + 8192), None);
        assert_eq!(r.find(65536), Some((b, 65536, 4096)));
        r.mark_lost(a);
        assert!(r.is_lost(a) && !r.is_lost(b));
        r.unregister(a);
        assert_eq!(r.find(4096), None);
        assert_eq!(r.active(), 1);
        let c = r.register(1 << 20, 4096).unwrap();
        assert_eq!(c, a);
        assert!(!r.is_lost(c), "a reused slot starts intact");
    }

    /// Two threads register and unregister while a third (standing in for
    /// the signal handler) looks addresses up: the lookup never returns a
    /// torn (start, len) pair, and two live mappings never share a slot.
    #[cfg(loom)]
    #[test]
    fn loom_registry() {
        loom::model(|| {
            let r = loom::sync::Arc::new(Registry::<1> { slots: [Slot::new()] });
            let r1 = r.clone();
            let t1 = loom::thread::spawn(move || {
                if let Some(i) = r1.register(100, 10) {
                    r1.unregister(i);
                }
            });
            let r2 = r.clone();
            let t2 = loom::thread::spawn(move || r2.register(200, 20));
            for addr in [105, 205] {
                if let Some((_, start, len)) = r.find(addr) {
                    assert!((start, len) == (100, 10) || (start, len) == (200, 20), "torn {start} {len}");
                    assert!(addr >= start && addr < start + len);
                }
            }
            t1.join().unwrap();
            let got = t2.join().unwrap();
            // The single slot can be held by at most one live mapping.
            if got.is_some() {
                assert_eq!(r.find(205).map(|f| (f.1, f.2)), Some((200, 20)));
            }
        });
    }
}
