//! Deterministic tests of the publisher and mirror state machines over a
//! simulated link with seeded loss, reordering and duplication (no sockets).

use std::collections::VecDeque;
use std::time::{Duration, Instant};
use venom_net::frame::Frame;
use venom_net::mirror::subscribed_hash;
use venom_net::*;

/// xorshift64*: a tiny seeded generator (no dependency).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[derive(Clone, Copy, Default)]
struct Faults {
    loss: u64,
    dup: u64,
    reorder: u64,
}

/// One direction of the simulated link.
struct Link {
    queue: VecDeque<Vec<u8>>,
}
impl Link {
    fn send(&mut self, f: Vec<u8>, faults: Faults, rng: &mut Rng) {
        if rng.chance(faults.loss) {
            return;
        }
        if rng.chance(faults.dup) {
            self.queue.push_back(f.clone());
        }
        if rng.chance(faults.reorder) && !self.queue.is_empty() {
            let at = rng.below(self.queue.len() as u64) as usize;
            self.queue.insert(at, f);
        } else {
            self.queue.push_back(f);
        }
    }
}

struct Sim {
    region: MemRegion,
    local: MemRegion,
    publ: PublisherSession,
    mirror: MirrorSession,
    to_mirror: Link,
    to_pub: Link,
    rng: Rng,
    t0: Instant,
    step: u64,
}

impl Sim {
    fn new(
        seed: u64,
        size: usize,
        sub: Subscription,
        local_size: usize,
        check_hash: bool,
        cfg: PublisherConfig,
    ) -> Sim {
        let region = MemRegion::new(size, 1024);
        let local = MemRegion::new(local_size, 1024);
        let publ = PublisherSession::new(7, 1, 0, cfg);
        let mcfg = MirrorConfig { check_hash, resync_retry: Duration::from_millis(50), ..Default::default() };
        let mut mirror = MirrorSession::new(mcfg, sub);
        mirror.connect();
        let (to_mirror, to_pub) = (Link { queue: VecDeque::new() }, Link { queue: VecDeque::new() });
        Sim { region, local, publ, mirror, to_mirror, to_pub, rng: Rng(seed | 1), t0: Instant::now(), step: 0 }
    }

    fn now(&self) -> Now {
        Now { mono: self.t0 + Duration::from_millis(self.step), wall_ns: self.step * 1_000_000 }
    }

    /// One tick: each side sends what it has (up to a few frames) and receives what arrived.
    fn tick(&mut self, faults: Faults) {
        self.step += 1;
        let now = self.now();
        self.publ.handle_timeout(now.mono);
        self.mirror.handle_timeout(now.mono);
        for _ in 0..8 {
            let mut f = Vec::new();
            if !self.publ.poll_transmit(&self.region, now, &mut f).unwrap() {
                break;
            }
            if !f.is_empty() {
                // (empty: a slice of digest work, no frame)
                self.to_mirror.send(f, faults, &mut self.rng);
            }
        }
        let mut f = Vec::new();
        while self.mirror.poll_transmit(&mut f) {
            self.to_pub.send(std::mem::take(&mut f), faults, &mut self.rng);
        }
        while let Some(f) = self.to_mirror.queue.pop_front() {
            let (frame, n) = Frame::decode(&f).unwrap();
            self.mirror.handle_frame(&frame, &mut self.local, n, now).unwrap();
        }
        while let Some(f) = self.to_pub.queue.pop_front() {
            let (frame, n) = Frame::decode(&f).unwrap();
            self.publ.handle_frame(&frame, &self.region, n).unwrap();
        }
    }

    fn random_writes(&mut self, n: usize) {
        for _ in 0..n {
            let size = RegionSource::size(&self.region);
            let len = 1 + self.rng.below(64) as usize;
            let off = self.rng.below((size - len) as u64) as usize;
            let byte = self.rng.next() as u8;
            self.region.write_at(off, &vec![byte; len]);
        }
    }

