//! Deterministic fan-out tests (no sockets): one shared encoder per region
//! feeding many publisher sessions, resume from the replication backlog,
//! and relay chains, over simulated links with seeded loss.

use std::collections::VecDeque;
use std::time::{Duration, Instant};
use venom_net::proto::frame::{FLAG_SNAPSHOT, Frame};
use venom_net::proto::relay::{RelaySink, SharedEncoder, read, write};
use venom_net::*;

mod common;
use common::Rng;

const SIZE: usize = 32 << 10;

/// One publisher session -> mirror connection, served from encoder `up`.
struct Edge {
    up: usize,
    publ: PublisherSession,
    mirror: MirrorSession,
    sink: Box<dyn RegionSink>,
    /// The mirror's local bytes (shared with `sink`).
    local: MemRegion,
    /// The encoder this edge's sink feeds, if it is a relay.
    relay: Option<usize>,
    to_mirror: VecDeque<Vec<u8>>,
    to_pub: VecDeque<Vec<u8>>,
    /// Frames to the mirror are held (a mirror that stopped reading).
    stalled: bool,
    /// Update frames flagged as snapshot delivered to the mirror.
    snapshot_frames: u64,
    /// Snapshots (their first frames) delivered to the mirror.
    snapshots: u64,
}

struct Net {
    origin: MemRegion,
    encoders: Vec<SharedEncoder>,
    edges: Vec<Edge>,
    pcfg: PublisherConfig,
    loss: u64,
    rng: Rng,
    t0: Instant,
    step: u64,
}

fn mcfg(check_hash: bool) -> MirrorConfig {
    MirrorConfig {
        check_hash,
        resync_retry: Duration::from_millis(40),
        resync_backoff_max: Duration::from_millis(100),
        max_faults: 1000,
        ..Default::default()
    }
}

impl Net {
    fn new(seed: u64, epoch: u64, pcfg: PublisherConfig, loss: u64) -> Net {
        let origin = MemRegion::new(SIZE, 1024);
        let enc = RegionEncoder::from_region(epoch, &origin, pcfg.encoder(0)).unwrap();
        Net {
            origin,
            encoders: vec![std::sync::Arc::new(std::sync::RwLock::new(enc))],
            edges: Vec::new(),
            pcfg,
            loss,
            rng: Rng(seed | 1),
            t0: Instant::now(),
            step: 0,
        }
    }

    fn now(&self) -> Now {
        Now { mono: self.t0 + Duration::from_millis(self.step), wall_ns: self.step * 1_000_000 }
    }

    fn session(&self, up: usize) -> PublisherSession {
        let epoch = read(&self.encoders[up]).epoch().unwrap_or(0);
        PublisherSession::new(epoch, 1, 0, self.pcfg.clone())
    }

    /// Adds a mirror of encoder `up`; with `relay`, its local copy is
    /// republished through a new encoder (returned).
    fn add(&mut self, up: usize, sub: Subscription, check_hash: bool, relay: bool) -> (usize, Option<usize>) {
        let local = MemRegion::new(SIZE, 1024);
        let (sink, relay) = self.sink(&local, relay);
        let mut mirror = MirrorSession::new(mcfg(check_hash), sub);
        mirror.connect();
        let publ = self.session(up);
        self.edges.push(Edge {
            up,
            publ,
            mirror,
            sink,
            local,
            relay,
            to_mirror: VecDeque::new(),
            to_pub: VecDeque::new(),
            stalled: false,
            snapshot_frames: 0,
            snapshots: 0,
        });
        (self.edges.len() - 1, relay)
    }

    fn sink(&mut self, local: &MemRegion, relay: bool) -> (Box<dyn RegionSink>, Option<usize>) {
        if !relay {
            return (Box::new(local.clone()), None);
        }
        let r = RelaySink::new(Box::new(local.clone()), self.pcfg.encoder(0)).unwrap();
        self.encoders.push(r.encoder());
        (Box::new(r), Some(self.encoders.len() - 1))
    }

