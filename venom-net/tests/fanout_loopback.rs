//! Fan-out over real QUIC on loopback: one publisher, several mirrors and a
//! relay (MirrorConfig::relay + Publisher::bind_relay) with leaves of its
//! own; everyone converges blake3-equal, with the origin's epoch and seqs.

mod common;

use common::*;
use std::time::Duration;
use venom_net::io::{Mirror, Publisher};
use venom_net::*;

const T: Duration = Duration::from_secs(20);

#[test]
fn publisher_with_mirrors_and_a_relay_converges() {
    runtime().block_on(async {
        let dev = Dev::new();
        let size = 1 << 20;
        let region = MemRegion::new(size, 16 << 10);
        let p = publish(&region, dev.server(), PublisherConfig::default()).await;
        let addr = p.local_addr().unwrap();
        let whole = Subscription::whole();
        let range = Subscription::range(100_000, 300_000, 0);
        // Three direct mirrors (two whole, one range)...
        let locals: Vec<MemRegion> = (0..3).map(|_| MemRegion::new(size, 16 << 10)).collect();
        let direct: Vec<Mirror> = locals
            .iter()
            .enumerate()
            .map(|(i, l)| mirror(addr, if i == 2 { range.clone() } else { whole.clone() }, dev.client(), l, i == 0))
            .collect();
        // ...and a relay republishing its copy to two leaves.
        let relay_local = MemRegion::new(size, 16 << 10);
        let cfg = MirrorConfig { check_hash: true, relay: Some(EncoderConfig::default()), ..Default::default() };
        let relay = Mirror::connect(addr, "localhost", whole.clone(), dev.client(), Box::new(relay_local.clone()), cfg)
            .unwrap();
        let rp = Publisher::bind_relay(loopback(), &relay, dev.server(), PublisherConfig::default()).await.unwrap();
        let leaves: Vec<MemRegion> = (0..2).map(|_| MemRegion::new(size, 16 << 10)).collect();
        let leaf_mirrors: Vec<Mirror> =
            leaves.iter().map(|l| mirror(rp.local_addr().unwrap(), whole.clone(), dev.client(), l, true)).collect();
        let r = region.clone();
        tokio::task::spawn_blocking(move || random_writes(&r, 11, Duration::from_millis(300))).await.unwrap();
        for (i, l) in locals.iter().enumerate() {
            converge(&region, if i == 2 { &range } else { &whole }, l, T).await;
        }
        converge(&region, &whole, &relay_local, T).await;
        for l in &leaves {
            converge(&region, &whole, l, T).await;
        }
        // Same epoch end to end, and the relay serves the origin's seqs.
        eventually(T, "leaves at the origin's version", || {
            let v = RegionSource::version(&region);
            leaf_mirrors.iter().all(|m| m.applied().is_some_and(|a| a.epoch == p.epoch() && a.seq == v))
        })
        .await;
        assert_eq!(rp.epoch(), p.epoch());
        // Encode once: one delta per encoded version, shared by every session.
        let st = p.encoder_stats();
        assert!(st.deltas > 0 && st.backlog.bytes <= st.backlog.capacity.max(st.backlog.bytes));
        assert!(p.stats().len() == 4, "three mirrors and the relay");
        assert!(leaf_mirrors.iter().all(|m| m.stats().hash_mismatches == 0));
        // A leaf that reconnects within the backlog window resumes: no snapshot.
        let before = leaf_mirrors[0].stats().snapshots_applied;
        rp.disconnect_all();
        let r = region.clone();
        tokio::task::spawn_blocking(move || random_writes(&r, 12, Duration::from_millis(50))).await.unwrap();
        for l in &leaves {
            converge(&region, &whole, l, T).await;
        }
        eventually(T, "leaves reconnected", || leaf_mirrors.iter().all(|m| m.stats().connections >= 2)).await;
        assert_eq!(leaf_mirrors[0].stats().snapshots_applied, before, "resumed from the relay's backlog");
        assert!(rp.stats().iter().all(|s| s.resumed == 1), "{:?}", rp.stats());
        drop(leaf_mirrors);
        drop(direct);
        rp.close().await;
        relay.close().await;
        p.close().await;
    });
}
