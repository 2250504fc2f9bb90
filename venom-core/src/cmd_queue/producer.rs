//! The producer side: one claimed lane.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::ring::{OutMsg, Ring};
use super::{Inner, LIVENESS_INTERVAL};
use crate::error::{Error, Result};
use crate::loom::sync::Ordering;
use crate::process::{Liveness, ProcessId};

/// The producer of one lane of a [`CmdQueue`](super::CmdQueue). Releases the
/// lane when dropped. `Send`, not `Sync`: one thread pushes at a time.
pub struct Producer {
    q: Arc<Inner>,
    lane: usize,
    generation: u64,
    me: u64,
    ring: Ring,
    /// Next position to publish (authoritative while we own the lane).
    tail: u64,
    /// Last `head` we read; `tail - cached_head <= depth` always holds.
    cached_head: u64,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer").field("lane", &self.lane).field("generation", &self.generation).finish()
    }
}

impl Producer {
    /// Claims a free lane, or else the lane of a dead owner.
    pub(crate) fn claim(q: Arc<Inner>) -> Result<Producer> {
        let me = ProcessId::current().pack();
        let lanes = q.block.geo.lanes;
        // Pass 0 takes free lanes only (no /proc reads); pass 1 reclaims.
        for pass in 0..2 {
            for lane in 0..lanes {
                let ctl = q.block.lane(lane);
                // Acquire: if the lane is free or dead we inherit its rings.
                let cur = ctl.owner.load(Ordering::Acquire);
                let claimable = match pass {
                    0 => cur == 0,
                    _ => cur != 0 && ProcessId::packed_liveness(cur) == Liveness::Dead,
                };
                // AcqRel: Acquire pairs with the previous owner's Release on
                // drop (its pushes are complete); Release orders our claim
                // before the generation bump seen by the consumer.
                if claimable && ctl.owner.compare_exchange(cur, me, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                    // AcqRel: a total order of claims on this lane; the
                    // consumer reads it with Acquire to filter old messages.
                    let generation = ctl.generation.fetch_add(1, Ordering::AcqRel) + 1;
                    // Release: raised before our first push, so a consumer
                    // that sees our stamp (Acquire) and then re-reads the
                    // mark sees it too; a consumer that reads a stale mark
                    // only polls our lane one scan later (coherence makes the
                    // new value visible promptly).
                    q.block.header().lanes_used.fetch_max(lane as u64 + 1, Ordering::Release);
                    let ring = q.block.ring(lane);
                    let tail = ring.recover_tail();
                    // Acquire: pairs with the consumer's Release of `head`.
                    let cached_head = ring.ctl().head.0.load(Ordering::Acquire);
                    return Ok(Producer { q, lane, generation, me, ring, tail, cached_head });
                }
            }
        }
        Err(Error::TooManyClients { max: lanes })
    }

    /// The lane index (0-based, < `lanes`).
    pub fn lane(&self) -> usize {
        self.lane
    }

    /// This claim's generation (messages carry it).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Largest message accepted.
    pub fn max_msg_size(&self) -> usize {
        self.ring.max_msg
    }

    /// Pushes `msg` if the lane has room: [`Error::Full`] if not,
    /// [`Error::MessageTooLarge`] if `msg` exceeds the maximum.
    pub fn try_push(&mut self, msg: &[u8]) -> Result<()> {
        self.try_push_tagged(0, msg)
    }

    /// Pushes `msg`, waiting up to `timeout` for room. Fails with
    /// [`Error::Timeout`] if the lane stays full, or [`Error::DaemonGone`] if
    /// the registered consumer died while we waited.
    pub fn push(&mut self, msg: &[u8], timeout: Duration) -> Result<()> {
        self.push_tagged(0, msg, timeout)
    }

    pub(crate) fn try_push_tagged(&mut self, tag: u64, msg: &[u8]) -> Result<()> {
        if msg.len() > self.ring.max_msg {
            return Err(Error::MessageTooLarge { len: msg.len(), max: self.ring.max_msg });
        }
        let out = OutMsg::data(tag, self.generation, msg);
        let pushed = self.ring.try_push(&mut self.tail, &mut self.cached_head, out, super::mid_push_hook);
        // A truncated (zeroed) ring would accept the message into private
        // pages nobody reads: report it instead of success or Full.
        self.q.check_mapped()?;
        if !pushed {
            return Err(Error::Full);
        }
        self.q.block.doorbell().notify_one();
        Ok(())
    }

    pub(crate) fn push_tagged(&mut self, tag: u64, msg: &[u8], timeout: Duration) -> Result<()> {
        match self.try_push_tagged(tag, msg) {
            Err(Error::Full) => {}
            other => return other,
        }
        // The lane is full: the consumer is busy or gone. Back off (spin,
        // then sleep 20 µs doubling to 1 ms); this is the slow path, so no
        // futex traffic is added to the consumer's fast path for it.
        let start = Instant::now();
        let mut next_check = start + LIVENESS_INTERVAL;
        let mut nap = Duration::from_micros(20);
        for i in 0u32.. {
            match self.try_push_tagged(tag, msg) {
                Err(Error::Full) => {}
                other => return other,
            }
            let now = Instant::now();
            if now.duration_since(start) >= timeout {
                return Err(Error::Timeout(timeout));
            }
            if now >= next_check {
                next_check = now + LIVENESS_INTERVAL;
                // Acquire: a consistent read of the consumer's identity.
                let consumer = self.q.block.header().consumer.load(Ordering::Acquire);
                if consumer != 0 && ProcessId::packed_liveness(consumer) == Liveness::Dead {
                    return Err(Error::DaemonGone { pid: ProcessId::unpack(consumer).pid });
                }
            }
            if i < 64 {
                crate::loom::spin_hint();
            } else {
                std::thread::sleep(nap.min(timeout.saturating_sub(now.duration_since(start))));
                nap = (nap * 2).min(Duration::from_millis(1));
            }
        }
        Err(Error::Timeout(timeout))
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        // Release: our completed pushes happen-before the next claimer's
        // Acquire. A failed CAS means the lane was (wrongly) reclaimed while
        // we were alive; then it is no longer ours to release.
        let _ = self.q.block.lane(self.lane).owner.compare_exchange(self.me, 0, Ordering::Release, Ordering::Relaxed);
    }
}
