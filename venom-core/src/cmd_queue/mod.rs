//! A bounded multi-producer, single-consumer queue of variable-length byte
//! messages in shared memory, safe against producers killed at any point.
//!
//! Design (the iceoryx2 approach, see `ipc-prior-art.md` §3): the queue is a
//! set of **lanes**, one per producer, each a bounded SPSC ring of
//! fixed-stride slots (the internal `ring` module: a Lamport ring with
//! per-slot publication stamps and rigtorp's cached indices). A producer
//! claims a free lane with a CAS of its packed
//! [`ProcessId`](crate::ProcessId); the consumer polls the lanes round-robin
//! and sleeps on one shared futex [`EventCount`](crate::futex::EventCount)
//! doorbell.
//!
//! Why not one Vyukov MPMC array: a producer that dies between claiming a
//! ticket and publishing it blocks that slot, and everything behind it, for
//! ever (the reason heapless deprecated its `mpmc`). With one ring per
//! producer a dead producer can only ever block its own lane:
//! * killed mid-push, it leaves nothing visible (its stamp store is the
//!   commit point), so the consumer and the other producers carry on;
//! * its lane is reclaimed by the next [`CmdQueue::producer`] call, which
//!   finds the owner dead, CASes the lane to itself and bumps the lane's
//!   generation;
//! * messages it completed before dying are still delivered, tagged with its
//!   generation, so a consumer can tell them from the new owner's.
//!
//! Guarantees: bounded (`lanes × depth` messages), FIFO per producer,
//! round-robin fair across producers, every completed push delivered exactly
//! once — except that a consumer killed between copying a message and
//! releasing its slot makes its successor see that one message again.
//! A push into a full lane fails with [`Error::Full`] or waits with a
//! timeout; nothing spins without bound.
//!
//! Memory: `256 + lanes × (128 + 384 + depth × (64 + round_up(max_msg - 32,
//! 64)))` bytes, e.g. 16 lanes × 32 slots × 4 KiB ≈ 2.2 MB (pages are
//! touched as rings advance). A message of up to 32 bytes travels in one
//! cache line together with its publication stamp.
//!
//! ```
//! use venom_core::cmd_queue::{CmdQueue, QueueConfig};
//! use std::time::Duration;
//! let name = format!("doc-queue-{}", std::process::id());
//! let queue = CmdQueue::create(&name, QueueConfig { lanes: 4, ..Default::default() })?;
//! let mut consumer = queue.consumer()?;
//! let mut producer = CmdQueue::open(&name)?.producer()?;
//! producer.push(b"hello", Duration::from_secs(1))?;
//! let mut buf = Vec::new();
//! let msg = consumer.pop(&mut buf, Duration::from_secs(1))?;
//! assert_eq!(&buf[..], b"hello");
//! assert_eq!(msg.lane, producer.lane());
//! queue.unlink()?;
//! # Ok::<(), venom_core::Error>(())
//! ```

mod consumer;
mod layout;
#[cfg(all(test, loom))]
mod loom_models;
mod producer;
pub(crate) mod ring;
#[cfg(all(test, not(loom)))]
mod ring_props;
mod wait;

use std::sync::Arc;

pub use consumer::{Consumer, Message};
pub use layout::{MAX_DEPTH, MAX_LANES, MAX_MSG_SIZE};
pub use producer::Producer;
pub use wait::{LIVENESS_INTERVAL, SPIN_BUDGET, WaitStrategy};

pub(crate) use layout::{Block, Geometry};
pub(crate) use wait::wait_for;

use crate::error::{Error, Result};
use crate::header::SegmentKind;
use crate::segment::Segment;

/// Default largest message, in bytes.
pub const DEFAULT_MAX_MSG_SIZE: usize = 4096;

/// One lane of a queue as seen by [`CmdQueue::lane_stats`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaneStats {
    /// Lane (client slot) index.
    pub lane: usize,
    /// The producer owning the lane (start time truncated to 32 bits), if any.
    pub owner: Option<crate::ProcessId>,
    /// Whether that owner is alive.
    pub owner_alive: bool,
    /// Claim generation (bumped on every claim).
    pub generation: u64,
    /// Messages published and not yet consumed.
    pub queued: u64,
}

/// Shape of a command queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueConfig {
    /// Number of producer lanes (the most producers attached at once).
    pub lanes: usize,
    /// Messages each lane holds (rounded up to a power of two, ≥ 2).
    pub depth: usize,
    /// Largest message in bytes (default 4 KiB, up to [`MAX_MSG_SIZE`]).
    pub max_msg_size: usize,
    /// How the consumer waits ([`Consumer::pop`]) .
    pub wait: WaitStrategy,
    /// Permission bits of the segment (default 0600).
    pub mode: u32,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            lanes: 16,
            depth: 32,
            max_msg_size: DEFAULT_MAX_MSG_SIZE,
            wait: WaitStrategy::default(),
            mode: crate::segment::DEFAULT_MODE,
        }
    }
}

