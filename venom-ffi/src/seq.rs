//! `venom_seq_writer_*` / `venom_seq_reader_*`: a seqlock region with one
//! writer and lock-free readers in any number of processes.

use std::ffi::c_char;

use venom_core::{RegionConfig, RegionWrite, SeqReader, SeqWriter};

use crate::args::{self, bytes_in, give_bytes, handle_mut, store_opt};
use crate::status::{Failure, FfiResult, guard, venom_status};

/// The writer of a seqlock region.
///
/// Ownership: created by `venom_seq_writer_create` or
/// `venom_seq_writer_take_over`, released with `venom_seq_writer_free`
/// (which gives up the writer role but leaves the segment in place; call
/// `venom_seq_writer_unlink` to remove the name).
///
/// Threads: use the handle from one thread at a time (it may move between
/// threads).
#[allow(non_camel_case_types)]
pub struct venom_seq_writer {
    inner: SeqWriter,
}

/// A reader of a seqlock region.
///
/// Ownership: created by `venom_seq_reader_open`, released with
/// `venom_seq_reader_free`.
///
/// Threads: thread-safe; any number of threads may read through one handle
/// at once (only `venom_seq_reader_free` must not race with them).
#[allow(non_camel_case_types)]
pub struct venom_seq_reader {
    inner: SeqReader,
}

/// Creates the region `name` of `size` bytes (dirty-tracking chunks of
/// `chunk_size` bytes, a power of two >= 64, or 0 for the default 64 KiB;
/// mode 0600) and becomes its writer. `VENOM_EEXIST` if a live process owns
/// the name, `VENOM_EINVAL` for a bad name, size or chunk size.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `out` is NULL or valid for a
/// write of a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn venom_seq_writer_create(
    name: *const c_char,
    size: usize,
    chunk_size: usize,
    out: *mut *mut venom_seq_writer,
) -> venom_status {
    guard(|| {
        let out = args::out(out, "writer")?;
        // SAFETY: forwarded contract.
        let name = unsafe { args::name(name)? };
        let mut cfg = RegionConfig::new(size);
        if chunk_size != 0 {
            cfg = cfg.chunk_size(chunk_size);
        }
        let inner = SeqWriter::create(name, cfg)?;
        // SAFETY: checked non-null; valid per the contract.
        unsafe { out.set_handle(venom_seq_writer { inner }) };
        Ok(())
    })
}

/// Becomes the writer of the existing region `name` whose writer is gone.
/// `VENOM_EBUSY` if its writer is alive. If the old writer died mid-write,
/// reads fail with `VENOM_ETORN` until a write covers the whole region.
///
/// # Safety
/// As `venom_seq_writer_create`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn venom_seq_writer_take_over(
    name: *const c_char,
    out: *mut *mut venom_seq_writer,
) -> venom_status {
    // SAFETY: forwarded contract.
    unsafe { args::open_named(name, out, "writer", |n| Ok(venom_seq_writer { inner: SeqWriter::take_over(n)? })) }
}

/// Writes `len` bytes at offset 0 and records `len` as the length returned
/// by `venom_seq_reader_read`. Stores the new version in `*version` unless
/// NULL. `VENOM_ERANGE` if `len` exceeds the region size.
///
/// # Safety
/// `writer` is NULL or a live handle owned by the calling thread; `data` is
/// NULL (with `len` 0) or valid for `len` bytes; `version` is NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn venom_seq_writer_write(
    writer: *mut venom_seq_writer,
    data: *const u8,
    len: usize,
    version: *mut u64,
) -> venom_status {
    // SAFETY: forwarded contract.
    unsafe { give_bytes((writer, "writer"), (data, len, "data"), version, |w, d| w.inner.write(d)) }
}

/// Writes `len` bytes at `offset` (the recorded length is unchanged).
/// Stores the new version in `*version` unless NULL. `VENOM_ERANGE` if the
/// range leaves the region.
///
/// # Safety
/// As `venom_seq_writer_write`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn venom_seq_writer_write_at(
    writer: *mut venom_seq_writer,
    offset: usize,
    data: *const u8,
    len: usize,
    version: *mut u64,
) -> venom_status {
    // SAFETY: forwarded contract.
    unsafe { give_bytes((writer, "writer"), (data, len, "data"), version, |w, d| w.inner.write_at(offset, d)) }
}

