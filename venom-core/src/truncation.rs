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
//!   [registry](REGISTRY) (start, length, a *lost* flag);
//! * a `SIGBUS` handler (installed once, `SA_SIGINFO | SA_ONSTACK`) looks the
//!   fault address up. If it lies in a registered mapping, the handler
//!   replaces the **whole** mapping in place with private anonymous zero
//!   pages (`mmap(MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS)`, a plain syscall,
//!   async-signal-safe), marks it lost and returns: the faulting instruction
//!   re-executes on a zero page;
//! * every public operation checks the lost flag before it reports success
//!   ([`Segment::check_mapped`](crate::Segment::check_mapped)) and returns
//!   [`Error::Truncated`](crate::Error::Truncated) instead, so the zeroes are
//!   never handed out as data.
//!
//! Any other `SIGBUS` is passed on to the handler that was installed before
//! ours exactly as the kernel would have: an `SA_SIGINFO` handler gets the
//! same three arguments, a plain handler the signal number, `SIG_DFL` resets
//! the disposition and re-raises (the process dies by `SIGBUS` as before),
//! `SIG_IGN` ignores it. `SIGSEGV` is not touched.
//!
//! Limits: the registry has [`REGISTRY_CAPACITY`] slots; mappings made while
//! it is full are not protected (a truncation then kills the process as
//! before). A handler installed *after* ours that does not chain to it
//! disables the protection. Once lost, a mapping stays lost: drop the handle
//! and open the segment again.

use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};

/// How many live mappings the registry protects at once.
pub const REGISTRY_CAPACITY: usize = 4096;

const FREE: u8 = 0;
const CLAIMED: u8 = 1;
const ACTIVE: u8 = 2;

struct Slot {
    state: AtomicU8,
    start: AtomicUsize,
    len: AtomicUsize,
    lost: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Slot = Slot {
    state: AtomicU8::new(FREE),
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    lost: AtomicBool::new(false),
};

/// The mappings the `SIGBUS` handler may repair. Static memory only: the
/// handler must not allocate or lock.
static REGISTRY: [Slot; REGISTRY_CAPACITY] = [EMPTY; REGISTRY_CAPACITY];

/// The disposition that was in place before ours, for chaining. Written once
/// inside `INSTALL`, before our handler can run.
static mut PREVIOUS: core::mem::MaybeUninit<libc::sigaction> = core::mem::MaybeUninit::zeroed();
static INSTALL: Once = Once::new();
/// Whether installation succeeded (if not, nothing is protected).
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// A registered mapping; unregisters on drop. Obtain with [`register`].
#[derive(Debug)]
pub(crate) struct Guard {
    slot: Option<usize>,
}

/// Records `start..start + len` as a venom mapping the handler may repair.
/// Returns an unprotected guard when the registry is full or the handler
/// could not be installed.
pub(crate) fn register(start: *mut u8, len: usize) -> Guard {
    install();
    if !INSTALLED.load(Ordering::Acquire) || len == 0 {
        return Guard { slot: None };
    }
    for (i, s) in REGISTRY.iter().enumerate() {
        // Acquire/Relaxed: claiming a free slot only needs exclusivity; the
        // fields are published by the Release store of ACTIVE below.
        if s.state.compare_exchange(FREE, CLAIMED, Ordering::Acquire, Ordering::Relaxed).is_ok() {
            s.start.store(start as usize, Ordering::Relaxed);
            s.len.store(len, Ordering::Relaxed);
            s.lost.store(false, Ordering::Relaxed);
            // Release: the handler's Acquire load of ACTIVE sees the fields.
            s.state.store(ACTIVE, Ordering::Release);
            return Guard { slot: Some(i) };
        }
    }
    Guard { slot: None }
}

impl Guard {
    /// Whether the handler replaced this mapping after a truncation.
    #[inline]
    pub(crate) fn is_lost(&self) -> bool {
        // Acquire: pairs with the Release store in `repair`. On the faulting
        // thread the handler ran before the access completed anyway; other
        // threads re-check on every operation.
        self.slot.is_some_and(|i| REGISTRY[i].lost.load(Ordering::Acquire))
    }

    /// Whether the mapping is protected (the registry had room).
    pub(crate) fn is_protected(&self) -> bool {
        self.slot.is_some()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            // Release: the slot is reusable only after we stop looking at it.
            // Called before the mapping is unmapped (field order in Mapping).
            REGISTRY[i].state.store(FREE, Ordering::Release);
        }
    }
}

fn install() {
    INSTALL.call_once(|| {
        // SAFETY: zeroed sigaction is a valid value (empty mask, no flags);
        // `sigaction` writes the old disposition into PREVIOUS, which no one
        // reads before our handler is installed by this same call, and which
        // is never written again.
        unsafe {
            let mut new: libc::sigaction = core::mem::zeroed();
            new.sa_sigaction = on_sigbus as *const () as usize;
            new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut new.sa_mask);
            let prev = (&raw mut PREVIOUS).cast::<libc::sigaction>();
            // Read the old disposition first, then install: our handler never
            // runs before PREVIOUS holds what it must chain to.
            if libc::sigaction(libc::SIGBUS, core::ptr::null(), prev) == 0
                && libc::sigaction(libc::SIGBUS, &new, core::ptr::null_mut()) == 0
            {
                INSTALLED.store(true, Ordering::Release);
            }
        }
    });
}

/// The `SIGBUS` handler. Async-signal-safe: atomics, `mmap`, and chaining.
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
fn repair(addr: usize) -> bool {
    for s in REGISTRY.iter() {
        // Acquire: pairs with the Release store in `register`.
        if s.state.load(Ordering::Acquire) != ACTIVE {
            continue;
        }
        let (start, len) = (s.start.load(Ordering::Relaxed), s.len.load(Ordering::Relaxed));
        if addr < start || addr - start >= len {
            continue;
        }
        // SAFETY: `start..start + len` is a live mapping owned by a venom
        // `Mapping` (registered while mapped, unregistered before munmap).
        // MAP_FIXED replaces exactly those pages; the memory is only ever
        // accessed through atomics, so zero bits are valid values. mmap is
        // async-signal-safe (a raw syscall).
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
        if p == libc::MAP_FAILED {
            return false;
        }
        // Release: publishes "lost" to other threads of this process.
        s.lost.store(true, Ordering::Release);
        return true;
    }
    false
}

/// Hands a fault that is not ours to the previous disposition.
///
/// # Safety
/// Only from `on_sigbus`, with its arguments.
unsafe fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: written once before our handler was installed, never again.
    let prev = unsafe { &*(&raw const PREVIOUS).cast::<libc::sigaction>() };
    let handler = prev.sa_sigaction;
    if handler == libc::SIG_IGN {
        return;
    }
    if handler == libc::SIG_DFL {
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

/// Number of mappings currently registered (for tests and diagnostics).
pub fn registered_mappings() -> usize {
    // Relaxed: a diagnostic count.
    REGISTRY.iter().filter(|s| s.state.load(Ordering::Relaxed) == ACTIVE).count()
}