/// What keeps the queue's memory mapped.
enum Backing {
    /// A segment of our own, or the channel segment that embeds the queue.
    Segment(Arc<Segment>),
    /// Caller-provided memory ([`CmdQueue::attach`]).
    Foreign,
}

pub(crate) struct Inner {
    pub(crate) block: Block,
    pub(crate) name: String,
    pub(crate) wait: WaitStrategy,
    backing: Backing,
}

impl Inner {
    /// [`Error::Truncated`] if the backing segment was truncated under us
    /// (see [`crate::truncation`]); caller-provided memory is not tracked.
    #[inline]
    pub(crate) fn check_mapped(&self) -> Result<()> {
        match &self.backing {
            Backing::Segment(seg) => seg.check_mapped(),
            Backing::Foreign => Ok(()),
        }
    }

    /// [`Segment::probe_truncation`]: for the liveness checks of waits.
    pub(crate) fn probe_truncation(&self) -> Result<()> {
        match &self.backing {
            Backing::Segment(seg) => seg.probe_truncation(),
            Backing::Foreign => Ok(()),
        }
    }
}

// SAFETY: `block.base` points into memory kept alive by `backing` (or by the
// caller of `attach`); every access through it is atomic.
unsafe impl Send for Inner {}
// SAFETY: see `Send`.
unsafe impl Sync for Inner {}

/// A handle to a command queue; cheap to clone. Obtain a [`Producer`] or the
/// [`Consumer`] from it.
#[derive(Clone)]
pub struct CmdQueue {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for CmdQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CmdQueue").field("name", &self.inner.name).field("geometry", &self.inner.block.geo).finish()
    }
}

impl CmdQueue {
    /// Creates a queue in its own segment (kind `RAW`, validated by the
    /// queue's own magic). Fails with [`Error::AlreadyExists`] if a live
    /// process owns `name`.
    pub fn create(name: &str, cfg: QueueConfig) -> Result<CmdQueue> {
        let len = CmdQueue::layout_len(&cfg)?;
        let seg = Segment::builder(name, SegmentKind::RAW)
            .body_len(len)
            .mode(cfg.mode)
            // SAFETY: the body is unpublished, 128-aligned, `len` bytes.
            .create_with(|seg| unsafe { CmdQueue::init_at(seg.body_ptr(), seg.body_len(), &cfg) })?;
        CmdQueue::from_segment(Arc::new(seg), 0, cfg.wait)
    }

    /// Opens a queue created by [`CmdQueue::create`].
    pub fn open(name: &str) -> Result<CmdQueue> {
        let seg = Arc::new(Segment::open(name, SegmentKind::RAW)?);
        CmdQueue::from_segment(seg, 0, WaitStrategy::default())
    }

    /// Bytes a queue of `cfg` needs ([`CmdQueue::init_at`]).
    pub fn layout_len(cfg: &QueueConfig) -> Result<usize> {
        Ok(Geometry::new(cfg.lanes, cfg.depth, cfg.max_msg_size)?.total_len())
    }

    /// Initialises a queue in caller-provided memory (for example part of a
    /// larger segment body).
    ///
    /// # Safety
    /// `ptr` must be 128-byte aligned, valid for `len` bytes, **zeroed**, and
    /// not yet visible to any other thread or process; publish it afterwards
    /// with a Release store (or a segment's READY flag).
    pub unsafe fn init_at(ptr: *mut u8, len: usize, cfg: &QueueConfig) -> Result<()> {
        let geo = Geometry::new(cfg.lanes, cfg.depth, cfg.max_msg_size)?;
        if ptr.align_offset(128) != 0 || geo.total_len() > len {
            return Err(Error::InvalidConfig(format!("queue needs {} 128-aligned bytes", geo.total_len())));
        }
        Block { base: ptr, geo }.init();
        Ok(())
    }

    /// Attaches to a queue initialised with [`CmdQueue::init_at`].
    ///
    /// # Safety
    /// `ptr..ptr + len` must stay mapped for as long as the returned queue or
    /// any producer/consumer made from it lives, and be accessed by others
    /// only through this module.
    pub unsafe fn attach(ptr: *mut u8, len: usize) -> Result<CmdQueue> {
        // SAFETY: forwarded caller contract.
        let block = unsafe { Block::attach(ptr, len, "<memory>")? };
        Ok(CmdQueue {
            inner: Arc::new(Inner {
                block,
                name: "<memory>".to_owned(),
                wait: WaitStrategy::default(),
                backing: Backing::Foreign,
            }),
        })
    }