/// One piece of a multi-part write (`venom_seq_writer_write_parts`,
/// `venom_daemon_write_data_parts`): `len` bytes from `data` go to `offset`.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct venom_write_part {
    /// Destination offset in the region.
    pub offset: usize,
    /// Source bytes (NULL only with `len` 0).
    pub data: *const u8,
    /// Number of bytes.
    pub len: usize,
}

/// Checks every part of `parts[..count]` against a region of `size` bytes
/// before anything is written, so a bad part never leaves a partial write.
///
/// # Safety
/// `parts` is NULL (with `count` 0) or valid for `count` parts, each of
/// whose `data` is NULL (with `len` 0) or valid for `len` bytes.
pub(crate) unsafe fn checked_parts<'a>(
    parts: *const venom_write_part,
    count: usize,
    size: usize,
) -> FfiResult<&'a [venom_write_part]> {
    if count > isize::MAX as usize / std::mem::size_of::<venom_write_part>() {
        return Err(Failure::inval(format!("part count {count} is larger than any array")));
    }
    let parts: &[venom_write_part] = if parts.is_null() {
        if count != 0 {
            return Err(Failure::inval(format!("parts is NULL with count {count}")));
        }
        &[]
    } else {
        // SAFETY: non-null, count fits isize, valid per the contract.
        unsafe { std::slice::from_raw_parts(parts, count) }
    };
    for (i, p) in parts.iter().enumerate() {
        // SAFETY: forwarded contract.
        unsafe { bytes_in(p.data, p.len, "part data")? };
        if p.offset.checked_add(p.len).is_none_or(|end| end > size) {
            let msg = format!("part {i}: range {}+{} is outside the region of {size} bytes", p.offset, p.len);
            return Err(Failure::new(venom_status::VENOM_ERANGE, msg));
        }
    }
    Ok(parts)
}

/// Writes parts already checked by [`checked_parts`] inside one window.
pub(crate) fn write_parts(w: &mut RegionWrite<'_>, parts: &[venom_write_part]) -> venom_core::Result<()> {
    for p in parts {
        // SAFETY: validated by `checked_parts` under the caller's contract.
        let data = unsafe { bytes_in(p.data, p.len, "part data") }.unwrap_or_default();
        w.write_at(p.offset, data)?;
    }
    Ok(())
}

/// Writes all `count` parts as ONE version: a reader sees all of them or
/// none. Every part is checked first (`VENOM_ERANGE`, `VENOM_EINVAL`), so a
/// failed call writes nothing. The recorded length is unchanged. Stores the
/// new version in `*version` unless NULL.
///
/// # Safety
/// `writer` is NULL or a live handle owned by the calling thread; `parts` is
/// NULL (with `count` 0) or valid for `count` parts whose `data` pointers
/// are NULL (with `len` 0) or valid for `len` bytes; `version` is NULL or
/// valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn venom_seq_writer_write_parts(
    writer: *mut venom_seq_writer,
    parts: *const venom_write_part,
    count: usize,
    version: *mut u64,
) -> venom_status {
    guard(|| {
        // SAFETY: forwarded contract.
        let w = unsafe { handle_mut(writer, "writer")? };
        // SAFETY: forwarded contract.
        let parts = unsafe { checked_parts(parts, count, w.inner.size())? };
        let ((), v) = w.inner.write_with(|rw| write_parts(rw, parts))?;
        // SAFETY: `version` is NULL or valid per the contract.
        unsafe { store_opt(version, v) }
    })
}

/// Stores the version of the last completed write in `*version`.
///
/// # Safety
/// `writer` is NULL or a live handle; `version` is NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn venom_seq_writer_version(writer: *const venom_seq_writer, version: *mut u64) -> venom_status {
    // SAFETY: forwarded contract.
    unsafe { args::get_into((writer, "writer"), (version, "version"), |w| Ok(w.inner.version())) }
}

/// Stores the region size in bytes in `*size`.
///
/// # Safety
/// `writer` is NULL or a live handle; `size` is NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn venom_seq_writer_size(writer: *const venom_seq_writer, size: *mut usize) -> venom_status {
    // SAFETY: forwarded contract.
    unsafe { args::get_into((writer, "writer"), (size, "size"), |w| Ok(w.inner.size())) }
}

/// Removes the region's name (mapped handles in other processes keep
/// working; new opens fail with `VENOM_ENOTFOUND`).
///
/// # Safety
/// `writer` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn venom_seq_writer_unlink(writer: *const venom_seq_writer) -> venom_status {
    // SAFETY: forwarded contract.
    unsafe { args::call((writer, "writer"), |w| w.inner.unlink()) }
}

