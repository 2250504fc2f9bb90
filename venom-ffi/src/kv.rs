//! `venom_kv_*`: the shared-memory key-value cache.

use std::ffi::c_char;
use std::time::Duration;

use venom_collections::{Error, Eviction, KvCache, KvConfig, KvStats};

use crate::args::{self, bytes_in, bytes_out, handle, out};
use crate::status::{Failure, guard, venom_status};

/// A full cache rejects puts with `VENOM_EFULL`.
pub const VENOM_EVICT_REJECT: u32 = 0;
/// A full cache evicts by CLOCK (second chance, approximately LRU).
pub const VENOM_EVICT_CLOCK: u32 = 1;

/// Geometry and policy of a cache, for `venom_kv_create`. Start from
/// `venom_kv_config_default`.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct venom_kv_config {
    /// Maximum number of live entries (1 ..= 2^28; default 4096).
    pub max_entries: usize,
    /// Bytes available for values (default 4 MiB).
    pub data_bytes: usize,
    /// Longest key in bytes (1 ..= 4096; default 64).
    pub max_key_len: usize,
    /// Longest value in bytes (default 64 KiB).
    pub max_value_len: usize,
    /// TTL of `venom_kv_put` in milliseconds; 0 = never expire (default).
    pub default_ttl_ms: u64,
    /// `VENOM_EVICT_REJECT` (default) or `VENOM_EVICT_CLOCK`.
    pub eviction: u32,
    /// Permission bits of the segment (default 0600).
    pub mode: u32,
}

/// A key-value cache handle.
///
/// Ownership: created by `venom_kv_create` or `venom_kv_open`, released
/// with `venom_kv_close` (the segment stays until `venom_kv_unlink`).
///
/// Threads: thread-safe; every function except `venom_kv_close` may be
/// called on one handle from many threads at once (reads are lock-free,
/// writers serialise on a crash-safe lock in shared memory).
#[allow(non_camel_case_types)]
pub struct venom_kv {
    inner: KvCache,
}

impl Default for venom_kv_config {
    fn default() -> Self {
        let d = KvConfig::default();
        venom_kv_config {
            max_entries: d.max_entries,
            data_bytes: d.data_bytes,
            max_key_len: d.max_key_len,
            max_value_len: d.max_value_len,
            default_ttl_ms: 0,
            eviction: VENOM_EVICT_REJECT,
            mode: d.mode,
        }
    }
}

/// Fills `*out` with the default cache configuration.
///
/// # Safety
/// `out` is NULL or valid for a write of `venom_kv_config`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn venom_kv_config_default(out: *mut venom_kv_config) -> venom_status {
    // SAFETY: forwarded contract.
    unsafe { args::fill_default(out) }
}

/// Creates the cache `name` (`config` NULL = defaults) and returns it in
/// `*out`. `VENOM_EEXIST` if a live process owns the name, `VENOM_EINVAL`
/// for a bad name or configuration.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `config` is NULL or valid for
/// reads; `out` is NULL or valid for a write of a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn venom_kv_create(
    name: *const c_char,
    config: *const venom_kv_config,
    out: *mut *mut venom_kv,
) -> venom_status {
    // SAFETY: forwarded contract.
    unsafe {
        args::create_named(name, config, out, "cache", |name, c: venom_kv_config| {
            let eviction = match c.eviction {
                VENOM_EVICT_REJECT => Eviction::Reject,
                VENOM_EVICT_CLOCK => Eviction::Clock,
                other => return Err(Failure::inval(format!("unknown eviction policy {other}"))),
            };
            let cfg = KvConfig {
                max_entries: c.max_entries,
                data_bytes: c.data_bytes,
                max_key_len: c.max_key_len,
                max_value_len: c.max_value_len,
                eviction,
                default_ttl: (c.default_ttl_ms != 0).then(|| Duration::from_millis(c.default_ttl_ms)),
                mode: c.mode,
            };
            cfg.validate()?;
            Ok(venom_kv { inner: KvCache::create(name, cfg)? })
        })
    }
}

/// Opens the existing cache `name`. `VENOM_ENOTFOUND`, `VENOM_ECORRUPT`,
/// `VENOM_EINVAL` (bad name).
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `out` is NULL or valid for a
/// write of a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn venom_kv_open(name: *const c_char, out: *mut *mut venom_kv) -> venom_status {
    // SAFETY: forwarded contract.
    unsafe { args::open_named(name, out, "cache", |n| Ok(venom_kv { inner: KvCache::open(n)? })) }
}

