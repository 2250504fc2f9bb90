//! Streamed deltas (no sockets): the encoder hands out a delta's frames
//! while it still diffs the rest; the frames are those of the one-shot
//! encoder, sessions at the head send them before the delta is committed,
//! and an abandoned stream ends in a snapshot.

use std::time::{Duration, Instant};
use venom_net::proto::frame::Frame;
use venom_net::*;

mod common;
use common::Rng;

const SIZE: usize = 256 << 10;

fn cfg(frame_payload: usize) -> PublisherConfig {
    PublisherConfig { frame_payload, ..Default::default() }
}

/// Writes of every shape the cutter has to handle: scattered small runs
/// (more than 64 per frame), runs closer than the merge gap, a big block
/// split across frames, and a write that leaves its bytes unchanged.
fn writes(region: &MemRegion, rng: &mut Rng, round: u64) {
    match round % 4 {
        0 => {
            for _ in 0..300 {
                let len = 1 + rng.below(40) as usize;
                let off = rng.below((SIZE - len) as u64) as usize;
                region.write_at(off, &vec![rng.next() as u8 | 1; len]);
            }
        }
        1 => {
            let at = rng.below((SIZE / 2) as u64) as usize;
            for k in 0..200 {
                region.write_at(at + k * 20, &[rng.next() as u8 | 1; 5]); // 15-byte gaps: merged
            }
        }
        2 => {
            let len = 100_000 + rng.below(40_000) as usize;
            let at = rng.below((SIZE - len) as u64) as usize;
            let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            region.write_at(at, &data);
        }
        _ => {
            let b = region.to_vec()[1000..1064].to_vec();
            region.write_at(1000, &b); // dirty, unchanged: an empty delta
        }
    }
}

/// One step through the streamed path: begin, run (frames offered as they
/// are cut), commit. Returns the frames seen on the stream before the commit.
fn streamed_step(enc: &mut RegionEncoder, region: &MemRegion) -> Vec<Vec<u8>> {
    let mut snap = Snapshot::default();
    region.snapshot_since(enc.version(), &mut snap).unwrap();
    let mut b = enc.begin_delta(&snap, 5).expect("the region changed");
    let stream = b.stream().clone();
    let mut progress = 0;
    b.run(&snap, || progress += 1);
    assert_eq!(stream.frames_ready(), progress, "one wake-up per frame");
    let mut seen = Vec::new();
    for i in 0..stream.frames_ready() {
        match stream.poll(i) {
            venom_net::proto::stream::StreamPoll::Frame(f, last) => {
                assert_eq!(last, i + 1 == progress);
                seen.push(f.bytes().to_vec());
            }
            other => panic!("frame {i}: {other:?}"),
        }
    }
    assert!(enc.commit_delta(b));
    seen
}

#[test]
fn streamed_frames_equal_the_one_shot_encoder() {
    for (payload, chunk) in [(4096, 4096), (1000, 16 << 10), (512 << 10, 64 << 10), (64 << 10, 1024)] {
        let region = MemRegion::new(SIZE, chunk);
        let mut rng = Rng(payload as u64 * 31 + chunk as u64);
        let data: Vec<u8> = (0..SIZE).map(|_| rng.next() as u8).collect();
        region.write_at(0, &data);
        let mut one_shot = RegionEncoder::from_region(9, &region, cfg(payload).encoder(0)).unwrap();
        let mut streamed = RegionEncoder::from_region(9, &region, cfg(payload).encoder(0)).unwrap();
        for round in 0..12 {
            writes(&region, &mut rng, round);
            assert!(one_shot.step(&region, 5).unwrap());
            let seen = streamed_step(&mut streamed, &region);
            let (a, b) = (one_shot.backlog().newest().unwrap(), streamed.backlog().newest().unwrap());
            let (fa, fb): (Vec<&[u8]>, Vec<&[u8]>) = (a.frames().collect(), b.frames().collect());
            assert_eq!(fa, fb, "payload {payload}, chunk {chunk}, round {round}: same frames");
            assert_eq!(seen.iter().map(|f| &f[..]).collect::<Vec<_>>(), fb, "the stream carried the delta's frames");
            assert_eq!(a.runs(), b.runs());
            assert_eq!((a.seq, a.base_seq), (b.seq, b.base_seq));
            assert_eq!(streamed.version(), one_shot.version());
            assert!(streamed.stream().is_none(), "committed");
            // The shadow was updated: both views hold the region's bytes.
            let (mut va, mut vb) = (vec![0u8; SIZE], vec![0u8; SIZE]);
            one_shot.view().read(0, &mut va).unwrap();
            streamed.view().read(0, &mut vb).unwrap();
            assert_eq!(blake3::hash(&va), blake3::hash(&region.to_vec()));
            assert_eq!(blake3::hash(&vb), blake3::hash(&va));
        }
        assert_eq!(streamed.stats().deltas, one_shot.stats().deltas);
        assert_eq!(streamed.stats().payload_bytes, one_shot.stats().payload_bytes);
    }
}

/// A whole-region mirror fed by one publisher session over a perfect link.
struct Pair {
    publ: PublisherSession,
    mirror: MirrorSession,
    local: MemRegion,
    t0: Instant,
    step: u64,
}

impl Pair {
    fn new(enc: &RegionEncoder, check_hash: bool) -> Pair {
        let mut mirror = MirrorSession::new(MirrorConfig { check_hash, ..Default::default() }, Subscription::whole());
        mirror.connect();
        let publ = PublisherSession::new(enc.epoch().unwrap(), 1, 0, cfg(8192));
        Pair { publ, mirror, local: MemRegion::new(SIZE, 4096), t0: Instant::now(), step: 0 }
    }