    /// The mirror of edge `i` reconnects (new publisher session, in-flight frames lost).
    fn reconnect(&mut self, i: usize) {
        let publ = self.session(self.edges[i].up);
        let e = &mut self.edges[i];
        e.publ = publ;
        e.to_mirror.clear();
        e.to_pub.clear();
        e.mirror.connect();
    }

    /// The relay process of edge `i` restarts: a new mirror state machine
    /// and a new encoder over the same local region (its republished
    /// encoder index stays the same); every edge it serves reconnects.
    fn restart_relay(&mut self, i: usize) {
        let relay = self.edges[i].relay.expect("a relay edge");
        let local = self.edges[i].local.clone();
        let r = RelaySink::new(Box::new(local), self.pcfg.encoder(0)).unwrap();
        self.encoders[relay] = r.encoder();
        let sub = Subscription::whole();
        let check = self.edges[i].mirror.stats().hash_matches > 0;
        self.edges[i].sink = Box::new(r);
        self.edges[i].mirror = MirrorSession::new(mcfg(check), sub);
        self.reconnect(i);
        for j in 0..self.edges.len() {
            if self.edges[j].up == relay {
                self.reconnect(j);
            }
        }
    }

    /// Mirror `i` misses `rounds` rounds of `writes` writes (its edge is
    /// stalled meanwhile, the others keep up).
    fn miss(&mut self, i: usize, rounds: usize, writes: usize) {
        self.edges[i].stalled = true;
        for _ in 0..rounds {
            self.writes(writes);
            self.tick();
        }
        self.edges[i].stalled = false;
    }

    fn writes(&mut self, n: usize) {
        for _ in 0..n {
            let len = 1 + self.rng.below(64) as usize;
            let off = self.rng.below((SIZE - len) as u64) as usize;
            let byte = self.rng.next() as u8;
            self.origin.write_at(off, &vec![byte; len]);
        }
    }

    fn tick(&mut self) {
        self.step += 1;
        let now = self.now();
        write(&self.encoders[0]).step(&self.origin, now.wall_ns).unwrap();
        for i in 0..self.edges.len() {
            let loss = self.loss;
            let e = &mut self.edges[i];
            e.publ.handle_timeout(now.mono);
            e.mirror.handle_timeout(now.mono);
            {
                let enc = read(&self.encoders[e.up]);
                for _ in 0..8 {
                    let mut f = Vec::new();
                    if !e.publ.poll_transmit(&enc, now, &mut f).unwrap() {
                        break;
                    }
                    if !f.is_empty() && !self.rng.chance(loss) {
                        e.to_mirror.push_back(f);
                    }
                }
            }
            let mut f = Vec::new();
            while e.mirror.poll_transmit(&mut f) {
                if !self.rng.chance(loss) {
                    e.to_pub.push_back(std::mem::take(&mut f));
                }
                f.clear();
            }
            while !e.stalled
                && let Some(f) = e.to_mirror.pop_front()
            {
                let (frame, n) = Frame::decode(&f).unwrap();
                if let Frame::Update(u) = &frame
                    && u.flags & FLAG_SNAPSHOT != 0
                {
                    e.snapshot_frames += 1;
                    e.snapshots += (u.part == 0) as u64;
                }
                e.mirror.handle_frame(&frame, &mut *e.sink, n, now).unwrap();
            }
            while let Some(f) = e.to_pub.pop_front() {
                let (frame, n) = Frame::decode(&f).unwrap();
                e.publ.handle_frame(&frame, &read(&self.encoders[e.up]), n).unwrap();
            }
            e.mirror.poll_verify(&*e.sink, 64, now.mono).unwrap();
        }
    }

    /// Edge `i`'s subscribed local bytes equal the origin's (blake3).
    fn converged(&self, i: usize) -> bool {
        let e = &self.edges[i];
        let Some(c) = e.mirror.compiled() else { return false };
        let data = self.origin.to_vec();
        let mut want = blake3::Hasher::new();
        for r in c.runs() {
            want.update(&data[r.src as usize..(r.src + r.len) as usize]);
        }
        let local = e.local.to_vec();
        let mut got = blake3::Hasher::new();
        for r in c.runs() {
            got.update(&local[r.dst as usize..(r.dst + r.len) as usize]);
        }
        want.finalize() == got.finalize()
    }

