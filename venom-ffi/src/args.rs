//! Turning C arguments into Rust values: names, buffers, handles,
//! out-parameters and timeouts. Every check fails with `VENOM_EINVAL`
//! instead of dereferencing a bad pointer.

use std::ffi::{CStr, c_char};
use std::time::Duration;

use crate::status::{Failure, FfiResult, guard, venom_status};

/// Wait forever (the value of every `timeout_ms` parameter that means "no
/// deadline").
pub const VENOM_TIMEOUT_INFINITE: u64 = u64::MAX;

/// Longest wait in milliseconds (10 years): larger `timeout_ms` values,
/// including `VENOM_TIMEOUT_INFINITE`, are clamped to it.
pub const VENOM_TIMEOUT_MAX_MS: u64 = 315_360_000_000;

/// A `timeout_ms` argument as a `Duration`: 0 means "do not wait", anything
/// above [`VENOM_TIMEOUT_MAX_MS`] is clamped (deadline arithmetic inside
/// the core never overflows).
pub(crate) fn timeout(ms: u64) -> Duration {
    Duration::from_millis(ms.min(VENOM_TIMEOUT_MAX_MS))
}

/// A NUL-terminated UTF-8 name.
///
/// # Safety
/// `name` is NULL or points to a NUL-terminated string.
pub(crate) unsafe fn name<'a>(name: *const c_char) -> FfiResult<&'a str> {
    if name.is_null() {
        return Err(Failure::inval("name is NULL"));
    }
    // SAFETY: non-null and NUL-terminated per the caller's contract.
    let c = unsafe { CStr::from_ptr(name) };
    c.to_str().map_err(|_| Failure::inval("name is not valid UTF-8"))
}