    fn now(&mut self) -> Now {
        self.step += 1;
        Now { mono: self.t0 + Duration::from_millis(self.step), wall_ns: self.step }
    }

    /// Publisher frames until it has nothing to send now; each one is
    /// delivered to the mirror, whose replies go back. Returns the update
    /// frames delivered and how many of them completed an update.
    fn pump(&mut self, enc: &RegionEncoder) -> (usize, usize) {
        let (mut frames, mut applied) = (0, 0);
        loop {
            let now = self.now();
            let mut out = Vec::new();
            let more = self.publ.poll_transmit(enc, now, &mut out).unwrap();
            if !out.is_empty() {
                let (frame, n) = Frame::decode(&out).unwrap();
                frames += matches!(frame, Frame::Update(_)) as usize;
                let mut sink = self.local.clone();
                applied += self.mirror.handle_frame(&frame, &mut sink, n, now).unwrap().is_some() as usize;
            }
            let mut back = Vec::new();
            while self.mirror.poll_transmit(&mut back) {}
            let mut at = 0;
            while at < back.len() {
                let (frame, n) = Frame::decode(&back[at..]).unwrap();
                self.publ.handle_frame(&frame, enc, n).unwrap();
                at += n;
            }
            if !more && back.is_empty() {
                return (frames, applied);
            }
        }
    }

    fn converged(&self, region: &MemRegion) -> bool {
        blake3::hash(&self.local.to_vec()) == blake3::hash(&region.to_vec())
    }
}

#[test]
fn head_sessions_send_streamed_frames_before_the_commit() {
    let region = MemRegion::new(SIZE, 4096);
    let mut enc = RegionEncoder::from_region(3, &region, cfg(8192).encoder(0)).unwrap();
    let mut pairs = [Pair::new(&enc, false), Pair::new(&enc, true)];
    region.write_at(100, b"not all zero");
    enc.step(&region, 0).unwrap();
    for p in &mut pairs {
        p.pump(&enc);
        assert_eq!(p.mirror.stats().snapshots_applied, 1);
        assert!(p.converged(&region), "snapshot applied");
    }
    let mut rng = Rng(77);
    for round in 0..6 {
        writes(&region, &mut rng, round);
        let mut snap = Snapshot::default();
        region.snapshot_since(enc.version(), &mut snap).unwrap();
        let mut b = enc.begin_delta(&snap, 1).unwrap();
        let (mut sent, mut applied) = (0, 0);
        b.run(&snap, || {
            for p in &mut pairs {
                let (f, a) = p.pump(&enc);
                sent += f;
                applied += a;
            }
        });
        let frames = b.stream().frames_ready();
        // Every frame went out before the commit; the last one completed the update.
        assert_eq!(sent, 2 * frames, "round {round}: both sessions sent every frame while encoding");
        assert_eq!(applied, 2, "round {round}: each mirror applied the whole delta once");
        for p in &pairs {
            assert!(p.converged(&region), "round {round}: applied before the commit");
        }
        assert!(enc.commit_delta(b));
        for p in &mut pairs {
            let (f, a) = p.pump(&enc);
            assert_eq!(a, 0, "round {round}: nothing sent twice after the commit");
            assert!(f == 0);
            assert!(p.converged(&region));
            assert_eq!(p.publ.stats(Instant::now(), enc.version()).sent_seq, enc.version());
        }
    }
    // The hash-checked mirror verifies the streamed updates.
    let p = &mut pairs[1];
    p.step += 1000; // past hash_interval
    p.pump(&enc);
    let local = p.local.clone();
    while p.mirror.poll_verify(&local, 64, Instant::now()).unwrap() > 0 {}
    assert!(p.mirror.stats().hash_matches > 0);
    assert_eq!(p.mirror.stats().hash_mismatches, 0);
    assert_eq!(pairs[0].mirror.stats().snapshots_applied, 1, "no resync");
}

#[test]
fn an_abandoned_stream_ends_in_a_snapshot() {
    let region = MemRegion::new(SIZE, 4096);
    let mut enc = RegionEncoder::from_region(3, &region, cfg(8192).encoder(0)).unwrap();
    let mut p = Pair::new(&enc, false);
    p.pump(&enc);
    assert_eq!(p.mirror.stats().snapshots_applied, 1);
    let mut rng = Rng(5);
    writes(&region, &mut rng, 2); // a 100+ KiB block: several frames
    let mut snap = Snapshot::default();
    region.snapshot_since(enc.version(), &mut snap).unwrap();
    let mut b = enc.begin_delta(&snap, 1).unwrap();
    // Half the frames reach the mirror, then the encoder gives the delta up.
    let mut calls = 0;
    b.run(&snap, || {
        calls += 1;
        if calls <= 3 {
            p.pump(&enc);
        }
    });
    assert!(b.stream().frames_ready() > 3);
    drop(b);
    assert!(enc.stream().is_none(), "an abandoned stream is not offered");
    assert!(!p.converged(&region));
    p.pump(&enc);
    let mut shadow = vec![0u8; SIZE];
    enc.view().read(0, &mut shadow).unwrap();
    assert_eq!(blake3::hash(&p.local.to_vec()), blake3::hash(&shadow), "resynced with a snapshot of the shadow");
    assert_eq!(p.mirror.stats().snapshots_applied, 2);
    // The encoder never committed that version: the next step diffs it again.
    assert!(enc.step(&region, 2).unwrap());
    p.pump(&enc);
    assert!(p.converged(&region));
}
