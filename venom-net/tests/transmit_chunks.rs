//! The zero-copy publisher output ([`PublisherSession::poll_transmit_chunks`])
//! is byte for byte the contiguous one ([`PublisherSession::poll_transmit`]):
//! snapshots, shared deltas, cut and merged deltas, digests, over random
//! writes (no sockets).

use std::time::{Duration, Instant};
use venom_net::proto::frame::Frame;
use venom_net::proto::transmit::Transmit;
use venom_net::*;

const SIZE: usize = 1 << 20;

/// A publisher session and its mirror.
struct Pair {
    publ: PublisherSession,
    mirror: MirrorSession,
    local: MemRegion,
}

impl Pair {
    fn new(sub: Subscription, pcfg: &PublisherConfig, epoch: u64) -> Pair {
        let mcfg = MirrorConfig { check_hash: true, ..Default::default() };
        let mut mirror = MirrorSession::new(mcfg, sub);
        mirror.connect();
        Pair { publ: PublisherSession::new(epoch, 1, 0, pcfg.clone()), mirror, local: MemRegion::new(SIZE, 64 << 10) }
    }

    fn deliver(&mut self, frames: &[u8], enc: &RegionEncoder, now: Now) {
        let mut rest = frames;
        while !rest.is_empty() {
            let (frame, n) = Frame::decode(rest).unwrap();
            self.mirror.handle_frame(&frame, &mut self.local, n, now).unwrap();
            rest = &rest[n..];
        }
        let mut back = Vec::new();
        while self.mirror.poll_transmit(&mut back) {}
        let mut rest = &back[..];
        while !rest.is_empty() {
            let (frame, n) = Frame::decode(rest).unwrap();
            self.publ.handle_frame(&frame, enc, n).unwrap();
            rest = &rest[n..];
        }
        self.mirror.poll_verify(&self.local, 1 << 20, now.mono).unwrap();
    }
}

fn run(sub: Subscription, frame_payload: usize) {
    let origin = MemRegion::new(SIZE, 64 << 10);
    let pcfg = PublisherConfig {
        frame_payload,
        hash_interval: Duration::ZERO,
        max_in_flight_updates: 2,
        ..Default::default()
    };
    let mut enc = RegionEncoder::from_region(7, &origin, pcfg.encoder(0)).unwrap();
    let (mut a, mut b) = (Pair::new(sub.clone(), &pcfg, 7), Pair::new(sub, &pcfg, 7));
    let t0 = Instant::now();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut frames = 0;
    for step in 0..60u64 {
        let now = Now { mono: t0 + Duration::from_millis(step), wall_ns: step };
        // Small scattered writes, and now and then a large one (several chunks).
        for _ in 0..1 + step % 5 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = if x % 7 == 0 { 200_000 } else { 1 + (x >> 40) as usize % 9000 };
            let off = (x >> 20) as usize % (SIZE - len);
            origin.write_at(off, &vec![(x >> 8) as u8; len]);
        }
        enc.step(&origin, step).unwrap();
        // Every third step the mirrors are behind by more than one delta (merged catch-up).
        let polls = if step % 3 == 0 { 4 } else { 200 };
        for _ in 0..polls {
            let (mut va, mut tb) = (Vec::new(), Transmit::new());
            let ra = a.publ.poll_transmit(&enc, now, &mut va).unwrap();
            let rb = b.publ.poll_transmit_chunks(&enc, now, &mut tb).unwrap();
            assert_eq!(ra, rb);
            let chunks = tb.take();
            assert_eq!(chunks.concat(), va, "step {step}: same bytes");
            frames += !va.is_empty() as u32;
            a.deliver(&va, &enc, now);
            b.deliver(&chunks.concat(), &enc, now);
            if !ra {
                break;
            }
        }
    }
    assert!(frames > 100, "{frames} frames");
    for p in [&a, &b] {
        let s = p.mirror.stats();
        assert_eq!(s.hash_mismatches, 0);
        assert!(s.hash_matches > 0, "{s:?}");
    }
    assert_eq!(a.local.to_vec(), b.local.to_vec());
}

#[test]
fn whole_region_chunks_equal_contiguous_frames() {
    run(Subscription::whole(), 100_000);
}

#[test]
fn ranges_chunks_equal_contiguous_frames() {
    let sub = Subscription::range(5000, 300_000, 0).with(Part::Range { src: 400_000, len: 500_000, dst: 300_000 });
    run(sub, 70_000);
}