    fn all_converged(&self) -> bool {
        (0..self.edges.len()).all(|i| self.edges[i].stalled || (self.converged(i) && self.edges[i].publ.is_idle()))
    }

    fn run_until_converged(&mut self, max_ticks: u64) {
        for _ in 0..max_ticks {
            self.tick();
            if self.all_converged() {
                return;
            }
        }
        let st: Vec<_> = self.edges.iter().map(|e| (e.mirror.stats().clone(), e.publ.is_idle())).collect();
        panic!("did not converge in {max_ticks} ticks: {st:#?}");
    }
}

#[test]
fn one_encoder_serves_every_mirror_once_per_version() {
    let mut net = Net::new(1, 7, PublisherConfig::default(), 0);
    let subs = [
        Subscription::whole(),
        Subscription::range(1000, 5000, 100).with(Part::Range { src: 9000, len: 3000, dst: 6000 }),
        Subscription::slice(0, Dtype::F64, &[32, 64], &[3..20, 8..40], 64),
    ];
    for (k, sub) in subs.iter().enumerate() {
        net.add(0, sub.clone(), k != 1, false);
    }
    net.run_until_converged(200);
    let before = read(&net.encoders[0]).stats().deltas;
    for _ in 0..20 {
        net.writes(5);
        net.run_until_converged(200);
    }
    // One delta per region version, whatever the number of mirrors.
    assert_eq!(read(&net.encoders[0]).stats().deltas - before, 20);
    for e in &net.edges {
        assert_eq!(e.snapshots, 1, "only the initial snapshot");
        assert_eq!(e.mirror.stats().hash_mismatches, 0);
    }
    assert!(net.edges[0].mirror.stats().hash_matches > 0);
    assert!(net.edges[2].mirror.stats().hash_matches > 0);
}

#[test]
fn resume_within_backlog_sends_no_snapshot() {
    for sub in [Subscription::whole(), Subscription::range(3000, 20_000, 0)] {
        let mut net = Net::new(2, 7, PublisherConfig::default(), 0);
        net.add(0, sub, true, false);
        net.writes(10);
        net.run_until_converged(200);
        let matches = net.edges[0].mirror.stats().hash_matches;
        // Disconnect; the region moves on meanwhile (well within the backlog).
        net.miss(0, 10, 3);
        net.edges[0].snapshot_frames = 0;
        net.reconnect(0);
        net.run_until_converged(300);
        let e = &net.edges[0];
        assert_eq!(e.snapshot_frames, 0, "resumed from the backlog");
        assert_eq!(e.publ.stats(net.now().mono, 0).resumed, 1);
        // Verified by the integrity check at the resumed-to seq.
        for _ in 0..20 {
            net.tick();
        }
        let st = net.edges[0].mirror.stats().clone();
        assert!(st.hash_matches > matches, "{st:?}");
        assert_eq!(st.hash_mismatches, 0);
    }
}

#[test]
fn resume_without_changes_is_verified_too() {
    let mut net = Net::new(3, 7, PublisherConfig::default(), 0);
    net.add(0, Subscription::whole(), true, false);
    net.writes(10);
    net.run_until_converged(200);
    let matches = net.edges[0].mirror.stats().hash_matches;
    net.reconnect(0);
    net.edges[0].snapshot_frames = 0;
    for _ in 0..30 {
        net.tick();
    }
    assert_eq!(net.edges[0].snapshot_frames, 0);
    assert!(net.edges[0].mirror.stats().hash_matches > matches);
}

