//! End-to-end tests over real quinn endpoints on loopback.

mod common;
use common::*;
use std::time::Duration;
use venom_net::*;

const T: Duration = Duration::from_secs(20);

/// Random-write soak (300 ms; 60 s with VENOM_SOAK=1) with whole-region,
/// range and n-D slice mirrors of one publisher, one of them hash-checked.
#[test]
fn soak_whole_range_and_slice_converge() {
    runtime().block_on(async {
        let dev = Dev::new();
        let region = MemRegion::new(256 * 256 * 8, 4096);
        let p = publish(&region, dev.server(), PublisherConfig::default()).await;
        let addr = p.local_addr().unwrap();
        let subs = [
            (Subscription::whole(), 256 * 256 * 8),
            (Subscription::range(1000, 70_000, 0).with(Part::Range { src: 300_000, len: 5000, dst: 80_000 }), 90_000),
            (Subscription::slice(0, Dtype::F64, &[256, 256], &[10..20, 0..64], 128), 128 + 10 * 64 * 8),
        ];
        let mut mirrors = Vec::new();
        for (i, (sub, size)) in subs.iter().enumerate() {
            let local = MemRegion::new(*size, 4096);
            mirrors.push((mirror(addr, sub.clone(), dev.client(), &local, i == 0), local, sub.clone()));
        }
        let r = region.clone();
        let writes =
            tokio::task::spawn_blocking(move || random_writes(&r, 42, soak_duration(Duration::from_millis(300))));
        let writes = writes.await.unwrap();
        for (m, local, sub) in &mirrors {
            converge(&region, sub, local, T).await;
            eventually(T, "stats of the applied update", || m.stats().snapshots_applied >= 1).await;
            let st = m.stats();
            assert_eq!(st.hash_mismatches, 0);
            assert!(st.snapshots_applied >= 1);
            assert!(st.updates_applied <= writes + 1, "conflation never sends more updates than writes");
        }
        eventually(T, "a blake3 check", || mirrors[0].0.stats().hash_matches > 0).await;
        let stats = p.stats();
        assert_eq!(stats.len(), 3);
        assert!(stats.iter().all(|s| s.bytes_sent > 0));
        p.close().await;
    });
}

/// The same over venom-core SeqRegions (named shared memory on both sides).
#[test]
fn seq_region_to_seq_region() {
    use venom_core::{RegionConfig, SeqReader, SeqWriter};
    let pub_name = venom_core::testkit::unique_name("net-pub");
    let mir_name = venom_core::testkit::unique_name("net-mir");
    let mut w = SeqWriter::create(&pub_name, RegionConfig::new(1 << 20).chunk_size(16 << 10)).unwrap();
    runtime().block_on(async {
        let dev = Dev::new();
        let src = std::sync::Arc::new(SeqReader::open(&pub_name).unwrap());
        let p = io::Publisher::bind(loopback(), src, dev.server(), PublisherConfig::default()).await.unwrap();
        let m = io::Mirror::connect_named(
            p.local_addr().unwrap(),
            "localhost",
            Subscription::whole(),
            dev.client(),
            &mir_name,
            1 << 20,
            MirrorConfig { check_hash: true, ..Default::default() },
        )
        .unwrap();
        // Local processes read the mirror with the ordinary venom-core reader.
        let local_reader = SeqReader::open(&mir_name).unwrap();
        let mut updates = m.updates();
        for i in 0..50u64 {
            w.write_at((i as usize * 7919) % ((1 << 20) - 8), &i.to_le_bytes()).unwrap();
        }
        let target = w.version();
        let deadline = tokio::time::Instant::now() + T;
        while m.applied().map(|a| a.seq) != Some(target) {
            assert!(tokio::time::Instant::now() < deadline, "mirror stuck at {:?}", m.applied());
            let _ = tokio::time::timeout(Duration::from_millis(100), updates.next()).await;
        }
        let mut a = vec![0u8; 1 << 20];
        let mut b = vec![0u8; 1 << 20];
        w.read_at(0, &mut a).unwrap();
        local_reader.read_at(0, &mut b).unwrap();
        assert_eq!(blake3::hash(&a), blake3::hash(&b));
        assert_eq!(m.stats().hash_mismatches, 0);
        m.close().await;
        p.close().await;
        local_reader.segment().unlink().unwrap();
    });
    w.unlink().unwrap();
}