    /// Subscribed bytes equal? (compares blake3 of both sides in virtual order)
    fn converged(&self) -> bool {
        let Some(c) = self.mirror.compiled() else { return false };
        let mut pub_bytes = Vec::new();
        let data = self.region.to_vec();
        for r in c.runs() {
            pub_bytes.extend_from_slice(&data[r.src as usize..(r.src + r.len) as usize]);
        }
        blake3::hash(&pub_bytes).as_bytes() == &subscribed_hash(c, &self.local).unwrap()
    }

    fn run_until_converged(&mut self, max_ticks: u64) {
        for _ in 0..max_ticks {
            self.tick(Faults::default());
            if self.publ.is_idle() && self.converged() {
                return;
            }
        }
        panic!("did not converge in {max_ticks} ticks; stats {:?}", self.mirror.stats());
    }
}

fn lossy_cfg() -> PublisherConfig {
    PublisherConfig { ack_timeout: Some(Duration::from_millis(30)), frame_payload: 700, ..Default::default() }
}

fn subs() -> Vec<(Subscription, usize)> {
    vec![
        (Subscription::whole(), 16384),
        (Subscription::range(1000, 5000, 100).with(Part::Range { src: 9000, len: 3000, dst: 6000 }), 9000),
        (Subscription::slice(0, Dtype::F64, &[32, 64], &[3..20, 8..40], 64), 64 + 17 * 32 * 8),
    ]
}

#[test]
fn converges_without_faults_and_sends_only_changes() {
    let mut sim = Sim::new(1, 16384, Subscription::whole(), 16384, true, PublisherConfig::default());
    sim.random_writes(20);
    sim.run_until_converged(100);
    let before = sim.publ.stats(sim.now().mono, 0).payload_bytes;
    sim.region.write_at(5000, &[0xAB; 10]);
    sim.run_until_converged(100);
    let delta = sim.publ.stats(sim.now().mono, 0).payload_bytes - before;
    assert_eq!(delta, 10, "only the changed bytes are sent");
    assert_eq!(sim.mirror.stats().hash_mismatches, 0);
    assert!(sim.mirror.stats().hash_matches >= 2);
}

#[test]
fn converges_under_loss_reorder_and_duplication() {
    for seed in 1..=12u64 {
        for (sub, local) in subs() {
            let mut sim = Sim::new(seed, 16384, sub, local, seed % 2 == 0, lossy_cfg());
            let faults = Faults { loss: 10, dup: 10, reorder: 20 };
            for _ in 0..300 {
                sim.random_writes(3);
                sim.tick(faults);
            }
            sim.run_until_converged(2000);
            assert_eq!(sim.mirror.stats().hash_mismatches, 0, "seed {seed}");
        }
    }
}

#[test]
fn slow_mirror_conflates_and_caps_in_flight() {
    let cfg = PublisherConfig { max_in_flight: 4096, frame_payload: 1024, ..Default::default() };
    let mut sim = Sim::new(3, 65536, Subscription::whole(), 65536, false, cfg);
    sim.run_until_converged(500);
    // The mirror stops reading: the publisher keeps at most the cap (+ one update) in flight.
    let now = sim.now();
    let mut sent = 0u64;
    for _ in 0..200 {
        sim.random_writes(10);
        let mut f = Vec::new();
        while sim.publ.poll_transmit(&sim.region, now, &mut f).unwrap() {
            sent += f.len() as u64;
            f.clear();
        }
    }
    let st = sim.publ.stats(now.mono, sim.region.version());
    assert!(st.in_flight_bytes <= 4096 + 65536 + 4096, "in flight {}", st.in_flight_bytes);
    assert!(sent < 200_000, "writer's 2000 writes were conflated, sent {sent}");
    assert!(st.lag_seq > 0);
    // Those frames were "lost" in the slow mirror's buffer: a resync brings it back.
    sim.mirror.connect();
    sim.publ = PublisherSession::new(7, 1, 0, PublisherConfig::default());
    sim.run_until_converged(2000);
}

