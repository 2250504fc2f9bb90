//! A bounded single-producer/single-consumer ring of message slots in
//! shared memory: the building block of the command queue (one
//! request ring per client) and of channel replies (one reply ring per
//! client).
//!
//! Algorithm: a Lamport SPSC ring with the publication moved into the slot,
//! in the style of rigtorp's `SPSCQueue` with per-slot stamps:
//! * the producer fills slot `pos % cap` (header fields and payload, all
//!   relaxed atomic stores) and then publishes it by storing the **stamp**
//!   `pos + 1` with `Release`;
//! * the consumer at position `head` polls the stamp of slot `head % cap`
//!   with `Acquire`; when it equals `head + 1` the message is complete, it
//!   copies it out and stores `head + 1` into the shared `head` with
//!   `Release`, which frees the slot;
//! * the producer reads the shared `head` (`Acquire`) only when its cached
//!   copy says the ring is full (rigtorp's cached-index trick), so in the
//!   common case a message costs one cache-line transfer each way.
//!
//! Layout: each slot is one 64-byte **slot line** (the 32-byte header with
//! the stamp, then the first [`INLINE_LEN`] payload bytes), and the slot
//! lines of a ring are contiguous (a 64-slot ring's lines fill one 4 KiB
//! page). Payload bytes past the inline part go to the slot's **overflow**
//! area, a separate array with a stride of `max_msg - INLINE_LEN` rounded
//! up to 64. So a message of up to 32 bytes moves as exactly one cache
//! line, publication stamp included, and a ring sized for 4 KiB messages
//! cycles through 64 adjacent lines (one TLB entry) instead of 64 lines
//! 4 KiB apart (64 TLB entries, which showed in the p99).
//!
//! Crash behaviour: a producer killed before its stamp store leaves nothing
//! visible (the slot is simply overwritten by the next producer); the stamp
//! store is the single atomic commit point. A producer killed after the stamp
//! but before updating the `tail` hint is handled by [`Ring::recover_tail`],
//! which walks forward over published stamps.

use crate::atomic_copy;
use crate::futex::EventCount;
use crate::loom::sync::{AtomicU64, Ordering};

/// Bytes of [`SlotHeader`] at the start of every slot; the payload follows.
pub(crate) const SLOT_HEADER_LEN: usize = 32;
/// Bytes of a slot line: header plus inline payload.
pub(crate) const SLOT_LINE: usize = 64;
/// Payload bytes stored in the slot line, next to the stamp.
pub(crate) const INLINE_LEN: usize = SLOT_LINE - SLOT_HEADER_LEN;

/// Reply status: the payload is the reply.
pub(crate) const STATUS_OK: u32 = 0;
/// Reply status: the handler's reply was larger than the channel's maximum;
/// `len` holds the attempted length and there is no payload.
pub(crate) const STATUS_TOO_LARGE: u32 = 1;
/// Reply status: the daemon dropped the command without answering it.
pub(crate) const STATUS_UNANSWERED: u32 = 2;

/// Cache-line padding. 128 bytes rather than 64 because x86_64's adjacent
/// line prefetcher pulls lines in pairs (the same choice and reasoning as
/// crossbeam's `CachePadded`).
#[repr(C, align(128))]
pub(crate) struct Line<T>(pub(crate) T);

/// The header at the start of each slot.
#[repr(C)]
pub(crate) struct SlotHeader {
    /// Publication stamp: `pos + 1` once the message for ring position
    /// `pos` is complete. Written only by the producer, `Release`.
    pub(crate) seq: AtomicU64,
    /// Caller's tag (the request id for channels).
    pub(crate) tag: AtomicU64,
    /// The sender's lane generation.
    pub(crate) generation: AtomicU64,
    /// Payload length (low 32 bits) and status (high 32 bits).
    pub(crate) meta: AtomicU64,
}

/// Control block of one ring: three cache lines.
#[repr(C)]
pub(crate) struct RingCtl {
    /// Next position the producer will publish. A hint for a producer that
    /// takes over the ring (the stamps are authoritative). Producer-written.
    pub(crate) tail: Line<AtomicU64>,
    /// Next position the consumer will read; every slot before it is free.
    /// Consumer-written, `Release`.
    pub(crate) head: Line<AtomicU64>,
    /// Where a consumer of this ring alone sleeps (channel reply rings).
    pub(crate) ready: Line<EventCount>,
}

/// Bytes of [`RingCtl`].
pub(crate) const RING_CTL_LEN: usize = 3 * 128;
const _: () = assert!(core::mem::size_of::<RingCtl>() == RING_CTL_LEN || cfg!(loom));
const _: () = assert!(core::mem::size_of::<SlotHeader>() == SLOT_HEADER_LEN || cfg!(loom));

