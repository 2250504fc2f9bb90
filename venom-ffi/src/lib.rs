//! # venom-ffi
//!
//! The C ABI of Venom (library `libvenom.so` / `libvenom.a`, header
//! `include/venom.h`, generated from this crate by cbindgen in `build.rs` on
//! every build). It covers
//! daemon/shell channels, seqlock regions and the KvCache; C programs
//! interoperate with Rust programs on the same segments (the ABI wraps the
//! Rust types, it does not re-implement the wire format).
//!
//! Conventions of every function:
//! * it returns a [`venom_status`]; on failure
//!   [`venom_last_error_message`] describes it (thread-local);
//! * handles are opaque pointers created by `*_create` / `*_open` /
//!   `*_connect` and released by `*_free` (`venom_kv_close` for caches);
//!   freeing NULL is a no-op; each handle type documents its thread-safety;
//! * NULL handles or pointers give `VENOM_EINVAL`, never a crash; a NULL
//!   buffer is allowed with length 0 (a size query); a buffer too small for
//!   the result gives `VENOM_ETOOSMALL` with the size needed written to the
//!   length out-parameter;
//! * timeouts are `uint64_t` milliseconds: 0 = do not wait,
//!   [`VENOM_TIMEOUT_INFINITE`] = no deadline (values are clamped to
//!   [`VENOM_TIMEOUT_MAX_MS`]);
//! * no panic crosses the boundary: a bug caught at the boundary is reported
//!   as `VENOM_EPANIC` (the library must be built with `panic = "unwind"`,
//!   the default).
//!
//! From Rust the functions can be called like any `unsafe fn`:
//! ```
//! use std::ptr::null_mut;
//! use venom::*;
//! let name = std::ffi::CString::new(format!("doc-ffi-{}", std::process::id())).unwrap();
//! let mut kv = null_mut();
//! // SAFETY: valid C string and out-pointer; the handle is closed below.
//! unsafe {
//!     assert_eq!(venom_kv_create(name.as_ptr(), std::ptr::null(), &mut kv), venom_status::VENOM_OK);
//!     assert_eq!(venom_kv_put(kv, b"k".as_ptr(), 1, b"v1".as_ptr(), 2), venom_status::VENOM_OK);
//!     let mut len = 0;
//!     // A size query: NULL buffer, capacity 0.
//!     assert_eq!(venom_kv_get(kv, b"k".as_ptr(), 1, null_mut(), 0, &mut len), venom_status::VENOM_ETOOSMALL);
//!     assert_eq!(len, 2);
//!     venom_kv_unlink(kv);
//!     venom_kv_close(kv);
//! }
//! ```

#![warn(missing_docs)]

mod args;
mod daemon;
mod kv;
mod seq;
mod shell;
mod status;

use std::ffi::c_char;

pub use args::{VENOM_TIMEOUT_INFINITE, VENOM_TIMEOUT_MAX_MS};
pub use daemon::*;
pub use kv::*;
pub use seq::*;
pub use shell::*;
pub use status::{venom_last_error_message, venom_status, venom_status_name};

/// Version of this ABI: bumped on any incompatible change of a function
/// signature, a struct layout or a status value. Compare it with
/// `venom_abi_version()` at run time to detect a mismatched library.
/// Version 2: `venom_kv_stats` is the Rust `KvStats` itself (adds
/// `free_bytes`, `largest_free_block`, `fragmentation`, `internal_waste`).
pub const VENOM_ABI_VERSION: u32 = 2;

/// The `VENOM_ABI_VERSION` the library was built with.
#[unsafe(no_mangle)]
pub extern "C" fn venom_abi_version() -> u32 {
    VENOM_ABI_VERSION
}

/// The library version as a static NUL-terminated string (e.g. `"0.1.0"`).
/// Never NULL; must not be freed.
#[unsafe(no_mangle)]
pub extern "C" fn venom_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

#[cfg(test)]
mod tests {
    /// The handles documented as usable from another thread are.
    #[test]
    fn handle_thread_safety_matches_the_docs() {
        fn send<T: Send>() {}
        fn send_sync<T: Send + Sync>() {}
        send::<venom_core::DaemonChannel>();
        send::<venom_core::ShellChannel>();
        send::<venom_core::SeqWriter>();
        send_sync::<venom_core::SeqReader>();
        send_sync::<venom_collections::KvCache>();
        send_sync::<venom_core::StopHandle>();
    }
}