#[test]
fn resume_past_backlog_gets_one_snapshot() {
    let pcfg = PublisherConfig { backlog_bytes: 2048, ..Default::default() };
    let mut net = Net::new(4, 7, pcfg, 0);
    net.add(0, Subscription::whole(), true, false);
    net.run_until_converged(200);
    net.miss(0, 50, 5); // ~50 deltas of ~200 bytes: far more than 2 KiB
    net.edges[0].snapshots = 0;
    net.reconnect(0);
    net.run_until_converged(300);
    let e = &net.edges[0];
    assert_eq!(e.snapshots, 1, "fell out of the backlog: exactly one snapshot");
    assert_eq!(e.publ.stats(net.now().mono, 0).resumed, 0);
}

#[test]
fn stalled_mirror_never_stalls_the_others() {
    let pcfg = PublisherConfig { max_in_flight: 4096, backlog_bytes: 8192, ..Default::default() };
    let mut net = Net::new(5, 7, pcfg, 0);
    for _ in 0..3 {
        net.add(0, Subscription::whole(), false, false);
    }
    net.add(0, Subscription::slice(0, Dtype::U32, &[64, 128], &[10..50, 0..64], 0), false, false);
    net.run_until_converged(200);
    net.edges[1].stalled = true;
    for _ in 0..60 {
        net.writes(4);
        // The others catch up within a few ticks of every write.
        for _ in 0..5 {
            net.tick();
        }
        for i in [0, 2, 3] {
            assert!(net.converged(i), "mirror {i} waited for the stalled one");
        }
    }
    // The stalled one holds at most its in-flight cap plus one update.
    let st = net.edges[1].publ.stats(net.now().mono, 0);
    assert!(st.in_flight_bytes <= 4096 + SIZE as u64 + 4096, "{}", st.in_flight_bytes);
    // Once it reads again it converges (merged catch-up or a snapshot).
    net.edges[1].stalled = false;
    net.run_until_converged(500);
}

#[test]
fn slow_mirror_gets_merged_catch_up() {
    let mut net = Net::new(6, 7, PublisherConfig { max_in_flight_updates: 1, ..Default::default() }, 0);
    net.add(0, Subscription::range(100, 20_000, 0), true, false);
    net.run_until_converged(200);
    for round in 0..30 {
        net.writes(3);
        net.edges[0].stalled = round % 5 != 0; // reads one tick in five
        net.tick();
    }
    net.edges[0].stalled = false;
    net.run_until_converged(300);
    let e = &net.edges[0];
    assert_eq!(e.snapshots, 1, "caught up from the backlog, no resync");
    assert!(e.mirror.stats().updates_applied < 30, "conflated: {}", e.mirror.stats().updates_applied);
    assert_eq!(e.mirror.stats().hash_mismatches, 0);
}

/// origin -> relay 1 -> relay 2 -> two leaves (whole, and a slice).
fn chain(seed: u64, loss: u64) -> Net {
    let pcfg =
        PublisherConfig { ack_timeout: Some(Duration::from_millis(30)), frame_payload: 700, ..Default::default() };
    let mut net = Net::new(seed, 7, pcfg, loss);
    let (_, r1) = net.add(0, Subscription::whole(), seed % 2 == 0, true);
    let (_, r2) = net.add(r1.unwrap(), Subscription::whole(), true, true);
    net.add(r2.unwrap(), Subscription::whole(), true, false);
    net.add(r2.unwrap(), Subscription::slice(0, Dtype::F64, &[32, 64], &[3..20, 8..40], 64), true, false);
    net
}

#[test]
fn lossy_three_level_relay_chain_converges_blake3_equal() {
    for seed in 1..=4u64 {
        let mut net = chain(seed, 5);
        for _ in 0..200 {
            net.writes(2);
            net.tick();
        }
        net.run_until_converged(3000);
        for e in &net.edges {
            assert_eq!(e.mirror.applied().unwrap().epoch, 7, "the origin's epoch end to end");
            assert_eq!(e.mirror.stats().hash_mismatches, 0, "seed {seed}");
        }
        // Seqs are preserved end to end too.
        let seq = read(&net.encoders[0]).version();
        assert!(net.edges.iter().all(|e| e.mirror.applied().unwrap().seq == seq));
    }
}