#[test]
fn publisher_restart_new_epoch_resets_and_converges() {
    let mut sim = Sim::new(5, 8192, Subscription::whole(), 8192, true, PublisherConfig::default());
    sim.random_writes(10);
    sim.run_until_converged(200);
    let old = sim.mirror.applied().unwrap();
    sim.publ = PublisherSession::new(8, 1, 0, PublisherConfig::default());
    sim.to_mirror.queue.clear();
    sim.mirror.connect();
    sim.random_writes(10);
    sim.run_until_converged(200);
    let new = sim.mirror.applied().unwrap();
    assert_eq!(new.epoch, 8);
    assert_ne!(old.epoch, new.epoch);
}

#[test]
fn mirror_rejects_out_of_range_and_broken_frames() {
    use venom_net::frame::{Welcome, encode_single_update};
    let mut local = MemRegion::new(100, 64);
    let mut m = MirrorSession::new(MirrorConfig::default(), Subscription::range(0, 50, 0));
    m.connect();
    let now = Now::system();
    let w = Frame::Welcome(Welcome { epoch: 1, owner_id: 0, region_id: 0, chunk_size: 64, region_size: 80 });
    m.handle_frame(&w, &mut local, 0, now).unwrap();
    // Run past the subscription end.
    let bad = encode_single_update(1, 2, 0, true, &[(40, &[1u8; 20])]);
    let (f, _) = Frame::decode(&bad).unwrap();
    assert!(matches!(m.handle_frame(&f, &mut local, 0, now), Err(Error::OutOfRange { .. })));
    // Overlapping runs.
    let bad = encode_single_update(1, 2, 0, true, &[(0, &[1u8; 20]), (10, &[1u8; 20])]);
    let (f, _) = Frame::decode(&bad).unwrap();
    assert!(m.handle_frame(&f, &mut local, 0, now).is_err());
    // Incomplete snapshot.
    let bad = encode_single_update(1, 2, 0, true, &[(0, &[1u8; 20])]);
    let (f, _) = Frame::decode(&bad).unwrap();
    assert!(m.handle_frame(&f, &mut local, 0, now).is_err());
    assert_eq!(local.to_vec(), vec![0u8; 100], "nothing was written");
    // A welcome whose subscription does not fit the local region.
    let mut m2 = MirrorSession::new(MirrorConfig::default(), Subscription::range(0, 50, 80));
    m2.connect();
    assert!(m2.handle_frame(&w, &mut local, 0, now).is_err());
}

#[test]
fn hash_mismatch_is_counted_and_resynced() {
    let mut sim = Sim::new(11, 8192, Subscription::range(1000, 3000, 0), 4096, true, PublisherConfig::default());
    sim.random_writes(10);
    sim.run_until_converged(200);
    // Corrupt the mirror's copy behind the state machine's back.
    sim.local.write_at(10, b"corrupted!");
    assert!(!sim.converged());
    // The next update's digest no longer matches: counted, resynced, converged.
    sim.region.write_at(2000, b"next");
    sim.run_until_converged(200);
    let st = sim.mirror.stats();
    assert_eq!(st.hash_mismatches, 1, "{st:?}");
    assert_eq!(st.resyncs_requested, 1);
    assert!(st.snapshots_applied >= 2);
}

#[test]
fn mirror_bounds_what_a_publisher_can_make_it_buffer() {
    use venom_net::frame::Welcome;
    let mut local = MemRegion::new(100, 64);
    let mut m = MirrorSession::new(MirrorConfig::default(), Subscription::range(0, 50, 0));
    m.connect();
    let now = Now::system();
    let w = Frame::Welcome(Welcome { epoch: 1, owner_id: 0, region_id: 0, chunk_size: 64, region_size: 80 });
    m.handle_frame(&w, &mut local, 0, now).unwrap();
    // Endless non-last frames without runs are refused at once.
    let mut f = venom_net::frame::encode_single_update(1, 2, 0, true, &[]);
    f[8 + 40] = venom_net::frame::FLAG_SNAPSHOT; // clear LAST
    let (frame, n) = Frame::decode(&f).unwrap();
    assert!(matches!(m.handle_frame(&frame, &mut local, n, now), Err(Error::Protocol(_))));
}
