//! `venom_shell_*`: the client side of a channel.

use std::ffi::c_char;

use venom_core::{Error, ShellChannel};

use crate::args::{self, bytes_in, bytes_out, give_bytes, handle_mut, opt_out, out, set_opt};
use crate::status::{guard, venom_status};

/// A channel client handle: reads the daemon's data and sends it requests.
///
/// Ownership: created by `venom_shell_connect`, released with
/// `venom_shell_free` (which frees the client slot).
///
/// Threads: use the handle from one thread at a time (it may move between
/// threads). Open one shell per thread for concurrent requests.
#[allow(non_camel_case_types)]
pub struct venom_shell {
    chan: ShellChannel,
}

/// Connects to the channel `name`, claiming a client slot, and returns the
/// shell in `*out`. `VENOM_ENOTFOUND` if no such channel, `VENOM_EGONE` if
/// its daemon is dead, `VENOM_EBUSY` if every client slot is taken.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `out` is NULL or valid for a
/// write of a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn venom_shell_connect(name: *const c_char, out: *mut *mut venom_shell) -> venom_status {
    // SAFETY: forwarded contract.
    unsafe { args::open_named(name, out, "shell", |n| Ok(venom_shell { chan: ShellChannel::connect(n)? })) }
}

/// Copies the daemon's last `venom_daemon_write_data` into `buf` and stores
/// its length in `*len`. If `buf` is too small: `VENOM_ETOOSMALL` with the
/// size needed in `*len` (nothing is copied; pass `buf` NULL and `cap` 0 to
/// query the size).
///
/// # Safety
/// `shell` is NULL or a live handle; `buf` is NULL (with `cap` 0) or valid
/// for writes of `cap` bytes; `len` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn venom_shell_read_data(
    shell: *const venom_shell,
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
) -> venom_status {
    // SAFETY: forwarded contract.
    unsafe { args::read_into((shell, "shell"), (buf, cap), len, |s, b| s.chan.read_data(b)) }
}

/// Stores the version of the daemon's data in `*version` (even; 0 = never
/// written; it grows with every write).
///
/// # Safety
/// `shell` is NULL or a live handle; `version` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn venom_shell_data_version(shell: *const venom_shell, version: *mut u64) -> venom_status {
    // SAFETY: forwarded contract.
    unsafe { args::get_into((shell, "shell"), (version, "version"), |s| Ok(s.chan.data().version())) }
}

/// Waits until the daemon's data version differs from `since`, up to
/// `timeout_ms` (0 = check once, `VENOM_TIMEOUT_INFINITE` = no deadline),
/// and stores the new version in `*version`. Sleeps on a futex.
///
/// # Safety
/// `shell` is NULL or a live handle; `version` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn venom_shell_wait_for_change(
    shell: *const venom_shell,
    since: u64,
    timeout_ms: u64,
    version: *mut u64,
) -> venom_status {
    // SAFETY: forwarded contract.
    unsafe {
        args::get_into((shell, "shell"), (version, "version"), |s| {
            s.chan.data().wait_for_change(since, args::timeout(timeout_ms))
        })
    }
}

/// Sends the `cmd_len`-byte command `cmd` and copies the daemon's reply into
/// `resp`, storing its length in `*resp_len`.
///
/// `timeout_ms` bounds the whole request (0 = only if the reply is
/// immediate, `VENOM_TIMEOUT_INFINITE` = no deadline, clamped to
/// `VENOM_TIMEOUT_MAX_MS`); a dead daemon is detected while waiting
/// (`VENOM_EGONE`). Errors: `VENOM_ETIMEDOUT` (a late reply is discarded),
/// `VENOM_ETOOLARGE` (command or reply over `max_msg_size`),
/// `VENOM_ENOREPLY`, and `VENOM_ETOOSMALL` with the reply's size in
/// `*resp_len` (that reply is discarded: size `resp` to
/// `venom_shell_max_msg_size` to never lose one).
///
/// # Safety
/// `shell` is NULL or a live handle owned by the calling thread; `cmd` is
/// NULL (with `cmd_len` 0) or valid for `cmd_len` bytes; `resp` is NULL
/// (with `resp_cap` 0) or valid for writes of `resp_cap` bytes, not
/// overlapping `cmd`; `resp_len` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn venom_shell_request(
    shell: *mut venom_shell,
    cmd: *const u8,
    cmd_len: usize,
    resp: *mut u8,
    resp_cap: usize,
    resp_len: *mut usize,
    timeout_ms: u64,
) -> venom_status {
    guard(|| {
        // SAFETY: forwarded contract.
        let (s, cmd, resp) = unsafe {
            (handle_mut(shell, "shell")?, bytes_in(cmd, cmd_len, "command")?, bytes_out(resp, resp_cap, "response")?)
        };
        let len = out(resp_len, "resp_len")?;
        let n = s.chan.request_timeout(cmd, resp, args::timeout(timeout_ms)).map_err(|e| len.report_needed(e))?;
        // SAFETY: checked non-null; valid per the contract.
        unsafe { len.set(n) };
        Ok(())
    })
}

