//! Daemon/shell channels: one daemon publishes state through a seqlock data
//! region and answers commands from up to `max_clients` shells in other
//! processes.
//!
//! A channel is one `CHANNEL` segment holding
//! * a [`CmdQueue`](crate::cmd_queue::CmdQueue) whose lanes are the client
//!   slots (one SPSC request ring per client, a futex doorbell for the
//!   daemon);
//! * one SPSC **reply ring** per client slot, with its own futex for the
//!   client to sleep on;
//! * a [`SeqRegion`](crate::SeqRegion) for the daemon's published data.
//!
//! **Replies reach the right request.** Every request carries
//! `(slot, generation, request id)`; the daemon copies them into the reply,
//! which goes into the reply ring *of that slot only*. A shell accepts a
//! reply only if its generation is the shell's own (a reply meant for a dead
//! predecessor in the same slot is discarded) and its id is one it is
//! waiting for (a late reply to a timed-out request is discarded).
//!
//! **Crashes.** A client killed at any point (even mid-push) blocks nobody:
//! its unfinished push is invisible, its slot is reclaimed by the next
//! connecting shell (which finds the owner dead), and the slot's generation
//! bump makes the daemon drop the dead client's remaining commands and
//! replies. If the daemon dies, shells waiting on it get
//! [`Error::DaemonGone`] within their timeout (they
//! check the daemon's pid and start time while they wait).
//!
//! **Daemon restarts: reconnect by hand.** A restarted daemon creates a fresh
//! segment (the old one is reclaimed because its creator is dead), so old
//! shells hold a mapping nobody serves. After `DaemonGone` call
//! [`ShellChannel::reconnect`]; it waits for the new daemon and claims a new
//! slot. It is not automatic because requests in flight when the daemon
//! died are lost and the application must decide whether to resend them.
//!
//! ```
//! use venom_core::channel::{ChannelConfig, DaemonChannel, ShellChannel};
//! let name = format!("doc-chan-{}", std::process::id());
//! let mut daemon = DaemonChannel::create(&name, ChannelConfig { max_clients: 4, ..Default::default() })?;
//! daemon.write_data(b"state v1")?;
//! let stop = daemon.stop_handle();
//! let server = std::thread::spawn(move || daemon.run(|_client, cmd| [cmd, b"!"].concat()));
//!
//! let mut shell = ShellChannel::connect(&name)?;
//! let mut buf = [0u8; 64];
//! let n = shell.read_data(&mut buf)?;
//! assert_eq!(&buf[..n], b"state v1");
//! let n = shell.request(b"ping", &mut buf)?;
//! assert_eq!(&buf[..n], b"ping!");
//! stop.stop();
//! server.join().unwrap()?;
//! # Ok::<(), venom_core::Error>(())
//! ```

mod command;
mod daemon;
mod inspect;
pub mod probes;
mod shell;
mod stop;

use std::fmt;

pub use command::Command;
pub use daemon::{DaemonChannel, DaemonStats};
pub use inspect::{ChannelInfo, ClientSlot};
pub use shell::{DEFAULT_REQUEST_TIMEOUT, ShellChannel};
pub use stop::StopHandle;

pub use crate::cmd_queue::WaitStrategy;
use crate::cmd_queue::{DEFAULT_MAX_MSG_SIZE, Geometry};
use crate::error::{Error, Result};
use crate::header::static_usize;
use crate::loom::sync::{AtomicU64, Ordering};
use crate::segment::Segment;
use crate::seq_region::{self, RegionConfig};

/// "VNMCHANL", little-endian.
const CHANNEL_MAGIC: u64 = u64::from_le_bytes(*b"VNMCHANL");
/// Bumped on any incompatible change of the channel layout.
const CHANNEL_LAYOUT_VERSION: u64 = 2;
/// Offset of the command queue block in the body.
const QUEUE_OFFSET: usize = 128;

