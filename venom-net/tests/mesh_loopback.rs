//! A 4-peer mesh on loopback: convergence (blake3-equal everywhere) and
//! ownership enforcement.

use std::sync::Arc;
use std::time::{Duration, Instant};
use venom_core::testkit;
use venom_net::io::Publisher;
use venom_net::mesh::{MeshConfig, MeshLayout, MeshPeer, MeshTls};
use venom_net::proto::policy::Policy;
use venom_net::tls::{CertificateAuthority, ServerTls};
use venom_net::{Dtype, Error, MemRegion, PublisherConfig};

const IDS: [&str; 4] = ["a", "b", "c", "d"];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

async fn start(ca: &CertificateAuthority, mesh: &str, layout: &MeshLayout) -> Vec<MeshPeer> {
    let mut peers = Vec::new();
    for id in IDS {
        let cfg = MeshConfig {
            mesh: mesh.into(),
            layout: layout.clone(),
            me: id.into(),
            listen: "127.0.0.1:0".parse().unwrap(),
            tls: MeshTls::issue(ca, id).unwrap(),
        };
        peers.push(MeshPeer::start(cfg).await.unwrap());
    }
    peers
}

fn write_counter(p: &MeshPeer, base: u32) {
    let mine = p.own_array::<u32>().unwrap();
    let vals: Vec<u32> = (0..mine.len() as u32).map(|i| base.wrapping_mul(1_000_003).wrapping_add(i)).collect();
    p.write(p.id(), |w| w.write_all(&mine, &vals)).unwrap();
}

