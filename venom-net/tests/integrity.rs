//! `check_hash` over real quinn: digests of a large region are checked in
//! bounded slices and reported in the stats even when the region goes quiet.

mod common;
use common::*;
use std::time::Duration;
use venom_net::*;

#[test]
fn large_region_digests_verify_when_quiet_and_after_writes() {
    runtime().block_on(async {
        let dev = Dev::new();
        let size = 8 << 20; // 512 digest chunks: more than one slice of work on each side
        let region = MemRegion::new(size, 64 << 10);
        for i in 0..64 {
            region.write_at(i * (size / 64) + 7, &[i as u8 + 1; 300]);
        }
        let p = publish(&region, dev.server(), PublisherConfig::default()).await;
        let local = MemRegion::new(size, 64 << 10);
        let m = mirror(p.local_addr().unwrap(), Subscription::whole(), dev.client(), &local, true);
        eventually(Duration::from_secs(20), "a verified digest", || m.stats().hash_matches > 0).await;
        for round in 0..3u8 {
            let before = m.stats().hash_matches;
            region.write_at(size / 2 + round as usize * 20_000, &[round; 64]);
            eventually(Duration::from_secs(20), "a digest after a write", || m.stats().hash_matches > before).await;
        }
        let (a, b) = sides(&region, &Subscription::whole(), &local);
        assert_eq!(a, b);
        let st = m.stats();
        assert_eq!((st.hash_mismatches, st.faults, st.failure), (0, 0, None), "{st:?}");
        m.close().await;
        p.close().await;
    });
}
