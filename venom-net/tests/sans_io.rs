//! Deterministic tests of the publisher and mirror state machines over a
//! simulated link with seeded loss, reordering and duplication (no sockets).

use std::collections::VecDeque;
use std::time::{Duration, Instant};
use venom_net::proto::frame::Frame;
use venom_net::proto::mirror::subscribed_hash;
use venom_net::*;

mod common;
use common::Rng;

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
    enc: RegionEncoder,
    publ: PublisherSession,
    mirror: MirrorSession,
    to_mirror: Link,
    to_pub: Link,
    rng: Rng,
    t0: Instant,
    step: u64,
    /// Flip the last payload byte of the next update frame sent to the mirror.
    corrupt_next_update: bool,
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
        let enc = RegionEncoder::from_region(7, &region, cfg.encoder(0)).unwrap();
        let publ = PublisherSession::new(7, 1, 0, cfg);
        let mcfg = MirrorConfig {
            check_hash,
            resync_retry: Duration::from_millis(50),
            resync_backoff_max: Duration::from_millis(200),
            ..Default::default()
        };
        let mut mirror = MirrorSession::new(mcfg, sub);
        mirror.connect();
        let (to_mirror, to_pub) = (Link { queue: VecDeque::new() }, Link { queue: VecDeque::new() });
        Sim {
            region,
            local,
            enc,
            publ,
            mirror,
            to_mirror,
            to_pub,
            rng: Rng(seed | 1),
            t0: Instant::now(),
            step: 0,
            corrupt_next_update: false,
        }
    }

    fn now(&self) -> Now {
        Now { mono: self.t0 + Duration::from_millis(self.step), wall_ns: self.step * 1_000_000 }
    }

    /// One tick: each side sends what it has (up to a few frames) and receives what arrived.
    fn tick(&mut self, faults: Faults) {
        self.step += 1;
        let now = self.now();
        self.enc.step(&self.region, now.wall_ns).unwrap();
        self.publ.handle_timeout(now.mono);
        self.mirror.handle_timeout(now.mono);
        for _ in 0..8 {
            let mut f = Vec::new();
            if !self.publ.poll_transmit(&self.enc, now, &mut f).unwrap() {
                break;
            }
            // (an update frame that carries at least one run byte)
            if self.corrupt_next_update && f.get(3) == Some(&3) && f.len() > 8 + 45 + 12 {
                self.corrupt_next_update = false;
                *f.last_mut().unwrap() ^= 0x55; // a payload byte: the frame stays well-formed
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
            self.publ.handle_frame(&frame, &self.enc, n).unwrap();
        }
        // What the I/O shell does between frames: a bounded slice of digest work.
        self.mirror.poll_verify(&self.local, 64, now.mono).unwrap();
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
        sim.enc.step(&sim.region, now.wall_ns).unwrap();
        let mut f = Vec::new();
        while sim.publ.poll_transmit(&sim.enc, now, &mut f).unwrap() {
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
    sim.enc = RegionEncoder::from_region(8, &sim.region, EncoderConfig::default()).unwrap();
    sim.publ = PublisherSession::new(8, 1, 0, PublisherConfig::default());
    sim.to_mirror.queue.clear();
    sim.mirror.connect();
    sim.random_writes(10);
    sim.run_until_converged(200);
    let new = sim.mirror.applied().unwrap();
    assert_eq!(new.epoch, 8);
    assert_ne!(old.epoch, new.epoch);
}

/// A mirror of bytes 0..50 of an 80-byte region, connected and welcomed
/// (epoch 1, 64-byte chunks), with its 100-byte local copy.
fn welcomed_range_mirror() -> (MemRegion, MirrorSession, Now) {
    let mut local = MemRegion::new(100, 64);
    let mut m = MirrorSession::new(MirrorConfig::default(), Subscription::range(0, 50, 0));
    m.connect();
    let now = Now::system();
    m.handle_frame(&range_welcome(), &mut local, 0, now).unwrap();
    (local, m, now)
}

/// The welcome of [`welcomed_range_mirror`]'s publisher.
fn range_welcome() -> Frame<'static> {
    use venom_net::proto::frame::Welcome;
    Frame::Welcome(Welcome { epoch: 1, owner_id: 0, region_id: 0, chunk_size: 64, region_size: 80 })
}

#[test]
fn mirror_rejects_out_of_range_and_broken_frames() {
    use venom_net::proto::frame::encode_single_update;
    let (mut local, mut m, now) = welcomed_range_mirror();
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
    assert!(m2.handle_frame(&range_welcome(), &mut local, 0, now).is_err());
}

#[test]
fn hash_mismatch_is_counted_and_repaired() {
    let mut sim = Sim::new(11, 8192, Subscription::range(1000, 3000, 0), 4096, true, PublisherConfig::default());
    sim.random_writes(10);
    sim.run_until_converged(200);
    // Corrupt the mirror's copy behind the state machine's back.
    sim.local.write_at(10, b"corrupted!");
    assert!(!sim.converged());
    // The next update's digest no longer matches: counted, its chunk repaired, converged.
    sim.region.write_at(2000, b"next");
    sim.run_until_converged(200);
    let st = sim.mirror.stats();
    assert_eq!(st.hash_mismatches, 1, "{st:?}");
    assert_eq!((st.repairs_requested, st.resyncs_requested, st.snapshots_applied), (1, 0, 1), "{st:?}");
}

#[test]
fn mirror_bounds_what_a_publisher_can_make_it_buffer() {
    let (mut local, mut m, now) = welcomed_range_mirror();
    // Endless non-last frames without runs are refused at once.
    let mut f = venom_net::proto::frame::encode_single_update(1, 2, 0, true, &[]);
    f[8 + 40] = venom_net::proto::frame::FLAG_SNAPSHOT; // clear LAST
    let (frame, n) = Frame::decode(&f).unwrap();
    assert!(matches!(m.handle_frame(&frame, &mut local, n, now), Err(Error::Protocol(_))));
}

/// `apply_len` tells the I/O shell which frame will write into the sink (an
/// update's last one) and how much (every staged body plus its own).
#[test]
fn apply_len_counts_only_an_updates_last_frame() {
    use venom_net::proto::frame::{FLAG_SNAPSHOT, FrameHeader, encode_single_update};
    let (mut local, mut m, now) = welcomed_range_mirror();
    let split = |f: Vec<u8>| (FrameHeader::decode(f[..8].try_into().unwrap()).unwrap(), f[8..].to_vec());
    // A two-frame snapshot: part 0 (not last), then part 1 (last).
    let mut a = encode_single_update(1, 2, 0, true, &[(0, &[7; 25])]);
    a[8 + 40] = FLAG_SNAPSHOT; // clear LAST
    let mut b = encode_single_update(1, 2, 0, true, &[(25, &[8; 25])]);
    b[8 + 36..8 + 40].copy_from_slice(&1u32.to_le_bytes()); // part 1
    let ((ha, a), (hb, b)) = (split(a), split(b));
    assert_eq!(m.apply_len(&ha, &a), 0);
    let a_len = a.len();
    assert_eq!(m.handle(ha, a, &mut local, now).unwrap(), None);
    assert_eq!(m.apply_len(&hb, &b), a_len + b.len());
    assert!(m.handle(hb, b, &mut local, now).unwrap().is_some_and(|ap| ap.snapshot && ap.seq == 2));
    let mut got = [0u8; 50];
    RegionSink::read_at(&local, 0, &mut got).unwrap();
    assert_eq!((&got[..25], &got[25..]), (&[7; 25][..], &[8; 25][..]));
    // Control frames never write.
    let mut ack = Vec::new();
    while m.poll_transmit(&mut ack) {}
    let (h, body) = split(ack);
    assert_eq!(m.apply_len(&h, &body), 0);
}

#[test]
fn corrupted_chunk_is_detected_and_repaired() {
    // 256 KiB whole-region subscription: 16 digest chunks of 16 KiB.
    let size = 256 << 10;
    let mut sim = Sim::new(21, size, Subscription::whole(), size, true, PublisherConfig::default());
    sim.random_writes(50);
    sim.run_until_converged(500);
    let base = sim.mirror.stats().clone();
    assert!(base.hash_matches >= 1 && base.hash_mismatches == 0, "{base:?}");

    // 1. A payload byte flipped in transit: applied, hashed (only its chunk), caught, and
    //    repaired by resending that one 16 KiB chunk (not a snapshot).
    let payload0 = sim.publ.stats(sim.now().mono, 0).payload_bytes;
    sim.corrupt_next_update = true;
    sim.region.write_at(100_000, b"in transit");
    for _ in 0..500 {
        sim.tick(Faults::default());
        if sim.mirror.stats().hash_mismatches > 0 && sim.publ.is_idle() && sim.converged() {
            break;
        }
    }
    let st = sim.mirror.stats().clone();
    assert_eq!(st.hash_mismatches, 1, "{st:?}");
    assert_eq!(st.repairs_requested, 1, "{st:?}");
    assert_eq!(st.snapshots_applied, base.snapshots_applied, "no snapshot needed: {st:?}");
    let resent = sim.publ.stats(sim.now().mono, 0).payload_bytes - payload0;
    assert!(resent <= 10 + 16384, "only the write and one chunk were sent: {resent}");
    assert!(sim.converged());
    // The repaired copy verifies again and the fault streak is over.
    sim.region.write_at(7, b"after");
    let matches = sim.mirror.stats().hash_matches;
    for _ in 0..500 {
        sim.tick(Faults::default());
        if sim.mirror.stats().hash_matches > matches {
            break;
        }
    }
    assert!(sim.mirror.stats().hash_matches > matches);
    assert_eq!(sim.mirror.stats().faults, 0);

    // 2. A chunk changed behind the state machine's back, far from any later write:
    //    found by the scrub (4 chunks per check, 16 chunks) within 4 checks.
    sim.local.write_at(200_000, b"bit rot");
    let before = sim.mirror.stats().clone();
    let mut checks = 0;
    while sim.mirror.stats().hash_mismatches == before.hash_mismatches {
        sim.region.write_at(3, &[checks as u8]); // chunk 0 only
        let m = sim.mirror.stats().hash_matches + sim.mirror.stats().hash_mismatches;
        for _ in 0..300 {
            sim.tick(Faults::default());
            if sim.mirror.stats().hash_matches + sim.mirror.stats().hash_mismatches > m {
                break;
            }
        }
        checks += 1;
        assert!(checks <= 5, "scrub did not find the corrupted chunk: {:?}", sim.mirror.stats());
    }
    sim.run_until_converged(1000);
}

#[test]
fn digest_mismatch_loop_backs_off_then_fails() {
    use venom_net::proto::frame::{FrameType, HashFrame, Welcome, encode_single_update};
    let cfg = MirrorConfig {
        check_hash: true,
        resync_backoff_min: Duration::from_millis(50),
        resync_backoff_max: Duration::from_secs(5),
        max_faults: 8,
        ..Default::default()
    };
    let mut local = MemRegion::new(4096, 1024);
    let mut m = MirrorSession::new(cfg, Subscription::whole());
    m.connect();
    let t0 = Instant::now();
    let at = |ms: u64| Now { mono: t0 + Duration::from_millis(ms), wall_ns: ms * 1_000_000 };
    let feed = |m: &mut MirrorSession, local: &mut MemRegion, bytes: &[u8], now: Now| {
        let (f, n) = Frame::decode(bytes).unwrap();
        m.handle_frame(&f, local, n, now)
    };
    let mut wire = Vec::new();
    Frame::Welcome(Welcome { epoch: 1, owner_id: 0, region_id: 0, chunk_size: 1024, region_size: 4096 })
        .encode(&mut wire);
    feed(&mut m, &mut local, &wire, at(0)).unwrap();
    // The hostile publisher: every snapshot is followed by a digest that never matches.
    let mut seq = 2;
    // `repair`: answer a chunk repair request (a FLAG_REPAIR delta at the same seq), else a resync.
    let mut serve = |m: &mut MirrorSession, local: &mut MemRegion, now: Now, repair: bool| {
        if repair {
            let mut f = encode_single_update(1, seq, seq, false, &[(0, &[seq as u8; 4096])]);
            f[8 + 40] |= venom_net::proto::frame::FLAG_REPAIR;
            feed(m, local, &f, now)?;
        } else {
            seq += 2;
            let snap = encode_single_update(1, seq, 0, true, &[(0, &[seq as u8; 4096])]);
            feed(m, local, &snap, now)?;
        }
        let mut h = Vec::new();
        Frame::Hash(HashFrame { region_id: 0, epoch: 1, seq, scheme: 1, digest: [0xEE; 32] }).encode(&mut h);
        feed(m, local, &h, now)
    };
    serve(&mut m, &mut local, at(0), false).unwrap();
    let mut resync_times = Vec::new();
    let mut failed = None;
    for ms in 0..20_000u64 {
        m.handle_timeout(at(ms).mono);
        let mut out = Vec::new();
        while m.poll_transmit(&mut out) {}
        let mut pos = 0;
        let (mut asked, mut repair) = (false, false);
        while pos < out.len() {
            let (f, n) = Frame::decode(&out[pos..]).unwrap();
            asked |= f.kind() == FrameType::Resync;
            repair |= f.kind() == FrameType::Repair;
            pos += n;
        }
        if repair && let Err(e) = serve(&mut m, &mut local, at(ms), true) {
            failed = Some(e);
            break;
        }
        if asked {
            resync_times.push(ms);
            if let Err(e) = serve(&mut m, &mut local, at(ms), false) {
                failed = Some(e);
                break;
            }
        }
    }
    let st = m.stats().clone();
    assert!(matches!(failed, Some(Error::MirrorFailed(MirrorFailure::DigestMismatches(8)))), "{failed:?} {st:?}");
    assert_eq!(st.failure, Some(MirrorFailure::DigestMismatches(8)));
    assert_eq!(st.hash_mismatches, 8);
    // The first mismatch gets a chunk repair (answered, still wrong), then one resync per
    // mismatch but the last.
    assert_eq!(st.repairs_requested, 1, "{st:?}");
    assert_eq!(resync_times.len(), 6, "{resync_times:?}");
    // Exponential spacing: the k-th gap is at least half of 50 ms * 2^(k-1) (jitter 50..100 %).
    for (k, w) in resync_times.windows(2).enumerate() {
        let floor = 25 * (1u64 << k);
        assert!(w[1] - w[0] >= floor, "gap {k} = {} ms < {floor} ms: {resync_times:?}", w[1] - w[0]);
    }
    assert!(st.resyncs_deferred >= 5);
    // Terminal: nothing more is sent, every frame is refused with the typed error.
    m.handle_timeout(at(100_000).mono);
    assert!(!m.poll_transmit(&mut Vec::new()));
    assert!(matches!(serve(&mut m, &mut local, at(100_001), false), Err(Error::MirrorFailed(_))));
    m.connect();
    assert!(!m.poll_transmit(&mut Vec::new()), "a failed mirror does not even say hello");
}

#[test]
fn digests_cover_exactly_the_subscribed_bytes() {
    for (sub, local_size) in subs() {
        let mut sim = Sim::new(31, 16384, sub.clone(), local_size + 64, true, PublisherConfig::default());
        sim.random_writes(30);
        sim.run_until_converged(500);
        for _ in 0..150 {
            sim.tick(Faults::default()); // past hash_interval: the last seq is checked
        }
        let st = sim.mirror.stats().clone();
        assert!(st.hash_matches >= 1 && st.hash_mismatches == 0, "{sub:?}: {st:?}");
        // A local byte outside the subscription is not covered...
        sim.local.write_at(local_size + 10, b"x");
        sim.random_writes(5);
        sim.run_until_converged(500);
        for _ in 0..150 {
            sim.tick(Faults::default());
        }
        assert_eq!(sim.mirror.stats().hash_mismatches, 0, "{sub:?}");
        // ...one inside is (its chunk is rehashed: by the next write or the scrub).
        let c = sim.mirror.compiled().unwrap().clone();
        let r = c.runs()[c.runs().len() / 2];
        let mut b = [0u8; 1];
        let at = (r.dst + r.len - 1) as usize; // the last byte of a middle run
        RegionSink::read_at(&sim.local, at, &mut b).unwrap();
        sim.local.write_at(at, &[!b[0]]);
        // Any other write: a new seq gets a digest.
        sim.region.write_at(c.runs()[0].src as usize, &[sim.step as u8]);
        for _ in 0..300 {
            sim.tick(Faults::default());
        }
        assert_eq!(sim.mirror.stats().hash_mismatches, 1, "{sub:?}");
        sim.run_until_converged(500);
    }
}

#[test]
fn large_subscription_verifies_in_bounded_slices() {
    // 8 MiB = 512 digest chunks: a digest arriving right after the snapshot
    // cannot be checked inline (256 chunks at most); poll_verify finishes it.
    let size = 8 << 20;
    let cfg = PublisherConfig { frame_payload: 1 << 20, ..Default::default() };
    let mut sim = Sim::new(41, size, Subscription::whole(), size, true, cfg);
    sim.random_writes(100);
    sim.run_until_converged(2000);
    for _ in 0..300 {
        sim.tick(Faults::default());
    }
    let st = sim.mirror.stats().clone();
    assert!(st.hash_matches >= 1 && st.hash_mismatches == 0, "{st:?}");
}

#[test]
fn corruption_under_loss_reorder_and_duplication_is_repaired() {
    let (mut mismatches, mut repairs) = (0, 0);
    for seed in 1..=8u64 {
        for (sub, local) in subs() {
            let mut sim = Sim::new(seed, 16384, sub.clone(), local, true, lossy_cfg());
            // Mild faults: heavy loss resyncs so often that snapshots repair the
            // corruption before any digest could see it.
            let faults = Faults { loss: 1, dup: 10, reorder: 2 };
            for t in 0..600 {
                sim.random_writes(2);
                if t % 150 == 75 {
                    sim.corrupt_next_update = true;
                }
                sim.tick(faults);
            }
            sim.run_until_converged(3000);
            // The final state verifies (a digest for the last seq), nothing failed for good.
            let m0 = sim.mirror.stats().hash_matches;
            for _ in 0..300 {
                sim.tick(Faults::default());
            }
            let st = sim.mirror.stats().clone();
            assert!(st.hash_matches > m0 || st.hash_matches > 0, "seed {seed} {sub:?}: {st:?}");
            assert_eq!((st.failure, st.faults), (None, 0), "seed {seed} {sub:?}: {st:?}");
            assert!(sim.converged());
            mismatches += st.hash_mismatches;
            repairs += st.repairs_requested;
        }
    }
    eprintln!("corruption under faults: {mismatches} mismatches, {repairs} chunk repairs");
    assert!(mismatches > 0 && repairs > 0, "the corruption path was exercised");
}
