//! `venom_daemon_*`: the serving side of a channel, driven by a
//! receive/respond loop (no callbacks cross the boundary).

use std::cell::UnsafeCell;
use std::collections::HashMap;
use std::ffi::c_char;

use venom_core::channel::Command;
use venom_core::{ChannelConfig, DaemonChannel, StopHandle, WaitStrategy};

use crate::args::{self, bytes_in, bytes_out, handle, opt_out, out, set_opt, store_opt};
use crate::seq::{checked_parts, venom_write_part, write_parts};
use crate::status::{Failure, FfiResult, guard, venom_status};

/// Busy-poll: lowest latency, burns a core while idle.
pub const VENOM_WAIT_SPIN: u32 = 0;
/// Spin briefly, then sleep on a futex (the default).
pub const VENOM_WAIT_SPIN_THEN_PARK: u32 = 1;
/// Sleep on a futex at once: a wake-up per message, never spins.
pub const VENOM_WAIT_PARK: u32 = 2;

/// Shape of a channel, for `venom_daemon_create`. Start from
/// `venom_channel_config_default` and change the fields you need.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct venom_channel_config {
    /// Bytes of the published data region (default 64 KiB).
    pub data_size: usize,
    /// Commands each client can have queued or in flight (rounded up to a
    /// power of two, at least 2; default 32).
    pub cmd_slots: usize,
    /// Most clients connected at once (default 16).
    pub max_clients: usize,
    /// Largest command and largest reply in bytes (default 4096).
    pub max_msg_size: usize,
    /// Dirty-tracking chunk size of the data region, a power of two >= 64
    /// (default 64 KiB).
    pub chunk_size: usize,
    /// How the daemon waits for commands and the shells' default for
    /// waiting on replies: one of the `VENOM_WAIT_*` values.
    pub wait: u32,
    /// Permission bits of the segment (default 0600).
    pub mode: u32,
}

/// Identifies a command received with `venom_daemon_recv`.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct venom_command {
    /// Pass to `venom_daemon_respond` (or `venom_daemon_discard`). Never 0
    /// for a received command.
    pub token: u64,
    /// The client's request id.
    pub request_id: u64,
    /// Claim generation of the client's slot (changes when a new shell
    /// takes the slot).
    pub client_generation: u64,
    /// The client's slot, `0..max_clients`.
    pub client_slot: u32,
    /// Command length in bytes; on `VENOM_ETOOSMALL`, the buffer size needed.
    pub len: usize,
}

/// A channel daemon handle.
///
/// Ownership: created by `venom_daemon_create`, released with
/// `venom_daemon_free` (which closes the channel: connected shells get
/// `VENOM_EGONE`, and the name is unlinked).
///
/// Threads: use the handle from one thread at a time (it may move between
/// threads). The one exception is `venom_daemon_stop`, which any thread or a
/// signal handler may call while another thread is inside
/// `venom_daemon_recv`.
#[allow(non_camel_case_types)]
pub struct venom_daemon {
    stop: StopHandle,
    state: UnsafeCell<DaemonState>,
}

struct DaemonState {
    chan: DaemonChannel,
    /// A command whose bytes did not fit the caller's buffer: returned first
    /// by the next receive.
    held: Option<Command>,
    /// Received, not yet answered, by token.
    pending: HashMap<u64, Command>,
    next_token: u64,
}

impl venom_daemon {
    /// The mutable state.
    ///
    /// # Safety
    /// Only the handle's owning thread calls this (the documented contract);
    /// `stop` is the only field other threads touch.
    #[allow(clippy::mut_from_ref)]
    unsafe fn state(&self) -> &mut DaemonState {
        // SAFETY: single-threaded use of `state` per the handle contract.
        unsafe { &mut *self.state.get() }
    }
}

impl Default for venom_channel_config {
    fn default() -> Self {
        let d = ChannelConfig::default();
        venom_channel_config {
            data_size: d.data_size,
            cmd_slots: d.cmd_slots,
            max_clients: d.max_clients,
            max_msg_size: d.max_msg_size,
            chunk_size: d.chunk_size,
            wait: VENOM_WAIT_SPIN_THEN_PARK,
            mode: d.mode,
        }
    }
}

fn wait_strategy(raw: u32) -> FfiResult<WaitStrategy> {
    match raw {
        VENOM_WAIT_SPIN => Ok(WaitStrategy::Spin),
        VENOM_WAIT_SPIN_THEN_PARK => Ok(WaitStrategy::SpinThenPark),
        VENOM_WAIT_PARK => Ok(WaitStrategy::Park),
        other => Err(Failure::inval(format!("unknown wait strategy {other}"))),
    }
}

/// Fills `*out` with the default channel configuration.
///
/// # Safety
/// `out` is NULL or valid for a write of `venom_channel_config`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn venom_channel_config_default(out: *mut venom_channel_config) -> venom_status {
    // SAFETY: forwarded contract.
    unsafe { args::fill_default(out) }
}

