//! Read-only statistics of a channel, for tools.
//!
//! [`ChannelInfo::read`] opens the segment and loads counters: it claims no
//! client slot, does not register as consumer and writes nothing, so the
//! daemon and its shells cannot tell it is there.

use std::sync::Arc;

use super::{QUEUE_OFFSET, check_layout, header, reply_rings};
use crate::SegmentKind;
use crate::cmd_queue::CmdQueue;
use crate::error::Result;
use crate::loom::sync::Ordering;
use crate::process::ProcessId;
use crate::segment::Segment;
use crate::seq_region::SeqRegion;

/// One claimed client slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientSlot {
    /// Slot index.
    pub slot: usize,
    /// The shell process owning the slot (start time truncated to 32 bits).
    pub pid: u32,
    /// Whether it is alive (a dead owner's slot is reclaimed by the next
    /// shell that connects).
    pub alive: bool,
    /// Claim generation of the slot.
    pub generation: u64,
    /// Commands queued for the daemon.
    pub queued_commands: u64,
    /// Replies waiting for the shell.
    pub queued_replies: u64,
}

/// A snapshot of a channel's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelInfo {
    /// The daemon (the segment's creator).
    pub daemon: ProcessId,
    /// Whether the daemon is alive.
    pub daemon_alive: bool,
    /// Whether the daemon closed the channel (dropped its handle).
    pub closed: bool,
    /// Client slots.
    pub max_clients: usize,
    /// Commands per client ring.
    pub cmd_slots: usize,
    /// Largest command or reply.
    pub max_msg_size: usize,
    /// Version of the published data region.
    pub data_version: u64,
    /// Size of the data region.
    pub data_size: usize,
    /// Length of the last data write.
    pub data_len: usize,
    /// Slots that have (or had) an owner.
    pub clients: Vec<ClientSlot>,
}

impl ChannelInfo {
    /// Reads the channel `name` without joining it.
    pub fn read(name: &str) -> Result<ChannelInfo> {
        let seg = Arc::new(Segment::open(name, SegmentKind::CHANNEL)?);
        let (replies_offset, data_offset, wait) = check_layout(&seg)?;
        let queue = CmdQueue::from_segment(seg.clone(), QUEUE_OFFSET, wait)?;
        let geo = queue.inner.block.geo;
        let base = reply_rings(&seg, &geo, replies_offset, data_offset)?;
        let data = SeqRegion::attach(seg.clone(), data_offset)?;
        let clients = queue
            .lane_stats()
            .into_iter()
            .filter_map(|lane| {
                let owner = lane.owner?;
                // SAFETY: the reply ring array is inside the body (checked by
                // `reply_rings`) and lane.lane < lanes.
                let reply = unsafe { geo.ring_at(base, lane.lane) };
                Some(ClientSlot {
                    slot: lane.lane,
                    pid: owner.pid,
                    alive: lane.owner_alive,
                    generation: lane.generation,
                    queued_commands: lane.queued,
                    queued_replies: reply.pending(),
                })
            })
            .collect();
        let daemon = seg.creator();
        Ok(ChannelInfo {
            daemon,
            daemon_alive: daemon.is_alive(),
            // Acquire: pairs with the daemon's Release in Drop.
            closed: header(&seg).closed.load(Ordering::Acquire) != 0,
            max_clients: geo.lanes,
            cmd_slots: geo.depth,
            max_msg_size: geo.max_msg,
            data_version: data.version(),
            data_size: data.size(),
            data_len: data.last_write_len(),
            clients,
        })
    }
}