/// What the consumer learns from a published slot before copying it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Peeked {
    pub(crate) tag: u64,
    pub(crate) generation: u64,
    pub(crate) len: usize,
    pub(crate) status: u32,
}

/// A view of one ring: its control block, `cap` slot lines of `stride`
/// bytes and `cap` overflow areas of `ext_stride` bytes.
///
/// Invariants (established by the queue/channel layout code):
/// * `ctl`, `slots .. slots + cap * stride` and `ext .. ext + cap *
///   ext_stride` lie in one live mapping;
/// * `slots` and `stride` are multiples of 8 (slot headers are aligned),
///   `stride > SLOT_HEADER_LEN`;
/// * `cap` is a power of two, `mask == cap - 1`;
/// * `max_msg <= (stride - SLOT_HEADER_LEN) + ext_stride` (the inline part
///   plus the overflow area hold the largest message).
#[derive(Clone, Copy)]
pub(crate) struct Ring {
    pub(crate) ctl: *const RingCtl,
    pub(crate) slots: *mut u8,
    pub(crate) stride: usize,
    pub(crate) ext: *mut u8,
    pub(crate) ext_stride: usize,
    pub(crate) mask: u64,
    pub(crate) max_msg: usize,
}

// SAFETY: a `Ring` is a view that owns nothing: whoever holds one keeps its
// mapping alive (the invariant above), which is the same condition on any
// thread, and every access through it is atomic. This one argument makes
// the handles built on rings (producer, consumer, shell, daemon) `Send`.
unsafe impl Send for Ring {}

#[cfg(not(loom))]
const _: () = {
    const fn send<T: Send>() {}
    send::<crate::cmd_queue::Producer>();
    send::<crate::cmd_queue::Consumer>();
    send::<crate::channel::ShellChannel>();
    send::<crate::channel::DaemonChannel>();
};

impl Ring {
    pub(crate) fn ctl(&self) -> &RingCtl {
        // SAFETY: struct invariant: `ctl` points into a live mapping (or a
        // loom model's allocation) and atomics accept any bit pattern.
        unsafe { &*self.ctl }
    }

    pub(crate) fn capacity(&self) -> u64 {
        self.mask + 1
    }

    /// Header, inline payload and overflow pointers of the slot for `pos`.
    #[inline]
    fn slot(&self, pos: u64) -> (&SlotHeader, *mut u8, *mut u8) {
        let index = (pos & self.mask) as usize;
        // SAFETY: index < cap, so the slot line and the overflow area lie
        // inside the ring (struct invariant); the header is 8-aligned, and
        // atomics accept any bits.
        unsafe {
            let p = self.slots.add(index * self.stride);
            (&*(p as *const SlotHeader), p.add(SLOT_HEADER_LEN), self.ext.add(index * self.ext_stride))
        }
    }

    /// Payload bytes that fit in a slot line.
    #[inline]
    fn inline_len(&self) -> usize {
        self.stride - SLOT_HEADER_LEN
    }

    /// Producer: publishes one message if there is room. `cached_head` is the
    /// producer's private copy of `head`; `tail` its private next position.
    /// Returns `false` when the ring is full. `payload.len() <= max_msg` and
    /// `len_field` (the length stored in the header) are the caller's
    /// business. `mid_push` runs after the payload is written and before the
    /// commit (a test hook).
    pub(crate) fn try_push(
        &self,
        tail: &mut u64,
        cached_head: &mut u64,
        msg: OutMsg<'_>,
        mid_push: impl FnOnce(),
    ) -> bool {
        let t = *tail;
        if t.wrapping_sub(*cached_head) >= self.capacity() {
            // Acquire: pairs with the consumer's Release store of `head`, so
            // its reads of the slot we are about to reuse happened before our
            // writes below.
            *cached_head = self.ctl().head.0.load(Ordering::Acquire);
            if t.wrapping_sub(*cached_head) >= self.capacity() {
                return false;
            }
        }
        debug_assert!(msg.payload.len() <= self.max_msg);
        let (hdr, inline, ext) = self.slot(t);
        // Relaxed: these stores are published by the Release stamp below.
        hdr.tag.store(msg.tag, Ordering::Relaxed);
        hdr.generation.store(msg.generation, Ordering::Relaxed);
        hdr.meta.store(u64::from(msg.len_field) | (u64::from(msg.status) << 32), Ordering::Relaxed);
        let (head_part, rest) = msg.payload.split_at(msg.payload.len().min(self.inline_len()));
        // SAFETY: the inline part holds inline_len() bytes and the overflow
        // area the rest of max_msg >= payload.len() (struct invariant);
        // atomic_copy accesses are atomic.
        unsafe {
            atomic_copy::store(inline, head_part);
            if !rest.is_empty() {
                atomic_copy::store(ext, rest);
            }
        }
        mid_push();
        // Release: the commit point; makes the header and payload visible to
        // a consumer that reads this stamp with Acquire.
        hdr.seq.store(t + 1, Ordering::Release);
        crate::channel::probes::mark(crate::channel::probes::Point::Stamped);
        *tail = t + 1;
        // Relaxed: only a hint for a producer taking over (see recover_tail).
        self.ctl().tail.0.store(t + 1, Ordering::Relaxed);
        true
    }