/// Gives up the writer role and frees the handle (the segment stays). NULL
/// is a no-op.
///
/// # Safety
/// `writer` is NULL or a live handle no other thread is using; it must not
/// be used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn venom_seq_writer_free(writer: *mut venom_seq_writer) -> venom_status {
    // SAFETY: forwarded contract.
    unsafe { args::free_handle(writer) }
}

/// Opens the region `name` for reading. `VENOM_ENOTFOUND`, `VENOM_ECORRUPT`
/// (not a region, or failed validation), `VENOM_EINVAL` (bad name).
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `out` is NULL or valid for a
/// write of a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn venom_seq_reader_open(name: *const c_char, out: *mut *mut venom_seq_reader) -> venom_status {
    // SAFETY: forwarded contract.
    unsafe { args::open_named(name, out, "reader", |n| Ok(venom_seq_reader { inner: SeqReader::open(n)? })) }
}

/// Copies the bytes of the last `venom_seq_writer_write` into `buf` and
/// stores their count in `*len`; `VENOM_ETOOSMALL` with the size needed in
/// `*len` if `buf` is too small (nothing is copied).
///
/// # Safety
/// `reader` is NULL or a live handle; `buf` is NULL (with `cap` 0) or valid
/// for writes of `cap` bytes; `len` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn venom_seq_reader_read(
    reader: *const venom_seq_reader,
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
) -> venom_status {
    // SAFETY: forwarded contract.
    unsafe { args::read_into((reader, "reader"), (buf, cap), len, |r, b| r.inner.read(b)) }
}

/// Reads exactly `len` bytes at `offset` into `buf`, consistent with one
/// write, and stores the version they belong to in `*version` unless NULL.
/// `VENOM_ERANGE` if the range leaves the region.
///
/// # Safety
/// `reader` is NULL or a live handle; `buf` is NULL (with `len` 0) or valid
/// for writes of `len` bytes; `version` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn venom_seq_reader_read_at(
    reader: *const venom_seq_reader,
    offset: usize,
    buf: *mut u8,
    len: usize,
    version: *mut u64,
) -> venom_status {
    // SAFETY: `version` is NULL or valid per the contract.
    let read = |r: &venom_seq_reader, b: &mut [u8]| unsafe { store_opt(version, r.inner.read_at(offset, b)?) };
    // SAFETY: forwarded contract.
    unsafe { args::with_buffer((reader, "reader"), (buf, len), read) }
}

/// Stores the version of the last completed write in `*version` (even; 0 =
/// never written).
///
/// # Safety
/// `reader` is NULL or a live handle; `version` is NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn venom_seq_reader_version(reader: *const venom_seq_reader, version: *mut u64) -> venom_status {
    // SAFETY: forwarded contract.
    unsafe { args::get_into((reader, "reader"), (version, "version"), |r| Ok(r.inner.region().version())) }
}

/// Stores the region size in bytes in `*size`.
///
/// # Safety
/// `reader` is NULL or a live handle; `size` is NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn venom_seq_reader_size(reader: *const venom_seq_reader, size: *mut usize) -> venom_status {
    // SAFETY: forwarded contract.
    unsafe { args::get_into((reader, "reader"), (size, "size"), |r| Ok(r.inner.region().size())) }
}

/// Waits until the version differs from `since`, up to `timeout_ms` (0 =
/// check once, `VENOM_TIMEOUT_INFINITE` = no deadline), and stores the new
/// version in `*version`. Sleeps on a process-shared futex. `VENOM_EGONE`
/// if the writer died mid-write.
///
/// # Safety
/// `reader` is NULL or a live handle; `version` is NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn venom_seq_reader_wait_for_change(
    reader: *const venom_seq_reader,
    since: u64,
    timeout_ms: u64,
    version: *mut u64,
) -> venom_status {
    // SAFETY: forwarded contract.
    unsafe {
        args::get_into((reader, "reader"), (version, "version"), |r| {
            r.inner.wait_for_change(since, args::timeout(timeout_ms))
        })
    }
}

/// Frees the handle. NULL is a no-op.
///
/// # Safety
/// `reader` is NULL or a live handle no other thread is using; it must not
/// be used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn venom_seq_reader_free(reader: *mut venom_seq_reader) -> venom_status {
    // SAFETY: forwarded contract.
    unsafe { args::free_handle(reader) }
}