/// Stores `value` under `key` (with the cache's default TTL).
/// `VENOM_ETOOLARGE` for a key or value over the cache's limits,
/// `VENOM_EFULL` if a `Reject` cache has no room.
///
/// # Safety
/// `kv` is NULL or a live handle; `key`/`value` are NULL (with length 0) or
/// valid for their lengths.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn venom_kv_put(
    kv: *const venom_kv,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
) -> venom_status {
    guard(|| {
        // SAFETY: forwarded contract.
        let (c, key, value) =
            unsafe { (handle(kv, "cache")?, bytes_in(key, key_len, "key")?, bytes_in(value, value_len, "value")?) };
        c.inner.put(key, value)?;
        Ok(())
    })
}

/// Like `venom_kv_put` with a TTL of `ttl_ms` milliseconds (must be > 0;
/// values above ~146 years are rejected with `VENOM_EINVAL`).
///
/// # Safety
/// As `venom_kv_put`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn venom_kv_put_ttl(
    kv: *const venom_kv,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
    ttl_ms: u64,
) -> venom_status {
    guard(|| {
        // SAFETY: forwarded contract.
        let (c, key, value) =
            unsafe { (handle(kv, "cache")?, bytes_in(key, key_len, "key")?, bytes_in(value, value_len, "value")?) };
        if ttl_ms == 0 {
            return Err(Failure::inval("ttl_ms must be > 0"));
        }
        c.inner.put_with_ttl(key, value, Duration::from_millis(ttl_ms))?;
        Ok(())
    })
}

/// Copies the value of `key` into `buf` and stores its length in `*len`.
/// `VENOM_ENOTFOUND` if the key is absent or expired; `VENOM_ETOOSMALL`
/// with the value's length in `*len` if `buf` is too small (nothing is
/// copied; `buf` NULL with `cap` 0 queries the size).
///
/// # Safety
/// `kv` is NULL or a live handle; `key` is NULL (with `key_len` 0) or valid
/// for `key_len` bytes; `buf` is NULL (with `cap` 0) or valid for writes of
/// `cap` bytes; `len` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn venom_kv_get(
    kv: *const venom_kv,
    key: *const u8,
    key_len: usize,
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
) -> venom_status {
    guard(|| {
        // SAFETY: forwarded contract.
        let (c, key, buf) =
            unsafe { (handle(kv, "cache")?, bytes_in(key, key_len, "key")?, bytes_out(buf, cap, "buffer")?) };
        let len = out(len, "len")?;
        match c.inner.get_into(key, buf) {
            Ok(Some(n)) => {
                // SAFETY: checked non-null; valid per the contract.
                unsafe { len.set(n) };
                Ok(())
            }
            Ok(None) => Err(Failure::new(venom_status::VENOM_ENOTFOUND, "key not found")),
            Err(e) => {
                if let Error::BufferTooSmall { needed, .. } = e {
                    // SAFETY: checked non-null; valid per the contract.
                    unsafe { len.set(needed) };
                }
                Err(e.into())
            }
        }
    })
}

/// Removes `key`. `VENOM_ENOTFOUND` if it was absent.
///
/// # Safety
/// `kv` is NULL or a live handle; `key` is NULL (with `key_len` 0) or valid
/// for `key_len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn venom_kv_delete(kv: *const venom_kv, key: *const u8, key_len: usize) -> venom_status {
    guard(|| {
        // SAFETY: forwarded contract.
        let (c, key) = unsafe { (handle(kv, "cache")?, bytes_in(key, key_len, "key")?) };
        if c.inner.delete(key)? { Ok(()) } else { Err(Failure::new(venom_status::VENOM_ENOTFOUND, "key not found")) }
    })
}

/// Fills `*stats` with the cache's counters (summed over all processes).
///
/// # Safety
/// `kv` is NULL or a live handle; `stats` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn venom_kv_get_stats(kv: *const venom_kv, stats: *mut KvStats) -> venom_status {
    // SAFETY: forwarded contract.
    unsafe { args::get_into((kv, "cache"), (stats, "stats"), |c| Ok(c.inner.stats())) }
}

/// Removes the cache's name (open handles keep working).
///
/// # Safety
/// `kv` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn venom_kv_unlink(kv: *const venom_kv) -> venom_status {
    // SAFETY: forwarded contract.
    unsafe { args::call((kv, "cache"), |c| c.inner.unlink()) }
}

/// Closes and frees the handle (the segment stays). NULL is a no-op.
///
/// # Safety
/// `kv` is NULL or a live handle no other thread is using; it must not be
/// used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn venom_kv_close(kv: *mut venom_kv) -> venom_status {
    // SAFETY: forwarded contract.
    unsafe { args::free_handle(kv) }
}