#[test]
fn relay_restart_keeps_downstream_consistent() {
    // Case 1: the origin did not move while the relay was down: the leaf
    // resumes (its (epoch, seq) is still the relay's), no snapshot.
    let mut net = chain(8, 0);
    net.writes(10);
    net.run_until_converged(500);
    net.restart_relay(1);
    for i in 2..4 {
        net.edges[i].snapshot_frames = 0;
    }
    net.run_until_converged(500);
    for i in 2..4 {
        assert_eq!(net.edges[i].snapshot_frames, 0, "leaf {i} resumed");
        assert_eq!(net.edges[i].publ.stats(net.now().mono, 0).resumed, 1);
    }
    // Case 2: the origin moved on: the relay comes back at a newer seq with
    // an empty backlog, so the leaves get a snapshot; still blake3-equal.
    net.restart_relay(1);
    for _ in 0..20 {
        net.writes(3);
        net.tick();
    }
    net.run_until_converged(500);
    for e in &net.edges {
        assert_eq!(e.mirror.stats().hash_mismatches, 0);
    }
}

#[test]
fn origin_epoch_change_goes_through_relays() {
    let mut net = chain(9, 0);
    net.writes(10);
    net.run_until_converged(500);
    // The origin restarts: a new incarnation (epoch 9) of the same region.
    let enc = RegionEncoder::from_region(9, &net.origin, net.pcfg.encoder(0)).unwrap();
    *write(&net.encoders[0]) = enc;
    net.reconnect(0);
    net.writes(5);
    net.run_until_converged(800);
    for e in &net.edges {
        assert_eq!(e.mirror.applied().unwrap().epoch, 9, "new epoch reached every level");
    }
}

#[test]
fn resume_from_an_unknown_position_gets_a_snapshot() {
    // A mirror offering a position that is not (or no longer) in the chain,
    // or of another epoch, is never sent a delta on a wrong base.
    for (epoch, seq) in [(7, 1), (7, u64::MAX), (6, 0), (8, 2)] {
        let mut net = Net::new(10, 7, PublisherConfig::default(), 0);
        net.writes(20);
        net.tick();
        net.add(0, Subscription::whole(), true, false);
        // Fake a history: the mirror believes it applied (epoch, seq).
        let hello = venom_net::proto::frame::Hello {
            mirror_id: 0,
            region_id: 0,
            check_hash: true,
            subscription: Subscription::whole(),
            resume: Some(venom_net::proto::frame::Resume { epoch, seq }),
        };
        let now = net.now();
        let enc = read(&net.encoders[0]);
        let e = &mut net.edges[0];
        e.publ.handle_frame(&Frame::Hello(hello), &enc, 0).unwrap();
        let mut out = Vec::new();
        while e.publ.poll_transmit(&enc, now, &mut out).unwrap() && out.len() < 64 {}
        let (f, n) = Frame::decode(&out).unwrap();
        assert!(matches!(f, Frame::Welcome(_)));
        let (f, _) = Frame::decode(&out[n..]).unwrap();
        let Frame::Update(u) = f else { panic!("expected an update") };
        assert_ne!(u.flags & FLAG_SNAPSHOT, 0, "({epoch}, {seq}) must get a snapshot");
        assert_eq!(e.publ.stats(now.mono, 0).resumed, 0);
    }
}

#[test]
fn a_mirror_waiting_for_a_snapshot_does_not_resume() {
    let mut net = Net::new(11, 7, PublisherConfig::default(), 0);
    net.add(0, Subscription::whole(), false, false);
    net.writes(10);
    net.run_until_converged(200);
    // Something else wrote to the local region: the application asks for a
    // snapshot, and the connection drops before it arrives.
    net.edges[0].local.write_at(100, b"garbage");
    let now = net.now().mono;
    net.edges[0].mirror.request_snapshot(now);
    net.edges[0].snapshots = 0;
    net.reconnect(0);
    net.run_until_converged(300);
    assert_eq!(net.edges[0].snapshots, 1, "no resume from untrusted bytes");
    assert_eq!(net.edges[0].publ.stats(net.now().mono, 0).resumed, 0);
}