/// An input buffer: NULL is accepted only with length 0.
///
/// # Safety
/// `ptr` is NULL or valid for reads of `len` bytes for `'a`.
pub(crate) unsafe fn bytes_in<'a>(ptr: *const u8, len: usize, what: &str) -> FfiResult<&'a [u8]> {
    if ptr.is_null() {
        return if len == 0 { Ok(&[]) } else { Err(Failure::inval(format!("{what} is NULL with length {len}"))) };
    }
    if len > isize::MAX as usize {
        return Err(Failure::inval(format!("{what} length {len} is larger than any buffer")));
    }
    // SAFETY: non-null, len fits isize, valid for len bytes per the contract.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// An output buffer: NULL is accepted only with capacity 0 (a size query).
///
/// # Safety
/// `ptr` is NULL or valid for writes of `cap` bytes for `'a`, unaliased.
pub(crate) unsafe fn bytes_out<'a>(ptr: *mut u8, cap: usize, what: &str) -> FfiResult<&'a mut [u8]> {
    if ptr.is_null() {
        return if cap == 0 { Ok(&mut []) } else { Err(Failure::inval(format!("{what} is NULL with capacity {cap}"))) };
    }
    if cap > isize::MAX as usize {
        return Err(Failure::inval(format!("{what} capacity {cap} is larger than any buffer")));
    }
    // SAFETY: non-null, cap fits isize, valid and unaliased per the contract.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr, cap) })
}

/// A handle argument.
///
/// # Safety
/// `ptr` is NULL or a live handle of type `T` returned by this library.
pub(crate) unsafe fn handle<'a, T>(ptr: *const T, what: &str) -> FfiResult<&'a T> {
    // SAFETY: per the contract a non-null pointer is a live handle.
    unsafe { ptr.as_ref() }.ok_or_else(|| Failure::inval(format!("{what} handle is NULL")))
}

/// A handle argument used mutably (the caller owns it on this thread).
///
/// # Safety
/// `ptr` is NULL or a live handle of type `T` not used by another thread.
pub(crate) unsafe fn handle_mut<'a, T>(ptr: *mut T, what: &str) -> FfiResult<&'a mut T> {
    // SAFETY: per the contract a non-null pointer is a live, unshared handle.
    unsafe { ptr.as_mut() }.ok_or_else(|| Failure::inval(format!("{what} handle is NULL")))
}

/// A required out-parameter, checked before any work is done.
pub(crate) fn out<T>(ptr: *mut T, what: &str) -> FfiResult<Out<T>> {
    if ptr.is_null() { Err(Failure::inval(format!("{what} out-parameter is NULL"))) } else { Ok(Out(ptr)) }
}

/// An optional out-parameter (NULL = not wanted).
pub(crate) fn opt_out<T>(ptr: *mut T) -> Option<Out<T>> {
    (!ptr.is_null()).then_some(Out(ptr))
}

/// A checked, non-null out-parameter.
pub(crate) struct Out<T>(*mut T);

impl<T> Out<T> {
    /// Stores `value` without reading the (possibly uninitialised) target.
    ///
    /// # Safety
    /// The pointer passed to [`out`] is valid for a write of `T`.
    pub(crate) unsafe fn set(&self, value: T) {
        // SAFETY: non-null (checked in `out`), valid per the contract;
        // `write` does not drop the old (uninitialised) value.
        unsafe { self.0.write(value) }
    }
}

impl<T> Out<*mut T> {
    /// Moves `value` to the heap and stores the new handle (freed by
    /// [`free_handle`] from the type's `_free` function).
    ///
    /// # Safety
    /// As [`Out::set`].
    pub(crate) unsafe fn set_handle(&self, value: T) {
        // SAFETY: forwarded contract.
        unsafe { self.set(Box::into_raw(Box::new(value))) }
    }
}

impl Out<usize> {
    /// The failure for `e`, after storing in `*len` the size a
    /// `BufferTooSmall` needed (so the caller can retry with a large enough
    /// buffer).
    pub(crate) fn report_needed(&self, e: venom_core::Error) -> Failure {
        if let venom_core::Error::BufferTooSmall { needed, .. } = e {
            // SAFETY: checked non-null in `out`; valid per the caller's
            // contract (the pointer it passed to `out`).
            unsafe { self.set(needed) };
        }
        e.into()
    }
}

/// The whole body of the getters: stores `get(handle)` in the required
/// out-parameter `*dst` (checked before `get` runs).
///
/// # Safety
/// `ptr` is NULL or a live handle of type `H`; `dst` is NULL or valid for a
/// write of `T`.
pub(crate) unsafe fn get_into<H, T>(
    (ptr, what): (*const H, &str),
    (dst, dst_what): (*mut T, &str),
    get: impl FnOnce(&H) -> venom_core::Result<T>,
) -> venom_status {
    guard(|| {
        // SAFETY: forwarded contract.
        let h = unsafe { handle(ptr, what)? };
        let dst = out(dst, dst_what)?;
        let v = get(h)?;
        // SAFETY: checked non-null; valid per the contract.
        unsafe { dst.set(v) };
        Ok(())
    })
}

/// The whole body of the calls that only act on a handle (`_unlink`).
///
/// # Safety
/// `ptr` is NULL or a live handle of type `H`.
pub(crate) unsafe fn call<H, E: Into<Failure>>(
    (ptr, what): (*const H, &str),
    act: impl FnOnce(&H) -> Result<(), E>,
) -> venom_status {
    // SAFETY: forwarded contract.
    guard(|| act(unsafe { handle(ptr, what)? }).map_err(Into::into))
}

/// Checks a handle and the caller's output buffer, then runs `body` on
/// them (the start of every function that fills the caller's buffer; with
/// [`store_opt`] in `body`, the whole body of the `_read_at` functions).
///
/// # Safety
/// `ptr` is NULL or a live handle of type `H`; `buf` is NULL (with `cap` 0)
/// or valid for writes of `cap` bytes.
pub(crate) unsafe fn with_buffer<H>(
    (ptr, what): (*const H, &str),
    (buf, cap): (*mut u8, usize),
    body: impl FnOnce(&H, &mut [u8]) -> FfiResult,
) -> venom_status {
    guard(|| {
        // SAFETY: forwarded contract.
        let (h, buf) = unsafe { (handle(ptr, what)?, bytes_out(buf, cap, "buffer")?) };
        body(h, buf)
    })
}

/// The whole body of the functions that copy a handle's current bytes into
/// the caller's buffer: `read(handle, buf)` fills `buf`, `*len` gets the
/// bytes copied, or on `BufferTooSmall` the size needed.
///
/// # Safety
/// As [`with_buffer`]; `len` is NULL or valid for a write.
pub(crate) unsafe fn read_into<H>(
    handle: (*const H, &str),
    buf: (*mut u8, usize),
    len: *mut usize,
    read: impl FnOnce(&H, &mut [u8]) -> venom_core::Result<usize>,
) -> venom_status {
    let body = |h: &H, buf: &mut [u8]| {
        let len = out(len, "len")?;
        let n = read(h, buf).map_err(|e| len.report_needed(e))?;
        // SAFETY: checked non-null; valid per the contract.
        unsafe { len.set(n) };
        Ok(())
    };
    // SAFETY: forwarded contract.
    unsafe { with_buffer(handle, buf, body) }
}

/// The whole body of the `_open`/`_connect` functions: checks `out`, makes
/// the handle from the name with `make`, stores it in `*out`.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `out` is NULL or valid for a
/// write of a pointer.
pub(crate) unsafe fn open_named<H>(
    name: *const c_char,
    out: *mut *mut H,
    what: &str,
    make: impl FnOnce(&str) -> FfiResult<H>,
) -> venom_status {
    guard(|| {
        let out = self::out(out, what)?;
        // SAFETY: forwarded contract.
        let handle = make(unsafe { self::name(name)? })?;
        // SAFETY: checked non-null; valid per the contract.
        unsafe { out.set_handle(handle) };
        Ok(())
    })
}

/// The whole body of the `_create(name, config, out)` functions: like
/// [`open_named`], with the configuration (`config`, NULL = `C`'s defaults)
/// passed to `make` with the name.
///
/// # Safety
/// As [`open_named`]; `config` is NULL or valid for reads.
pub(crate) unsafe fn create_named<C: Copy + Default, H>(
    name: *const c_char,
    config: *const C,
    out: *mut *mut H,
    what: &str,
    make: impl FnOnce(&str, C) -> FfiResult<H>,
) -> venom_status {
    // SAFETY: NULL or valid for reads per the contract.
    let c = unsafe { config.as_ref() }.copied().unwrap_or_default();
    // SAFETY: forwarded contract.
    unsafe { open_named(name, out, what, |name| make(name, c)) }
}

/// The whole body of the `_config_default` functions: fills `*out` with
/// `T`'s defaults.
///
/// # Safety
/// `out` is NULL or valid for a write of `T`.
pub(crate) unsafe fn fill_default<T: Default>(out: *mut T) -> venom_status {
    guard(|| {
        let out = self::out(out, "config")?;
        // SAFETY: checked non-null; valid per the contract.
        unsafe { out.set(T::default()) };
        Ok(())
    })
}

/// The whole body of the `_free` functions: releases a handle stored by
/// [`Out::set_handle`]; NULL is a no-op.
///
/// # Safety
/// `ptr` is NULL or a live handle no other thread is using; it must not be
/// used afterwards.
pub(crate) unsafe fn free_handle<T>(ptr: *mut T) -> venom_status {
    guard(|| {
        if !ptr.is_null() {
            // SAFETY: a live handle from Box::into_raw, released once.
            drop(unsafe { Box::from_raw(ptr) });
        }
        Ok(())
    })
}

/// The whole body of the functions that hand the caller's bytes to a
/// handle and report a `u64` (`*version`, `*request_id`) unless NULL:
/// `call(handle, data)` runs with both arguments checked.
///
/// # Safety
/// `ptr` is NULL or a live handle of type `H` not used by another thread;
/// `data` is NULL (with `len` 0) or valid for reads of `len` bytes;
/// `report` is NULL or valid for a write.
pub(crate) unsafe fn give_bytes<H>(
    (ptr, what): (*mut H, &str),
    (data, len, data_what): (*const u8, usize, &str),
    report: *mut u64,
    call: impl FnOnce(&mut H, &[u8]) -> venom_core::Result<u64>,
) -> venom_status {
    guard(|| {
        // SAFETY: forwarded contract.
        let (h, data) = unsafe { (handle_mut(ptr, what)?, bytes_in(data, len, data_what)?) };
        // SAFETY: forwarded contract.
        unsafe { store_opt(report, call(h, data)?) }
    })
}

/// The tail of the functions that report a value through an optional
/// out-parameter (`*version`, `*request_id`): stores `value` in `*ptr`
/// unless NULL, and succeeds.
///
/// # Safety
/// `ptr` is NULL or valid for a write of `T`.
pub(crate) unsafe fn store_opt<T>(ptr: *mut T, value: T) -> FfiResult {
    // SAFETY: forwarded contract.
    unsafe { set_opt(&opt_out(ptr), value) };
    Ok(())
}

/// Stores `value` into an optional out-parameter.
///
/// # Safety
/// As [`Out::set`].
pub(crate) unsafe fn set_opt<T>(out: &Option<Out<T>>, value: T) {
    if let Some(o) = out {
        // SAFETY: forwarded contract.
        unsafe { o.set(value) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extreme_timeouts_clamp() {
        assert_eq!(timeout(0), Duration::ZERO);
        assert_eq!(timeout(u64::MAX), Duration::from_millis(VENOM_TIMEOUT_MAX_MS));
        // The clamped deadline is representable.
        assert!(std::time::Instant::now().checked_add(timeout(u64::MAX)).is_some());
    }

    #[test]
    fn null_buffers() {
        // SAFETY: NULL pointers are always accepted by the helpers.
        unsafe {
            assert_eq!(bytes_in(std::ptr::null(), 0, "x").unwrap().len(), 0);
            assert!(bytes_in(std::ptr::null(), 1, "x").is_err());
            assert_eq!(bytes_out(std::ptr::null_mut(), 0, "x").unwrap().len(), 0);
            assert!(bytes_out(std::ptr::null_mut(), 5, "x").is_err());
            assert!(name(std::ptr::null()).is_err());
            assert!(handle::<u8>(std::ptr::null(), "x").is_err());
        }
        assert!(out::<u8>(std::ptr::null_mut(), "x").is_err());
    }
}