/// Pipelining: sends the command without waiting for its reply and stores
/// its request id in `*request_id` unless NULL. Collect replies with
/// `venom_shell_recv_response`. At most `cmd_slots - 1` requests may be
/// outstanding; beyond that `VENOM_EFULL` until replies are collected.
/// While requests are outstanding `venom_shell_request` fails with
/// `VENOM_EBUSY`. Waits up to 5 s for ring room if the daemon is behind.
///
/// # Safety
/// `shell` is NULL or a live handle owned by the calling thread; `cmd` is
/// NULL (with `cmd_len` 0) or valid for `cmd_len` bytes; `request_id` is
/// NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn venom_shell_send(
    shell: *mut venom_shell,
    cmd: *const u8,
    cmd_len: usize,
    request_id: *mut u64,
) -> venom_status {
    // SAFETY: forwarded contract.
    unsafe { give_bytes((shell, "shell"), (cmd, cmd_len, "command"), request_id, |s, c| s.chan.send_command(c)) }
}

/// Pipelining: waits up to `timeout_ms` for the next reply to a
/// `venom_shell_send` request (replies arrive in the order the daemon
/// answers), copies it into `buf`, its length into `*len` and its request
/// id into `*request_id` (unless NULL; also set for `VENOM_ETOOLARGE` and
/// `VENOM_ENOREPLY` replies). If `buf` is too small: `VENOM_ETOOSMALL` with
/// the size needed in `*len`, and the reply stays queued. `VENOM_ETIMEDOUT`
/// at once when nothing is outstanding.
///
/// # Safety
/// `shell` is NULL or a live handle owned by the calling thread; `buf` is
/// NULL (with `cap` 0) or valid for writes of `cap` bytes; `len` and
/// `request_id` are NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn venom_shell_recv_response(
    shell: *mut venom_shell,
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
    request_id: *mut u64,
    timeout_ms: u64,
) -> venom_status {
    guard(|| {
        // SAFETY: forwarded contract.
        let (s, buf) = unsafe { (handle_mut(shell, "shell")?, bytes_out(buf, cap, "buffer")?) };
        let len = out(len, "len")?;
        let id_out = opt_out(request_id);
        match s.chan.recv_response_timeout(buf, args::timeout(timeout_ms)) {
            Ok((id, n)) => {
                // SAFETY: checked non-null / NULL-or-valid per the contract.
                unsafe {
                    len.set(n);
                    set_opt(&id_out, id);
                }
                Ok(())
            }
            Err(e) => {
                if let Error::ReplyTooLarge { id, .. } | Error::NoReply { id } = e {
                    // SAFETY: NULL or valid per the contract.
                    unsafe { set_opt(&id_out, id) };
                }
                Err(len.report_needed(e))
            }
        }
    })
}

/// Stores the number of `venom_shell_send` requests whose replies were not
/// yet received in `*count`.
///
/// # Safety
/// `shell` is NULL or a live handle; `count` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn venom_shell_outstanding(shell: *const venom_shell, count: *mut usize) -> venom_status {
    // SAFETY: forwarded contract.
    unsafe { args::get_into((shell, "shell"), (count, "count"), |s| Ok(s.chan.outstanding())) }
}

/// Reads exactly `len` bytes at `offset` of the daemon's data region into
/// `buf`, consistent with one daemon write, and stores that write's version
/// in `*version` unless NULL. `VENOM_ERANGE` if the range leaves the region.
///
/// # Safety
/// `shell` is NULL or a live handle; `buf` is NULL (with `len` 0) or valid
/// for writes of `len` bytes; `version` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn venom_shell_read_data_at(
    shell: *const venom_shell,
    offset: usize,
    buf: *mut u8,
    len: usize,
    version: *mut u64,
) -> venom_status {
    // SAFETY: `version` is NULL or valid per the contract.
    let read = |s: &venom_shell, b: &mut [u8]| unsafe { args::store_opt(version, s.chan.data().read_at(offset, b)?) };
    // SAFETY: forwarded contract.
    unsafe { args::with_buffer((shell, "shell"), (buf, len), read) }
}

/// Stores the channel's largest command (and reply) size in `*size`.
///
/// # Safety
/// `shell` is NULL or a live handle; `size` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn venom_shell_max_msg_size(shell: *const venom_shell, size: *mut usize) -> venom_status {
    // SAFETY: forwarded contract.
    unsafe { args::get_into((shell, "shell"), (size, "size"), |s| Ok(s.chan.max_msg_size())) }
}

/// Stores 1 in `*alive` if the daemon is alive and has not closed the
/// channel, else 0.
///
/// # Safety
/// `shell` is NULL or a live handle; `alive` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn venom_shell_daemon_alive(shell: *const venom_shell, alive: *mut i32) -> venom_status {
    // SAFETY: forwarded contract.
    unsafe { args::get_into((shell, "shell"), (alive, "alive"), |s| Ok(i32::from(s.chan.daemon_alive()))) }
}

/// Disconnects and frees the handle (the client slot becomes free). NULL is
/// a no-op.
///
/// # Safety
/// `shell` is NULL or a live handle no other thread is using; it must not be
/// used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn venom_shell_free(shell: *mut venom_shell) -> venom_status {
    // SAFETY: forwarded contract.
    unsafe { args::free_handle(shell) }
}
