//! Loom models of the ring protocol (`scripts/loom.sh`): push/pop with a
//! full ring, producer take-over after a crash between stamp and tail hint,
//! and the channel's reply handoff across a client-slot reclaim.

use super::ring::*;
use crate::futex::EventCount;
use crate::loom::sync::{AtomicU64, Ordering};
use loom::sync::Arc;

/// A ring allocated on the heap with loom atomics.
#[repr(C)]
struct ModelSlot {
    hdr: SlotHeader,
    payload: [u64; 1],
}

struct Model {
    ctl: RingCtl,
    slots: Vec<ModelSlot>,
}

fn model(cap: usize) -> Arc<Model> {
    let ctl = RingCtl { tail: Line(AtomicU64::new(0)), head: Line(AtomicU64::new(0)), ready: Line(EventCount::new()) };
    let slots = (0..cap)
        .map(|_| ModelSlot {
            hdr: SlotHeader {
                seq: AtomicU64::new(0),
                tag: AtomicU64::new(0),
                generation: AtomicU64::new(0),
                meta: AtomicU64::new(0),
            },
            payload: [0],
        })
        .collect();
    Arc::new(Model { ctl, slots })
}

fn ring(m: &Model) -> Ring {
    Ring {
        ctl: &m.ctl,
        slots: m.slots.as_ptr() as *mut u8,
        stride: core::mem::size_of::<ModelSlot>(),
        // Messages of the models fit inline (max_msg 8): no overflow area.
        ext: core::ptr::null_mut(),
        ext_stride: 0,
        mask: m.slots.len() as u64 - 1,
        max_msg: 8,
    }
}

struct SendModel(Arc<Model>);
// SAFETY: test-only; the model is shared through atomics.
unsafe impl Send for SendModel {}

/// Producer pushes 3 tagged messages into a 2-slot ring (so it must wait
/// for the consumer to free a slot); the consumer sees them in order with
/// intact payloads, and never reads a slot the producer is rewriting.
#[test]
fn loom_ring_push_pop() {
    loom::model(|| {
        let m = model(2);
        let p = SendModel(m.clone());
        let producer = loom::thread::spawn(move || {
            let r = ring(&p.0);
            let (mut tail, mut head) = (0, 0);
            for i in 1..=3u64 {
                let bytes = (i * 0x0101_0101).to_ne_bytes();
                while !r.try_push(&mut tail, &mut head, OutMsg::data(i, 7, &bytes), || {}) {
                    loom::thread::yield_now();
                }
            }
        });
        let r = ring(&m);
        let mut head = 0u64;
        let mut got = 0;
        while got < 3 {
            if let Some(p) = r.peek(head) {
                let mut buf = [0u8; 8];
                r.read_payload(head, &mut buf);
                assert_eq!(p.tag, got + 1);
                assert_eq!(p.generation, 7);
                assert_eq!(u64::from_ne_bytes(buf), (got + 1) * 0x0101_0101);
                head += 1;
                r.release_to(head);
                got += 1;
            } else {
                loom::thread::yield_now();
            }
        }
        producer.join().unwrap();
    });
}

/// A producer that takes over after its predecessor published a stamp
/// but died before the tail hint: recover_tail must not reuse the slot.
#[test]
fn loom_ring_recover_tail() {
    loom::model(|| {
        let m = model(2);
        let r = ring(&m);
        let (mut tail, mut head) = (0, 0);
        assert!(r.try_push(&mut tail, &mut head, OutMsg::data(1, 1, b"a"), || {}));
        // Simulate the crash window: the hint lags behind the stamp.
        m.ctl.tail.0.store(0, Ordering::Relaxed);
        let c = SendModel(m.clone());
        let consumer = loom::thread::spawn(move || {
            let r = ring(&c.0);
            let mut head = 0;
            let mut tags = Vec::new();
            while tags.len() < 2 {
                if let Some(p) = r.peek(head) {
                    tags.push(p.tag);
                    head += 1;
                    r.release_to(head);
                } else {
                    loom::thread::yield_now();
                }
            }
            tags
        });
        let mut tail = r.recover_tail();
        assert_eq!(tail, 1);
        let mut cached = 0;
        while !r.try_push(&mut tail, &mut cached, OutMsg::data(2, 2, b"b"), || {}) {
            loom::thread::yield_now();
        }
        assert_eq!(consumer.join().unwrap(), vec![1, 2]);
    });
}

/// The reply handoff across a slot reclaim: the daemon checks the lane
/// generation and pushes a reply for the old client while a new client
/// bumps the generation and drains the ring. Whatever interleaving, at
/// most one stale reply survives the drain (the headroom the shell
/// reserves) and it carries the old generation, so the new client's
/// generation filter discards it.
#[test]
fn loom_ring_reply_handoff_across_reclaim() {
    loom::model(|| {
        let m = model(2);
        let generation = Arc::new(AtomicU64::new(1));
        let (d, g) = (SendModel(m.clone()), generation.clone());
        let daemon = loom::thread::spawn(move || {
            let r = ring(&d.0);
            let (mut tail, mut head) = (0, 0);
            // Acquire: as in DaemonChannel::send_reply.
            if g.load(Ordering::Acquire) == 1 {
                assert!(r.try_push(&mut tail, &mut head, OutMsg::data(9, 1, b"old"), || {}));
            }
        });
        let r = ring(&m);
        let mine = generation.fetch_add(1, Ordering::AcqRel) + 1;
        let mut head = r.drain();
        daemon.join().unwrap();
        let mut stale = 0;
        while let Some(p) = r.peek(head) {
            assert_ne!(p.generation, mine, "a reply for the old client carries the old generation");
            stale += 1;
            head += 1;
        }
        assert!(stale <= 1);
    });
}

/// `QueueHeader::lanes_used`: a producer raises the high-water mark before
/// its first push, so a consumer that has seen any message of lane 1 never
/// reads a mark that excludes lane 1 (it would skip the lane). The weakened
/// order (push first, then raise the mark) must fail.
fn lanes_used_model(mark_first: bool) {
    loom::model(move || {
        let m = model(2);
        let used = Arc::new(AtomicU64::new(1)); // lane 0 already claimed
        let (p, u) = (SendModel(m.clone()), used.clone());
        let producer = loom::thread::spawn(move || {
            let r = ring(&p.0);
            let (mut tail, mut head) = (0, 0);
            if mark_first {
                // Release: as in Producer::claim.
                u.fetch_max(2, Ordering::Release);
            }
            assert!(r.try_push(&mut tail, &mut head, OutMsg::data(1, 1, b"x"), || {}));
            if !mark_first {
                u.fetch_max(2, Ordering::Release);
            }
        });
        let r = ring(&m);
        if r.published(0) {
            // Relaxed: as in Consumer::try_pop.
            assert!(used.load(Ordering::Relaxed) >= 2, "lane skipped by the consumer");
        }
        producer.join().unwrap();
    });
}

#[test]
fn loom_lanes_used_covers_every_published_lane() {
    lanes_used_model(true);
}

#[test]
#[should_panic(expected = "lane skipped")]
fn loom_lanes_used_raised_late_skips_a_lane() {
    lanes_used_model(false);
}
