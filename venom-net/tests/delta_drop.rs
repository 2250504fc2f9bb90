//! Multi-frame deltas over real quinn endpoints: a connection that drops
//! while a delta's frames are still being sent.

mod common;
use common::*;
use std::time::Duration;
use venom_net::*;

const T: Duration = Duration::from_secs(20);
const SIZE: usize = 8 << 20;

/// Multi-frame deltas (4 MiB each, 512 KiB frames), each followed after
/// 0–3 ms by a disconnect of every mirror: the mirror drops the partial
/// update, reconnects, and converges (blake3 of both sides, and its
/// `check_hash` digests match).
#[test]
fn a_multi_frame_delta_survives_a_connection_drop_mid_update() {
    runtime().block_on(async {
        let dev = Dev::new();
        let region = MemRegion::new(SIZE, 64 << 10);
        let p = publish(&region, dev.server(), PublisherConfig::default()).await;
        let local = MemRegion::new(SIZE, 64 << 10);
        let sub = Subscription::whole();
        let m = mirror(p.local_addr().unwrap(), sub.clone(), dev.client(), &local, true);
        region.write_at(0, b"first");
        converge(&region, &sub, &local, T).await;
        let mut rng = Rng(0x5EED);
        for round in 0..4u64 {
            let len = 4 << 20;
            let at = rng.below((SIZE - len) as u64) as usize;
            let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            region.write_at(at, &data);
            tokio::time::sleep(Duration::from_micros(rng.below(3000))).await;
            p.disconnect_all();
            converge(&region, &sub, &local, T).await;
            assert!(m.stats().connections >= round + 2, "round {round}: the mirror reconnected");
        }
        // One more delta over the last connection, verified by digest.
        region.write_at(SIZE - 10, b"last bytes");
        converge(&region, &sub, &local, T).await;
        eventually(T, "a digest check", || m.stats().hash_matches > 0).await;
        assert_eq!(m.stats().hash_mismatches, 0);
        assert!(p.encoder_stats().deltas >= 5);
        p.close().await;
    });
}