/// Waits (async) until every peer's whole array has the same blake3 and it is not all zero.
async fn converged(peers: &[MeshPeer], timeout: Duration) -> [u8; 32] {
    let start = Instant::now();
    let zero = *blake3::hash(&vec![0u8; peers[0].layout().whole_len()]).as_bytes();
    loop {
        let hashes: Vec<[u8; 32]> = peers.iter().map(|p| p.whole_hash().unwrap()).collect();
        if hashes.iter().all(|h| *h == hashes[0] && *h != zero) {
            return hashes[0];
        }
        assert!(start.elapsed() < timeout, "mesh did not converge within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn four_peers_converge_under_concurrent_writes() {
    let rt = runtime();
    rt.block_on(async {
        let ca = CertificateAuthority::new("mesh-ca").unwrap();
        let layout = MeshLayout::quadrants(Dtype::U32, 64, 64, IDS).unwrap();
        let peers = start(&ca, &testkit::unique_name("mesh4"), &layout).await;
        // Link in a scrambled order: links made before the owner writes, and after.
        for (i, p) in peers.iter().enumerate().rev() {
            for (j, q) in peers.iter().enumerate() {
                if i != j {
                    p.link(q.id(), q.local_addr().unwrap()).unwrap();
                }
            }
        }
        for round in 1..=20u32 {
            for p in &peers {
                write_counter(p, round * 7 + p.layout().part_of(p.id()).unwrap() as u32);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let h = converged(&peers, Duration::from_secs(20)).await;
        // Every peer holds every owner's last write, placed at the owner's quadrant.
        let whole = peers[0].read_whole().unwrap();
        assert_eq!(*blake3::hash(&whole).as_bytes(), h);
        let words = peers[0].read_whole_as::<u32>().unwrap();
        assert!(peers[0].read_whole_as::<f32>().is_err());
        assert_eq!(words[0], 20 * 7 * 1_000_003); // a's part, element 0, round 20
        assert_eq!(words[63 * 64 + 63], (20u32 * 7 + 3).wrapping_mul(1_000_003).wrapping_add(32 * 32 - 1));
        // Part updates are applied in the owner's order: applied seq == owner's region version.
        for p in &peers {
            for q in &peers {
                if p.id() != q.id() {
                    let a = p.applied(q.id()).unwrap().unwrap();
                    assert_eq!(a.seq, q.part_region(q.id()).unwrap().version());
                }
            }
        }
        for p in peers {
            p.close().await;
        }
    });
}

#[test]
fn writes_to_parts_a_peer_does_not_own_are_refused() {
    let rt = runtime();
    rt.block_on(async {
        let ca = CertificateAuthority::new("mesh-ca").unwrap();
        let layout = MeshLayout::quadrants(Dtype::U32, 16, 16, IDS).unwrap();
        let peers = start(&ca, &testkit::unique_name("meshown"), &layout).await;
        let (a, b, d) = (&peers[0], &peers[1], &peers[3]);
        // Locally: a may not write b's part, and may not link to its own part.
        assert!(matches!(a.write("b", |_| Ok(())), Err(Error::NotOwner { .. })));
        assert!(matches!(a.link("a", b.local_addr().unwrap()), Err(Error::NotOwner { .. })));
        // Remotely: d (a valid mesh member, but not b) answers where a expects b.
        write_counter(d, 9);
        write_counter(b, 5);
        a.link("b", d.local_addr().unwrap()).unwrap();
        // c gets b's part from b itself.
        let c = &peers[2];
        c.link("b", b.local_addr().unwrap()).unwrap();
        let ok = testkit::wait_for(Duration::from_secs(10), || a.link_error("b").unwrap().is_some());
        assert!(ok, "the impostor was not refused");
        let err = a.link_error("b").unwrap().unwrap();
        eprintln!("link to b refused: {err}");
        assert!(err.contains("certificate") || err.contains("Certificate"), "{err}");
        assert!(a.applied("b").unwrap().is_none());
        let mut part = vec![0u8; layout.part_len(1)];
        a.part_region("b").unwrap().read_at(0, &mut part).unwrap();
        assert!(part.iter().all(|&x| x == 0), "d's bytes reached a's copy of b's part");
        testkit::wait_for(Duration::from_secs(10), || c.applied("b").unwrap().is_some());
        let (mut mine, mut theirs) = (vec![0u8; part.len()], vec![0u8; part.len()]);
        b.part_region("b").unwrap().read_at(0, &mut mine).unwrap();
        c.part_region("b").unwrap().read_at(0, &mut theirs).unwrap();
        assert_eq!(mine, theirs);
        for p in peers {
            p.close().await;
        }
    });
}

#[test]
fn an_owner_serving_more_than_its_part_is_disconnected() {
    let rt = runtime();
    rt.block_on(async {
        let ca = CertificateAuthority::new("mesh-ca").unwrap();
        let layout = MeshLayout::quadrants(Dtype::U8, 16, 16, IDS).unwrap();
        let cfg = MeshConfig {
            mesh: testkit::unique_name("meshbig"),
            layout: layout.clone(),
            me: "a".into(),
            listen: "127.0.0.1:0".parse().unwrap(),
            tls: MeshTls::issue(&ca, "a").unwrap(),
        };
        let a = MeshPeer::start(cfg).await.unwrap();
        // A publisher with b's genuine certificate, serving a region bigger than b's part.
        let b_id = MeshTls::issue(&ca, "b").unwrap();
        let region = MemRegion::new(layout.part_len(1) * 2, 64);
        region.write_at(0, &[0xAB; 128]);
        let tls = ServerTls::mutual(&b_id.identity, &b_id.ca_roots).unwrap();
        let pcfg = PublisherConfig { policy: Arc::new(Policy::allow_all()), ..PublisherConfig::default() };
        let rogue = Publisher::bind("127.0.0.1:0".parse().unwrap(), Arc::new(region), tls, pcfg).await.unwrap();
        a.link("b", rogue.local_addr().unwrap()).unwrap();
        let ok = testkit::wait_for(Duration::from_secs(10), || a.link_error("b").unwrap().is_some());
        assert!(ok, "the oversized part was not refused");
        let err = a.link_error("b").unwrap().unwrap();
        eprintln!("link to b refused: {err}");
        assert!(err.contains("outside") || err.contains("protocol"), "{err}");
        let mut part = vec![0u8; layout.part_len(1)];
        a.part_region("b").unwrap().read_at(0, &mut part).unwrap();
        assert!(part.iter().all(|&x| x == 0));
        rogue.close().await;
        a.close().await;
    });
}

/// No relaying: a peer's publisher serves exactly its own part, so nobody
/// can get (stale or fresh) copies of other parts from it.
#[test]
fn a_peer_serves_only_its_own_part() {
    let rt = runtime();
    rt.block_on(async {
        let ca = CertificateAuthority::new("mesh-ca").unwrap();
        let layout = MeshLayout::quadrants(Dtype::U32, 16, 16, IDS).unwrap();
        let peers = start(&ca, &testkit::unique_name("meshsrv"), &layout).await;
        let (a, b) = (&peers[0], &peers[1]);
        b.link("a", a.local_addr().unwrap()).unwrap();
        write_counter(a, 3);
        testkit::wait_for(Duration::from_secs(10), || b.applied("a").unwrap().is_some());
        let part = layout.part_len(0) as u64;
        // A CA-signed certificate that is not a mesh peer may not read at all.
        let x = MeshTls::issue(&ca, "x").unwrap();
        let tls = venom_net::tls::ClientTls::mutual(&x.ca_roots, &x.identity).unwrap();
        let local = MemRegion::new(part as usize, 64);
        let cfg = venom_net::MirrorConfig::default();
        let sub = venom_net::Subscription::whole();
        let m = venom_net::io::Mirror::connect(a.local_addr().unwrap(), "a", sub, tls, Box::new(local), cfg).unwrap();
        assert!(testkit::wait_for(Duration::from_secs(10), || m.last_refusal().is_some()));
        assert_eq!(m.last_refusal(), Some(venom_net::proto::admission::Refusal::Unauthorized));
        assert!(m.applied().is_none());
        m.close().await;
        // Peer c (listed, not yet linked) tests what a's publisher serves.
        let c = MeshTls::issue(&ca, "c").unwrap();
        let tls = venom_net::tls::ClientTls::mutual(&c.ca_roots, &c.identity).unwrap();
        // Asking for one byte more than a's part is refused by a's publisher.
        let local = MemRegion::new(2 * part as usize, 64);
        let sub = venom_net::Subscription::range(0, part + 1, 0);
        let cfg = venom_net::MirrorConfig::default();
        let m = venom_net::io::Mirror::connect(
            a.local_addr().unwrap(),
            "a",
            sub,
            tls.clone(),
            Box::new(local.clone()),
            cfg.clone(),
        )
        .unwrap();
        assert!(testkit::wait_for(Duration::from_secs(10), || m.last_error().is_some()));
        assert!(m.applied().is_none());
        m.close().await;
        // The whole published region is exactly a's part, equal to b's copy of it.
        let m = venom_net::io::Mirror::connect(
            a.local_addr().unwrap(),
            "a",
            venom_net::Subscription::whole(),
            tls,
            Box::new(local.clone()),
            cfg,
        )
        .unwrap();
        assert!(testkit::wait_for(Duration::from_secs(10), || m.applied().is_some()));
        let mut theirs = vec![0u8; part as usize];
        b.part_region("a").unwrap().read_at(0, &mut theirs).unwrap();
        assert_eq!(&local.to_vec()[..part as usize], &theirs[..]);
        assert!(local.to_vec()[part as usize..].iter().all(|&x| x == 0));
        m.close().await;
        for p in peers {
            p.close().await;
        }
    });
}