/// Creates the channel `name` and returns its daemon in `*out`.
///
/// `config` may be NULL for the defaults. Fails with `VENOM_EEXIST` if a
/// live daemon owns the name (its segment is left alone; a dead daemon's is
/// reclaimed), `VENOM_EINVAL` for a bad name or configuration.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `config` is NULL or valid for
/// reads; `out` is NULL or valid for a write of a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn venom_daemon_create(
    name: *const c_char,
    config: *const venom_channel_config,
    out: *mut *mut venom_daemon,
) -> venom_status {
    // SAFETY: forwarded contract.
    unsafe {
        args::create_named(name, config, out, "daemon", |name, c: venom_channel_config| {
            let cfg = ChannelConfig {
                data_size: c.data_size,
                cmd_slots: c.cmd_slots,
                max_clients: c.max_clients,
                max_msg_size: c.max_msg_size,
                wait: wait_strategy(c.wait)?,
                chunk_size: c.chunk_size,
                mode: c.mode,
            };
            let chan = DaemonChannel::create(name, cfg)?;
            Ok(venom_daemon {
                stop: chan.stop_handle(),
                state: UnsafeCell::new(DaemonState { chan, held: None, pending: HashMap::new(), next_token: 1 }),
            })
        })
    }
}

/// Publishes `len` bytes at offset 0 of the channel's data region (shells
/// read them with `venom_shell_read_data`). Stores the new data version in
/// `*version` unless it is NULL. `VENOM_ERANGE` if `len` exceeds the
/// region's `data_size`.
///
/// # Safety
/// `daemon` is NULL or a live handle owned by the calling thread; `data` is
/// NULL (with `len` 0) or valid for `len` bytes; `version` is NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn venom_daemon_write_data(
    daemon: *mut venom_daemon,
    data: *const u8,
    len: usize,
    version: *mut u64,
) -> venom_status {
    guard(|| {
        // SAFETY: forwarded contract.
        let (d, data) = unsafe { (handle(daemon, "daemon")?, bytes_in(data, len, "data")?) };
        let version = opt_out(version);
        // SAFETY: owning thread (contract).
        let v = unsafe { d.state() }.chan.write_data(data)?;
        // SAFETY: NULL or valid per the contract.
        unsafe { set_opt(&version, v) };
        Ok(())
    })
}

/// Publishes several `parts` of the channel's data region as ONE version
/// (shells see all of them or none); every part is checked first, so a
/// failed call writes nothing. The recorded length (what
/// `venom_shell_read_data` returns) is unchanged. Stores the new version in
/// `*version` unless NULL.
///
/// # Safety
/// `daemon` is NULL or a live handle owned by the calling thread; `parts` is
/// NULL (with `count` 0) or valid for `count` parts whose `data` pointers
/// are NULL (with `len` 0) or valid for `len` bytes; `version` is NULL or
/// valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn venom_daemon_write_data_parts(
    daemon: *mut venom_daemon,
    parts: *const venom_write_part,
    count: usize,
    version: *mut u64,
) -> venom_status {
    guard(|| {
        // SAFETY: forwarded contract.
        let d = unsafe { handle(daemon, "daemon")? };
        // SAFETY: owning thread (contract).
        let st = unsafe { d.state() };
        // SAFETY: forwarded contract.
        let parts = unsafe { checked_parts(parts, count, st.chan.data().size())? };
        let ((), v) = st.chan.write_data_with(|w| write_parts(w, parts))?;
        // SAFETY: `version` is NULL or valid per the contract.
        unsafe { store_opt(version, v) }
    })
}

