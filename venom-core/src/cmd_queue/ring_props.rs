//! Property test of the ring against a `VecDeque` model (single thread):
//! random pushes of random lengths, pops, and producer take-overs with the
//! tail hint lagging one publication behind (a producer killed between its
//! stamp and its hint).

use std::collections::VecDeque;

use proptest::prelude::*;

use super::ring::{INLINE_LEN, OutMsg, RING_CTL_LEN, Ring, RingCtl, SLOT_LINE};
use crate::loom::sync::Ordering;

/// 128-aligned storage, as in a segment body.
#[repr(C, align(128))]
struct Block([u8; 128]);

#[derive(Clone, Debug)]
enum Op {
    Push(u8),
    Pop,
    TakeOver { lagging_hint: bool },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..=40).prop_map(Op::Push),
        3 => Just(Op::Pop),
        1 => any::<bool>().prop_map(|lagging_hint| Op::TakeOver { lagging_hint }),
    ]
}

proptest! {
    #[test]
    fn ring_matches_a_fifo_model(depth_log in 1u32..4, ops in proptest::collection::vec(op(), 1..200)) {
        let depth = 1usize << depth_log;
        let max_msg = 40;
        // Up to 40-byte messages: 32 inline, the rest in the overflow area.
        let ext_stride = (max_msg - INLINE_LEN).next_multiple_of(64);
        let len = RING_CTL_LEN + depth * (SLOT_LINE + ext_stride);
        let mut mem: Vec<Block> = (0..len.div_ceil(128)).map(|_| Block([0; 128])).collect();
        let base = mem.as_mut_ptr() as *mut u8;
        let ring = Ring {
            ctl: base as *const RingCtl,
            // SAFETY: inside `mem`.
            slots: unsafe { base.add(RING_CTL_LEN) },
            stride: SLOT_LINE,
            // SAFETY: inside `mem`, after the slot lines.
            ext: unsafe { base.add(RING_CTL_LEN + depth * SLOT_LINE) },
            ext_stride,
            mask: depth as u64 - 1,
            max_msg,
        };
        let (mut tail, mut cached_head, mut head) = (0u64, 0u64, 0u64);
        let mut model = VecDeque::new();
        let mut next = 0u64;
        for op in ops {
            match op {
                Op::Push(len) => {
                    let payload = vec![next as u8; len as usize];
                    let ok = ring.try_push(&mut tail, &mut cached_head, OutMsg::data(next, 1, &payload), || {});
                    prop_assert_eq!(ok, model.len() < depth);
                    if ok {
                        model.push_back((next, payload));
                        next += 1;
                    }
                }
                Op::Pop => {
                    let got = ring.peek(head);
                    prop_assert_eq!(got.is_some(), !model.is_empty());
                    if let Some(p) = got {
                        let (tag, payload) = model.pop_front().unwrap();
                        let mut buf = vec![0u8; p.len];
                        ring.read_payload(head, &mut buf);
                        prop_assert_eq!((p.tag, buf), (tag, payload));
                        head += 1;
                        ring.release_to(head);
                    }
                }
                Op::TakeOver { lagging_hint } => {
                    if lagging_hint && tail > 0 {
                        ring.ctl().tail.0.store(tail - 1, Ordering::Relaxed);
                    }
                    prop_assert_eq!(ring.recover_tail(), tail);
                    cached_head = ring.ctl().head.0.load(Ordering::Acquire);
                }
            }
        }
        drop(mem);
    }
}