    /// A queue embedded at `offset` of a segment body (used by channels).
    pub(crate) fn from_segment(seg: Arc<Segment>, offset: usize, wait: WaitStrategy) -> Result<CmdQueue> {
        if offset > seg.body_len() {
            return Err(Error::corrupt(seg.name(), "queue offset outside the segment"));
        }
        // SAFETY: the range lies in the body (checked), which `seg` keeps
        // mapped; the Arc is stored in the queue.
        let block = unsafe { Block::attach(seg.body_ptr().add(offset), seg.body_len() - offset, seg.name())? };
        let name = seg.name().to_owned();
        Ok(CmdQueue { inner: Arc::new(Inner { block, name, wait, backing: Backing::Segment(seg) }) })
    }

    /// Claims a free lane (or the lane of a dead producer) and returns its
    /// producer. Fails with [`Error::TooManyClients`] when every lane has a
    /// live owner.
    pub fn producer(&self) -> Result<Producer> {
        Producer::claim(self.inner.clone())
    }

    /// Becomes the queue's single consumer (if there is none, or the
    /// registered one is dead). Fails with [`Error::ConsumerBusy`] when a
    /// live consumer exists.
    pub fn consumer(&self) -> Result<Consumer> {
        Consumer::claim(self.inner.clone())
    }

    /// The number of lanes.
    pub fn lanes(&self) -> usize {
        self.inner.block.geo.lanes
    }

    /// Messages per lane (after rounding to a power of two).
    pub fn depth(&self) -> usize {
        self.inner.block.geo.depth
    }

    /// The largest message accepted.
    pub fn max_msg_size(&self) -> usize {
        self.inner.block.geo.max_msg
    }

    /// Lanes currently owned by a producer that is alive.
    pub fn live_producers(&self) -> usize {
        (0..self.lanes())
            .filter(|&i| {
                // Relaxed: a snapshot for monitoring.
                let owner = self.inner.block.lane(i).owner.load(crate::loom::sync::Ordering::Relaxed);
                owner != 0 && crate::ProcessId::packed_liveness(owner) == crate::Liveness::Alive
            })
            .count()
    }

    /// A read-only snapshot of every lane: owner, liveness, claim
    /// generation and queued messages. Does not claim anything.
    pub fn lane_stats(&self) -> Vec<LaneStats> {
        let block = &self.inner.block;
        (0..self.lanes())
            .map(|i| {
                let lane = block.lane(i);
                // Acquire: pairs with the claiming CAS, so the generation we
                // read is at least the claim's.
                let owner = lane.owner.load(crate::loom::sync::Ordering::Acquire);
                LaneStats {
                    lane: i,
                    owner: (owner != 0).then(|| crate::ProcessId::unpack(owner)),
                    owner_alive: owner != 0 && crate::ProcessId::packed_liveness(owner) == crate::Liveness::Alive,
                    // Relaxed: a monitoring snapshot.
                    generation: lane.generation.load(crate::loom::sync::Ordering::Relaxed),
                    queued: block.ring(i).pending(),
                }
            })
            .collect()
    }

    /// The registered consumer, if any, and whether it is alive.
    pub fn consumer_process(&self) -> Option<(crate::ProcessId, bool)> {
        // Acquire: pairs with the consumer's claiming CAS.
        let c = self.inner.block.header().consumer.load(crate::loom::sync::Ordering::Acquire);
        (c != 0).then(|| (crate::ProcessId::unpack(c), crate::ProcessId::packed_liveness(c) == crate::Liveness::Alive))
    }

    /// Unlinks the queue's segment name (no-op for caller memory).
    pub fn unlink(&self) -> Result<()> {
        match &self.inner.backing {
            Backing::Segment(seg) => seg.unlink(),
            Backing::Foreign => Ok(()),
        }
    }
}

#[cfg(feature = "testkit")]
static MID_PUSH_HOOK: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Test hook (feature `testkit`): `hook` runs inside every push of this
/// process after the payload is written and before the message is committed,
/// so a test can SIGKILL a producer exactly there.
#[cfg(feature = "testkit")]
#[doc(hidden)]
pub fn set_mid_push_hook(hook: fn()) {
    MID_PUSH_HOOK.store(hook as usize, std::sync::atomic::Ordering::SeqCst);
}

#[inline]
pub(crate) fn mid_push_hook() {
    #[cfg(feature = "testkit")]
    {
        let h = MID_PUSH_HOOK.load(std::sync::atomic::Ordering::Relaxed);
        if h != 0 {
            // SAFETY: only `set_mid_push_hook` stores non-zero values, and it
            // stores a valid `fn()`.
            let f: fn() = unsafe { std::mem::transmute::<usize, fn()>(h) };
            f();
        }
    }
}
