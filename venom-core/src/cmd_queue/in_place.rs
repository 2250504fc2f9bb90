//! In-place replies: a channel's daemon answers a request in the request's
//! own ring slot, so a small request and its reply each move one cache line
//! (stamp, header and up to 32 payload bytes share it) and no reply ring
//! exists.
//!
//! Life cycle of the stamp of the slot of position `pos` (low bits
//! `pos + 1`, state in the top bits, see [`ring`](super::ring)):
//! ```text
//! REQUEST --daemon: CAS--> WRITING --daemon: Release store--> REPLIED
//!    \--client taking over the lane: CAS--> CANCELLED
//! ```
//! * The daemon writes into a slot only after winning the CAS from exactly
//!   `REQUEST | pos + 1`, so a reply can land neither in a request that a
//!   new client of the lane withdrew nor in a slot reused for a later
//!   position (positions only grow, so there is no ABA).
//! * The client reuses the slot (for `pos + depth`) only when (a) the
//!   daemon's `head` has passed `pos`, i.e. it has finished reading the
//!   request (the ring's Release/Acquire of `head`), and (b) the slot is
//!   REPLIED and the client has taken the reply, or it is CANCELLED. So
//!   a slot is held until it is answered.
//! * A client that takes over a lane (its predecessor died or left with
//!   requests outstanding) withdraws the predecessor's last `depth`
//!   positions: requests still REQUEST become CANCELLED (the daemon skips
//!   them, or its later CAS fails and the reply is dropped), and a reply
//!   being written (WRITING) is waited for. Its own positions start past
//!   all of them, so a stale reply can never be read as its own.

use super::ring::{
    Peeked, Ring, STAMP_CANCELLED, STAMP_POS_MASK, STAMP_REPLIED, STAMP_REQUEST, STAMP_STATE_MASK, STAMP_WRITING,
};
use crate::loom::sync::Ordering;

/// What [`Ring::withdraw`] found in a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Withdrawn {
    /// No reply will be written into the slot for this position.
    Done,
    /// The daemon is writing a reply into it right now: ask again.
    Busy,
}

impl Ring {
    /// Daemon: answers the request at `pos` in its own slot (status,
    /// length word and payload), then publishes the reply stamp. Returns
    /// `false`, writing nothing, if the request is no longer there (a new
    /// client of the lane withdrew it).
    pub(crate) fn reply_in_place(&self, pos: u64, status: u32, len_field: u32, payload: &[u8]) -> bool {
        let (hdr, _, _) = self.slot(pos);
        let req = pos + 1;
        // Relaxed (both): the CAS only decides who owns the slot. The stores
        // below reach the client through the Release store of REPLIED, and
        // a withdrawing client that loses this race waits for that store
        // (Acquire) before it touches the slot again.
        if hdr.seq.compare_exchange(req, STAMP_WRITING | req, Ordering::Relaxed, Ordering::Relaxed).is_err() {
            return false;
        }
        self.fill_body(pos, status, len_field, payload);
        // Release: publishes the reply, and our earlier reads of the
        // request, to the client's Acquire load of the stamp.
        hdr.seq.store(STAMP_REPLIED | req, Ordering::Release);
        true
    }

    /// Client: whether the reply to `pos` is in its slot (one Acquire load
    /// of a line that also holds the header and a small reply: the
    /// fast-path check).
    #[inline]
    pub(crate) fn replied(&self, pos: u64) -> bool {
        self.stamp(pos) == STAMP_REPLIED | (pos + 1)
    }

    /// Client: the header of the reply to `pos`, if it is there. The
    /// payload is read with [`Ring::read_payload`].
    #[inline]
    pub(crate) fn reply(&self, pos: u64) -> Option<Peeked> {
        // `replied` loads the stamp with Acquire: pairs with the Release in
        // `reply_in_place`, so the header loads see the reply's stores.
        self.replied(pos).then(|| self.header(pos))
    }

    /// Client taking over a lane: makes sure no reply will be written into
    /// the slot for `pos` (a position of a predecessor).
    pub(crate) fn withdraw(&self, pos: u64) -> Withdrawn {
        let (hdr, _, _) = self.slot(pos);
        let req = pos + 1;
        // Acquire: if the daemon finished a reply here (REPLIED), its
        // stores happen-before our later reuse of the slot.
        let mut s = hdr.seq.load(Ordering::Acquire);
        loop {
            if s & STAMP_POS_MASK != req {
                // Another position's stamp (never published, or long since
                // reused): nothing pending for `pos`.
                return Withdrawn::Done;
            }
            match s & STAMP_STATE_MASK {
                STAMP_REQUEST => {}
                STAMP_WRITING => return Withdrawn::Busy,
                _ => return Withdrawn::Done, // replied or cancelled
            }
            // AcqRel: a rare path; Release orders it after our claim of the
            // lane, Acquire before our later writes to the slot. Exactly one
            // of this CAS and the daemon's claim in `reply_in_place` wins.
            match hdr.seq.compare_exchange(s, STAMP_CANCELLED | req, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Withdrawn::Done,
                Err(now) => s = now,
            }
        }
    }

    /// Client: records that every reply before `pos` has been taken (a
    /// monitoring hint for `ChannelInfo`).
    #[inline]
    pub(crate) fn set_taken(&self, pos: u64) {
        // Relaxed: a statistic; nothing is ordered by it.
        self.ctl().producer.0.taken.store(pos, Ordering::Relaxed);
    }

    /// Replies published in place and not yet taken by the client (a
    /// monitoring snapshot: loads only, bounded by the capacity).
    pub(crate) fn untaken_replies(&self) -> u64 {
        // Relaxed: monitoring hints.
        let taken = self.ctl().producer.0.taken.load(Ordering::Relaxed);
        let tail = self.ctl().producer.0.tail.load(Ordering::Relaxed);
        let from = taken.max(tail.saturating_sub(self.capacity()));
        (from..tail).filter(|&p| self.replied(p)).count() as u64
    }
}