/// Publisher restart on the same address: the mirror reconnects, sees a new
/// epoch and converges; a connection cut mid-stream also converges.
#[test]
fn publisher_restart_and_connection_cut_converge() {
    runtime().block_on(async {
        let dev = Dev::new();
        let region = MemRegion::new(4 << 20, 64 << 10);
        let p = publish(&region, dev.server(), PublisherConfig::default()).await;
        let addr = p.local_addr().unwrap();
        let local = MemRegion::new(4 << 20, 64 << 10);
        let sub = Subscription::whole();
        let m = mirror(addr, sub.clone(), dev.client(), &local, false);
        let r = region.clone();
        let writer = tokio::task::spawn_blocking(move || random_writes(&r, 7, Duration::from_millis(400)));
        // Cut connections while the writer runs.
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(80)).await;
            p.disconnect_all();
        }
        writer.await.unwrap();
        converge(&region, &sub, &local, T).await;
        // (bytes can match a moment before the shell records the applied update)
        let epoch1 = m.wait_until(T, |_, _| true).unwrap().epoch;
        assert!(m.stats().connections >= 2, "reconnected after the cuts: {:?}", m.stats());
        // Restart the publisher on the same port.
        p.close().await;
        random_writes(&region, 8, Duration::from_millis(50));
        let p2 =
            io::Publisher::bind(addr, std::sync::Arc::new(region.clone()), dev.server(), PublisherConfig::default())
                .await
                .unwrap();
        converge(&region, &sub, &local, T).await;
        m.wait_until(T, |_, a| a.epoch == p2.epoch()).ok();
        let a = m.applied().unwrap();
        assert_ne!(a.epoch, epoch1, "new epoch after restart");
        p2.close().await;
    });
}

/// A slow mirror (every apply takes 20 ms) conflates: it converges with far
/// fewer updates than writes, and the fast mirror of the same publisher
/// converges too (no timing assertions: rates are benchmarked, not tested).
#[test]
fn slow_mirror_conflates_and_converges() {
    struct Slow(MemRegion);
    impl RegionSink for Slow {
        fn size(&self) -> usize {
            RegionSink::size(&self.0)
        }
        fn apply(&mut self, w: &[(usize, &[u8])]) -> Result<u64> {
            std::thread::sleep(Duration::from_millis(20));
            self.0.apply(w)
        }
        fn read_at(&self, o: usize, b: &mut [u8]) -> Result<()> {
            self.0.read_at(o, b)
        }
    }
    runtime().block_on(async {
        let dev = Dev::new();
        let region = MemRegion::new(1 << 20, 16 << 10);
        let p = publish(&region, dev.server(), PublisherConfig::default()).await;
        let addr = p.local_addr().unwrap();
        let (slow_local, fast_local) = (MemRegion::new(1 << 20, 16 << 10), MemRegion::new(1 << 20, 16 << 10));
        let sub = Subscription::whole();
        // The slow mirror runs on its own runtime, as it would on its own host.
        let slow_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let guard = slow_rt.enter();
        let slow = io::Mirror::connect(
            addr,
            "localhost",
            sub.clone(),
            dev.client(),
            Box::new(Slow(slow_local.clone())),
            MirrorConfig::default(),
        )
        .unwrap();
        drop(guard);
        let fast = mirror(addr, sub.clone(), dev.client(), &fast_local, false);
        let r = region.clone();
        let writes =
            tokio::task::spawn_blocking(move || random_writes(&r, 9, Duration::from_millis(400))).await.unwrap();
        converge(&region, &sub, &fast_local, T).await;
        converge(&region, &sub, &slow_local, T).await;
        let (s, f) = (slow.stats(), fast.stats());
        assert!(
            s.updates_applied < writes / 4,
            "slow mirror conflated: {} updates for {writes} writes",
            s.updates_applied
        );
        assert!(f.updates_applied >= 1 && f.hash_mismatches == 0);
        p.close().await;
        drop(slow);
        slow_rt.shutdown_background();
    });
}

/// `request_snapshot` repairs a local region that something else modified.
#[test]
fn requested_snapshot_repairs_the_local_region() {
    runtime().block_on(async {
        let dev = Dev::new();
        let region = MemRegion::new(1 << 20, 16 << 10);
        region.write_at(5000, b"payload");
        let p = publish(&region, dev.server(), PublisherConfig::default()).await;
        let local = MemRegion::new(1 << 20, 16 << 10);
        let sub = Subscription::whole();
        let m = mirror(p.local_addr().unwrap(), sub.clone(), dev.client(), &local, false);
        converge(&region, &sub, &local, T).await;
        local.write_at(5000, b"garbage");
        m.request_snapshot();
        converge(&region, &sub, &local, T).await;
        eventually(T, "the second snapshot", || m.stats().snapshots_applied == 2).await;
        assert_eq!(m.stats().connections, 1, "over the same connection");
        p.close().await;
    });
}
