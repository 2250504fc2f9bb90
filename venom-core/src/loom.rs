//! Facade over the synchronisation primitives, in the style of tokio's
//! `loom` module.
//!
//! Normal builds re-export `core`'s atomics. Under `RUSTFLAGS="--cfg loom"`
//! the same names come from the `loom` crate, so the lock-free algorithms in
//! this crate (and in `venom-collections`, which imports this module) run
//! unchanged inside loom's model checker. Code that touches shared memory
//! must import atomics from here, never from `core` directly.

#[cfg(not(loom))]
pub mod sync {
    //! Atomics and fences.
    pub use core::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
}

#[cfg(loom)]
pub mod sync {
    //! Atomics and fences (loom build).
    pub use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
}

/// Spin-loop hint. Under loom this yields, so that models with spin loops
/// terminate.
#[inline]
pub fn spin_hint() {
    #[cfg(not(loom))]
    core::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// Whether we are running under the loom model checker.
pub const IS_LOOM: bool = cfg!(loom);
