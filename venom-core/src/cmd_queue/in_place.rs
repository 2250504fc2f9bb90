//! In-place replies: a channel's daemon answers a request in the request's
//! own ring slot, so a small request and its reply each move one cache line
//! (stamp, header and up to 32 payload bytes share it) and no reply ring
//! exists. No locked read-modify-write on the hot path.
//!
//! Life cycle of the stamp of the slot of position `pos` (low bits
//! `pos + 1`, state in the top bits, see [`ring`](super::ring)):
//! ```text
//! client: Release store --> REQUEST --daemon: Release store--> REPLIED
//! ```
//! **Ownership, not claims.** A slot whose stamp is `REQUEST | pos + 1`
//! belongs to the daemon: nobody else writes it until the daemon's Release
//! store of `REPLIED | pos + 1`, which hands it back. Any other stamp
//! belongs to the lane's client. So the daemon writes a reply with plain
//! (relaxed atomic) stores and one Release store of the stamp, and the
//! client it hands the line back to sees one line change hands per hop.
//! (The previous design claimed the slot with a CAS so that a client
//! taking over the lane could cancel requests; the locked CAS plus the
//! extra state store made the polled line move more than once per reply,
//! ~10 % slower than a separate reply ring.)
//!
//! * The daemon answers **every** request it pops, exactly once: the
//!   handler's reply, or, for a request whose sender's generation is no
//!   longer the lane's (a dead or departed predecessor), an
//!   `UNANSWERED` status that nobody reads. That reply is what hands the
//!   slot back.
//! * The client reuses the slot (for `pos + depth`) only once the reply to
//!   `pos` is there (REPLIED) and taken or abandoned: a slot is held until
//!   answered, so a reply always lands in the request it answers.
//! * A client that takes over a lane adopts its predecessor's last `depth`
//!   positions: a position still `REQUEST | pos + 1` is held (as an
//!   abandoned request of its own) until the daemon's reply hands it back;
//!   its own positions start past all of them, so a stale reply never
//!   matches its own position. There is no window in which the daemon and
//!   a client write the same slot, hence no CAS, at the price that a
//!   daemon holding a dead client's command delays the reuse of that one
//!   slot until it answers or drops the command.

use super::ring::{Peeked, Ring, STAMP_REPLIED};
use crate::loom::sync::Ordering;

impl Ring {
    /// Daemon: answers the request at `pos` in its own slot (status,
    /// length word and payload), then publishes the reply stamp, which
    /// hands the slot back to the client. The caller must have popped the
    /// request at `pos` and not answered it yet (the slot is the daemon's).
    pub(crate) fn reply_in_place(&self, pos: u64, status: u32, len_field: u32, payload: &[u8]) {
        let (hdr, _, _) = self.slot(pos);
        // The slot is ours (stamp REQUEST | pos + 1, see the module docs):
        // plain relaxed stores, published by the stamp below.
        self.fill_body(pos, status, len_field, payload);
        // Release: publishes the reply, and our earlier reads of the
        // request, to the client's Acquire load of the stamp; after it the
        // slot is the client's again.
        hdr.seq.store(STAMP_REPLIED | (pos + 1), Ordering::Release);
    }

    /// Client: whether the reply to `pos` is in its slot (one Acquire load
    /// of a line that also holds the header and a small reply: the
    /// fast-path check).
    #[inline]
    pub(crate) fn replied(&self, pos: u64) -> bool {
        self.stamp(pos) == STAMP_REPLIED | (pos + 1)
    }

    /// Client taking over a lane: whether the daemon still owns the slot
    /// for the predecessor's position `pos` (its request is published and
    /// unanswered), so the slot must be held until the reply hands it back.
    pub(crate) fn awaiting_reply(&self, pos: u64) -> bool {
        // Acquire: if it is answered, the daemon's stores into the slot
        // happen-before our later reuse of it.
        self.stamp(pos) == pos + 1
    }

    /// Client: the header of the reply to `pos`, if it is there. The
    /// payload is read with [`Ring::read_payload`].
    #[inline]
    pub(crate) fn reply(&self, pos: u64) -> Option<Peeked> {
        // `replied` loads the stamp with Acquire: pairs with the Release in
        // `reply_in_place`, so the header loads see the reply's stores.
        self.replied(pos).then(|| self.header(pos))
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