/// Waits up to `timeout_ms` for the next command, copies its bytes into
/// `buf` and describes it in `*cmd`.
///
/// `timeout_ms`: 0 polls once, `VENOM_TIMEOUT_INFINITE` waits without a
/// deadline (clamped to `VENOM_TIMEOUT_MAX_MS`). Returns `VENOM_ETIMEDOUT`
/// when nothing arrived, `VENOM_ESTOPPED` after `venom_daemon_stop`.
///
/// If `buf` is too small, returns `VENOM_ETOOSMALL` with `cmd->len` set to
/// the size needed; the command stays queued and the next call returns it
/// again (so a size query with `buf` NULL and `cap` 0 loses nothing).
/// Buffers of the channel's `max_msg_size` always suffice.
///
/// Every received command must be answered with `venom_daemon_respond` or
/// released with `venom_daemon_discard`; its client waits until then.
///
/// # Safety
/// `daemon` is NULL or a live handle owned by the calling thread; `buf` is
/// NULL (with `cap` 0) or valid for writes of `cap` bytes; `cmd` is NULL or
/// valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn venom_daemon_recv(
    daemon: *mut venom_daemon,
    timeout_ms: u64,
    buf: *mut u8,
    cap: usize,
    cmd: *mut venom_command,
) -> venom_status {
    guard(|| {
        // SAFETY: forwarded contract.
        let (d, buf) = unsafe { (handle(daemon, "daemon")?, bytes_out(buf, cap, "buffer")?) };
        let info_out = out(cmd, "command")?;
        // SAFETY: owning thread (contract).
        let st = unsafe { d.state() };
        let c = match st.held.take() {
            Some(c) => c,
            None => st.chan.recv_command(args::timeout(timeout_ms))?,
        };
        let mut info = venom_command {
            token: 0,
            request_id: c.request_id(),
            client_generation: c.client().generation(),
            client_slot: c.client().slot() as u32,
            len: c.data().len(),
        };
        let Some(dst) = buf.get_mut(..c.data().len()) else {
            // SAFETY: checked non-null; valid per the contract.
            unsafe { info_out.set(info) };
            let msg = format!("command of {} bytes does not fit a {}-byte buffer", c.data().len(), buf.len());
            st.held = Some(c);
            return Err(Failure::new(venom_status::VENOM_ETOOSMALL, msg));
        };
        dst.copy_from_slice(c.data());
        info.token = st.next_token;
        st.next_token += 1;
        st.pending.insert(info.token, c);
        // SAFETY: checked non-null; valid per the contract.
        unsafe { info_out.set(info) };
        Ok(())
    })
}

/// Answers the command `token` (from `venom_daemon_recv`) with `len` bytes.
///
/// `VENOM_EINVAL` for an unknown or already answered token. A reply over
/// `max_msg_size` fails with `VENOM_ETOOLARGE` and the client receives
/// `VENOM_ETOOLARGE` too. Answering a client that has gone away succeeds.
///
/// # Safety
/// `daemon` is NULL or a live handle owned by the calling thread; `reply` is
/// NULL (with `len` 0) or valid for `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn venom_daemon_respond(
    daemon: *mut venom_daemon,
    token: u64,
    reply: *const u8,
    len: usize,
) -> venom_status {
    guard(|| {
        // SAFETY: forwarded contract.
        let (d, reply) = unsafe { (handle(daemon, "daemon")?, bytes_in(reply, len, "reply")?) };
        // SAFETY: owning thread (contract).
        let st = unsafe { d.state() };
        let c = st.pending.remove(&token).ok_or_else(|| Failure::inval(format!("no pending command {token}")))?;
        st.chan.respond(c, reply)?;
        Ok(())
    })
}

/// Releases the command `token` without answering: its client receives
/// `VENOM_ENOREPLY`. `VENOM_EINVAL` for an unknown token.
///
/// # Safety
/// `daemon` is NULL or a live handle owned by the calling thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn venom_daemon_discard(daemon: *mut venom_daemon, token: u64) -> venom_status {
    guard(|| {
        // SAFETY: forwarded contract.
        let d = unsafe { handle(daemon, "daemon")? };
        // SAFETY: owning thread (contract).
        let st = unsafe { d.state() };
        // Dropping an unanswered Command reports NoReply to its client.
        st.pending.remove(&token).map(drop).ok_or_else(|| Failure::inval(format!("no pending command {token}")))
    })
}

/// Stores the number of live connected clients in `*clients`.
///
/// # Safety
/// `daemon` is NULL or a live handle owned by the calling thread; `clients`
/// is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn venom_daemon_clients(daemon: *mut venom_daemon, clients: *mut usize) -> venom_status {
    guard(|| {
        // SAFETY: forwarded contract.
        let d = unsafe { handle(daemon, "daemon")? };
        let clients = out(clients, "clients")?;
        // SAFETY: owning thread (contract); `clients` checked and valid.
        unsafe { clients.set(d.state().chan.clients()) };
        Ok(())
    })
}

/// Makes `venom_daemon_recv` return `VENOM_ESTOPPED`, now (waking it if it
/// sleeps) and on every later call. Sticky.
///
/// Thread-safe and async-signal-safe: callable from any thread or a signal
/// handler while the owning thread is inside `venom_daemon_recv` (but not
/// concurrently with `venom_daemon_free`). Only the failure path (a NULL
/// `daemon`) allocates, to record its message.
///
/// # Safety
/// `daemon` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn venom_daemon_stop(daemon: *const venom_daemon) -> venom_status {
    guard(|| {
        // SAFETY: forwarded contract; only the `stop` field is touched, which
        // is Sync and never mutated.
        unsafe { handle(daemon, "daemon")? }.stop.stop();
        Ok(())
    })
}

/// Closes the channel and frees the handle. Connected shells get
/// `VENOM_EGONE`; unanswered commands are dropped. NULL is a no-op.
///
/// # Safety
/// `daemon` is NULL or a live handle no other thread is using; it must not be
/// used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn venom_daemon_free(daemon: *mut venom_daemon) -> venom_status {
    // SAFETY: forwarded contract.
    unsafe { args::free_handle(daemon) }
}