/// Shape of a channel.
///
/// Shared memory used: about `2 × max_clients × cmd_slots × (64 +
/// round_up(max_msg_size - 32, 64))` bytes for the rings plus `data_size` (e.g. 16 × 32 ×
/// 4 KiB × 2 ≈ 4.3 MB with the defaults; tmpfs only backs pages once
/// touched). Every slot is sized for the largest message, so with large
/// `max_msg_size` lower `cmd_slots` (1 MiB × 16 clients × 32 slots × 2 would
/// be 1 GiB).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelConfig {
    /// Bytes of the published data region (default 64 KiB).
    pub data_size: usize,
    /// Commands each client can have queued or in flight (rounded up to a
    /// power of two, ≥ 2; default 32). A client may have `cmd_slots - 1`
    /// requests outstanding.
    pub cmd_slots: usize,
    /// Most clients connected at once (default 16).
    pub max_clients: usize,
    /// Largest command and largest reply in bytes (default 4 KiB).
    pub max_msg_size: usize,
    /// How the daemon waits for commands; also the shells' default for
    /// waiting on replies (default [`WaitStrategy::SpinThenPark`]).
    pub wait: WaitStrategy,
    /// Dirty-tracking chunk size of the data region (default 64 KiB).
    pub chunk_size: usize,
    /// Permission bits of the segment (default 0600).
    pub mode: u32,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        ChannelConfig {
            data_size: 64 * 1024,
            cmd_slots: 32,
            max_clients: 16,
            max_msg_size: DEFAULT_MAX_MSG_SIZE,
            wait: WaitStrategy::default(),
            chunk_size: seq_region::DEFAULT_CHUNK_SIZE,
            mode: crate::segment::DEFAULT_MODE,
        }
    }
}

/// A client slot as the daemon sees it: the slot index and the claim
/// generation, which changes whenever a new shell takes the slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientId {
    slot: u32,
    generation: u64,
}

impl ClientId {
    /// The slot index, `0..max_clients`.
    pub fn slot(&self) -> usize {
        self.slot as usize
    }

    /// The slot's claim generation.
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.slot, self.generation)
    }
}

/// The channel header at body offset 0 (one cache line, all atomics).
#[repr(C)]
struct ChannelHeader {
    magic: AtomicU64,
    version: AtomicU64,
    queue_len: AtomicU64,
    replies_offset: AtomicU64,
    data_offset: AtomicU64,
    /// The daemon's wait strategy (shell default).
    wait: AtomicU64,
    /// Set to 1 by the daemon when it drops the channel.
    closed: AtomicU64,
}

/// Offsets of a channel body.
#[derive(Clone, Copy, Debug)]
struct Layout {
    geo: Geometry,
    replies_offset: usize,
    data_offset: usize,
    total: usize,
}

impl Layout {
    fn new(cfg: &ChannelConfig) -> Result<(Layout, RegionConfig)> {
        let geo = Geometry::new(cfg.max_clients, cfg.cmd_slots, cfg.max_msg_size)?;
        let region = RegionConfig::new(cfg.data_size).chunk_size(cfg.chunk_size);
        let data_len = seq_region::layout_len(&region)?;
        let replies_offset = QUEUE_OFFSET + geo.total_len();
        let data_offset = replies_offset + geo.lanes * geo.ring_len();
        Ok((Layout { geo, replies_offset, data_offset, total: data_offset + data_len }, region))
    }
}

fn header(seg: &Segment) -> &ChannelHeader {
    // SAFETY: every channel body is at least 128 bytes (checked at create and
    // attach); the body is 128-aligned and atomics accept any bits.
    unsafe { &*(seg.body_ptr() as *const ChannelHeader) }
}

/// Validates the channel header of an opened segment and returns the
/// layout. The queue geometry is validated again by the queue itself.
fn check_layout(seg: &Segment) -> Result<(usize, usize, WaitStrategy)> {
    let name = seg.name();
    if seg.body_len() < QUEUE_OFFSET {
        return Err(Error::corrupt(name, "channel body too short"));
    }
    let h = header(seg);
    crate::header::check_block_words(name, "channel", (&h.magic, CHANNEL_MAGIC), (&h.version, CHANNEL_LAYOUT_VERSION))?;
    let (queue_len, replies, data) =
        (static_usize(&h.queue_len), static_usize(&h.replies_offset), static_usize(&h.data_offset));
    let ok = QUEUE_OFFSET.checked_add(queue_len) == Some(replies)
        && replies <= data
        && data <= seg.body_len()
        && replies % 128 == 0
        && data % 128 == 0;
    if !ok {
        return Err(Error::corrupt(name, "channel offsets inconsistent"));
    }
    let wait = WaitStrategy::from_raw(h.wait.load(Ordering::Relaxed)).unwrap_or_default();
    Ok((replies, data, wait))
}

/// Reply rings of a channel segment, checked against the queue geometry.
fn reply_rings(seg: &Segment, geo: &Geometry, replies_offset: usize, data_offset: usize) -> Result<*mut u8> {
    if replies_offset + geo.lanes * geo.ring_len() > data_offset {
        return Err(Error::corrupt(seg.name(), "reply rings overlap the data region"));
    }
    // SAFETY: replies_offset < body_len (checked by check_layout).
    Ok(unsafe { seg.body_ptr().add(replies_offset) })
}
