//! The consumer side: polls every lane round-robin.

use std::sync::Arc;
use std::time::Duration;

use super::ring::Ring;
use super::{Inner, WaitStrategy, wait_for};
use crate::channel::probes;
use crate::error::{Error, Result};
use crate::loom::sync::Ordering;
use crate::process::{Liveness, ProcessId};

/// Where a popped message came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message {
    /// The producer's lane.
    pub lane: usize,
    /// The producer's claim generation (compare with
    /// [`Consumer::lane_generation`] to tell a departed producer's leftovers).
    pub generation: u64,
    /// The tag the producer attached (0 for [`Producer::push`](super::Producer::push)).
    pub tag: u64,
    /// Payload length in bytes.
    pub len: usize,
}

/// The single consumer of a [`CmdQueue`](super::CmdQueue). Releases the
/// consumer role when dropped. `Send`, not `Sync`.
pub struct Consumer {
    q: Arc<Inner>,
    me: u64,
    rings: Vec<Ring>,
    /// Private copy of every lane's `head` (we are its only writer).
    heads: Vec<u64>,
    /// Lane to look at first on the next poll (round-robin fairness).
    cursor: usize,
    wait: WaitStrategy,
    corrupt: u64,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer").field("lanes", &self.rings.len()).field("wait", &self.wait).finish()
    }
}

impl Consumer {
    pub(crate) fn claim(q: Arc<Inner>) -> Result<Consumer> {
        let me = ProcessId::current().pack();
        let slot = &q.block.header().consumer;
        // Acquire: if we take over, we see the predecessor's head stores.
        let mut cur = slot.load(Ordering::Acquire);
        loop {
            if cur != 0 && ProcessId::packed_liveness(cur) == Liveness::Alive {
                return Err(Error::ConsumerBusy { pid: ProcessId::unpack(cur).pid });
            }
            // AcqRel: Acquire as above; Release publishes our claim.
            match slot.compare_exchange(cur, me, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        let rings: Vec<Ring> = (0..q.block.geo.lanes).map(|i| q.block.ring(i)).collect();
        // Acquire: pairs with a predecessor consumer's Release of `head`.
        let heads = rings.iter().map(|r| r.ctl().head.0.load(Ordering::Acquire)).collect();
        let wait = q.wait;
        Ok(Consumer { q, me, rings, heads, cursor: 0, wait, corrupt: 0 })
    }

    /// Changes how [`Consumer::pop`] waits.
    pub fn set_wait(&mut self, wait: WaitStrategy) {
        self.wait = wait;
    }

    /// How [`Consumer::pop`] waits.
    pub fn wait(&self) -> WaitStrategy {
        self.wait
    }

    /// The current claim generation of `lane`.
    pub fn lane_generation(&self, lane: usize) -> u64 {
        // Acquire: pairs with the claimer's AcqRel bump.
        // (`lane` past the end, impossible from a popped message, reads the
        // last lane rather than panicking.)
        self.q.block.lane(lane.min(self.rings.len() - 1)).generation.load(Ordering::Acquire)
    }

    /// Messages skipped because their header was invalid (a hostile or
    /// corrupted producer).
    pub fn corrupt_messages(&self) -> u64 {
        self.corrupt
    }

    /// Pops the next message, if any, copying its payload into `buf`
    /// (cleared first; grows to at most the queue's maximum message size).
    pub fn try_pop(&mut self, buf: &mut Vec<u8>) -> Result<Option<Message>> {
        probes::mark(probes::Point::DPoll);
        let max = self.q.block.geo.max_msg;
        // Relaxed: a hint of which lanes can hold messages (see
        // `QueueHeader::lanes_used`); each stamp is still read with Acquire.
        let used = self.q.block.header().lanes_used.load(Ordering::Relaxed);
        let lanes = usize::try_from(used).unwrap_or(usize::MAX).min(self.rings.len());
        if lanes == 0 {
            // A zero `lanes_used` may come from a truncated mapping's zero page.
            self.q.check_mapped()?;
            return Ok(None);
        }
        // Round-robin from the cursor, wrapping without a division (this
        // loop runs on every poll of a spinning consumer).
        let mut lane = if self.cursor < lanes { self.cursor } else { 0 };
        for _ in 0..lanes {
            let ring = self.rings[lane];
            let head = self.heads[lane];
            let this = lane;
            lane += 1;
            if lane == lanes {
                lane = 0;
            }
            let Some(p) = ring.peek(head) else { continue };
            probes::mark(probes::Point::DSeen);
            if p.len > max {
                // Skip a corrupt slot rather than trusting its length.
                self.corrupt += 1;
            } else {
                // Only the growth is zero-filled; read_payload overwrites all.
                buf.truncate(p.len);
                buf.resize(p.len, 0);
                ring.read_payload(head, buf);
            }
            self.heads[this] = head + 1;
            ring.release_to(head + 1);
            if p.len > max {
                continue;
            }
            self.cursor = lane;
            // The payload may be zeroes from a truncated mapping.
            self.q.check_mapped()?;
            probes::mark(probes::Point::DPopped);
            return Ok(Some(Message { lane: this, generation: p.generation, tag: p.tag, len: p.len }));
        }
        self.q.check_mapped()?;
        Ok(None)
    }

    /// Pops the next message, waiting up to `timeout` ([`Error::Timeout`]).
    pub fn pop(&mut self, buf: &mut Vec<u8>, timeout: Duration) -> Result<Message> {
        let q: *const Inner = &*self.q;
        // SAFETY (both derefs of `q`): `self.q` keeps the queue alive for the
        // whole call; a raw pointer avoids cloning the Arc on every pop.
        let doorbell = unsafe { (*q).block.doorbell() };
        wait_for(self.wait, doorbell, timeout, || self.try_pop(buf), || unsafe { (*q).probe_truncation() })
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        // Release: our head stores happen-before a successor's Acquire.
        let _ = self.q.block.header().consumer.compare_exchange(self.me, 0, Ordering::Release, Ordering::Relaxed);
    }
}