    /// Consumer: whether the message at `head` is published: one Acquire
    /// load of the slot's stamp, which shares its cache line with the
    /// header and the first 32 payload bytes (the fast-path check).
    #[inline]
    pub(crate) fn published(&self, head: u64) -> bool {
        // Acquire: as in `peek`.
        self.slot(head).0.seq.load(Ordering::Acquire) == head + 1
    }

    /// Consumer: the message at `head`, if it is published.
    pub(crate) fn peek(&self, head: u64) -> Option<Peeked> {
        let (hdr, _, _) = self.slot(head);
        // Acquire: pairs with the producer's Release stamp store; the header
        // and payload loads below see the producer's writes.
        if hdr.seq.load(Ordering::Acquire) != head + 1 {
            return None;
        }
        // Relaxed: ordered after the Acquire above.
        let meta = hdr.meta.load(Ordering::Relaxed);
        Some(Peeked {
            tag: hdr.tag.load(Ordering::Relaxed),
            generation: hdr.generation.load(Ordering::Relaxed),
            len: (meta & 0xFFFF_FFFF) as usize,
            status: (meta >> 32) as u32,
        })
    }

    /// Consumer: copies the payload of the peeked message at `head` into
    /// `buf` (`buf.len() <= max_msg`, checked by the caller).
    pub(crate) fn read_payload(&self, head: u64, buf: &mut [u8]) {
        let (_, inline, ext) = self.slot(head);
        let n = buf.len().min(self.max_msg);
        let (head_part, rest) = buf[..n].split_at_mut(n.min(self.inline_len()));
        // SAFETY: inline part and overflow area together hold max_msg >= n
        // bytes (struct invariant); atomic loads only.
        unsafe {
            atomic_copy::load(inline, head_part);
            if !rest.is_empty() {
                atomic_copy::load(ext, rest);
            }
        }
    }

    /// Consumer: frees every slot before `new_head`.
    pub(crate) fn release_to(&self, new_head: u64) {
        // Release: our reads of the consumed slots happen-before a producer
        // that Acquire-loads this value and overwrites them.
        self.ctl().head.0.store(new_head, Ordering::Release);
    }

    /// Producer taking over the ring (a dead or departed predecessor): the
    /// next free position. Starts from the `tail` hint and skips positions
    /// whose stamps show they were published (a predecessor killed between
    /// its stamp and its hint store). Bounded by the capacity.
    pub(crate) fn recover_tail(&self) -> u64 {
        // Acquire: see the predecessor's stamps that precede its hint.
        let mut t = self.ctl().tail.0.load(Ordering::Acquire);
        for _ in 0..=self.capacity() {
            // Acquire: as in `peek`.
            if self.slot(t).0.seq.load(Ordering::Acquire) == t + 1 {
                t += 1;
            } else {
                break;
            }
        }
        t
    }

    /// Messages published and not yet consumed, counted from `head` over
    /// the publication stamps (exact even when the producer's `tail` hint
    /// lags). A monitoring snapshot: only loads, bounded by the capacity.
    pub(crate) fn pending(&self) -> u64 {
        // Acquire: pairs with the consumer's Release of `head`.
        let head = self.ctl().head.0.load(Ordering::Acquire);
        let mut n = 0;
        while n < self.capacity() {
            // Acquire: as in `peek`.
            if self.slot(head + n).0.seq.load(Ordering::Acquire) != head + n + 1 {
                break;
            }
            n += 1;
        }
        n
    }

    /// Consumer taking over the ring: discards every published message and
    /// returns the new head.
    pub(crate) fn drain(&self) -> u64 {
        // Acquire: pairs with the previous consumer's Release of `head`.
        let mut h = self.ctl().head.0.load(Ordering::Acquire);
        for _ in 0..=self.capacity() {
            if self.peek(h).is_none() {
                break;
            }
            h += 1;
        }
        self.release_to(h);
        h
    }
}

/// A message to push.
#[derive(Clone, Copy)]
pub(crate) struct OutMsg<'a> {
    pub(crate) tag: u64,
    pub(crate) generation: u64,
    pub(crate) status: u32,
    pub(crate) len_field: u32,
    pub(crate) payload: &'a [u8],
}

impl<'a> OutMsg<'a> {
    /// An ordinary message: status OK, length = payload length.
    pub(crate) fn data(tag: u64, generation: u64, payload: &'a [u8]) -> Self {
        OutMsg { tag, generation, status: STATUS_OK, len_field: payload.len() as u32, payload }
    }
}
