//! A 4-peer mesh where peer `d` is a real child process: it is killed with
//! SIGKILL mid-stream, restarted (a new epoch), and the mesh converges again.

use rustls::pki_types::CertificateDer;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use venom_core::{SeqReader, testkit};
use venom_net::Dtype;
use venom_net::mesh::{MeshConfig, MeshLayout, MeshPeer, MeshTls};
use venom_net::tls::{CertificateAuthority, Identity};

const IDS: [&str; 4] = ["a", "b", "c", "d"];

fn layout() -> MeshLayout {
    MeshLayout::quadrants(Dtype::U32, 32, 32, IDS).unwrap()
}

fn config(mesh: &str, me: &str, listen: SocketAddr, tls: MeshTls) -> MeshConfig {
    MeshConfig { mesh: mesh.into(), layout: layout(), me: me.into(), listen, tls }
}

fn write_value(p: &MeshPeer, v: u32) {
    let mine = p.own_array::<u32>().unwrap();
    p.write(p.id(), |w| w.write_all(&mine, &vec![v; mine.len()])).unwrap();
}

/// Peer `d` in a child process. Arg: `dir|mesh|port|addr_a|addr_b|addr_c|incarnation`.
#[test]
fn mesh_peer_child() {
    let Some(arg) = testkit::child_arg("mesh-peer-d") else { return };
    let f: Vec<&str> = arg.split('|').collect();
    let read = |n: &str| std::fs::read(format!("{}/{n}", f[0])).unwrap();
    let identity = Identity::from_der(
        vec![CertificateDer::from(read("d.der")), CertificateDer::from(read("ca.der"))],
        read("d.key"),
    )
    .unwrap();
    let tls = MeshTls { ca_roots: vec![CertificateDer::from(read("ca.der"))], identity };
    let incarnation: u32 = f[6].parse().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let listen: SocketAddr = format!("127.0.0.1:{}", f[2]).parse().unwrap();
        let peer = MeshPeer::start(config(f[1], "d", listen, tls)).await.unwrap();
        for (id, addr) in ["a", "b", "c"].iter().zip(&f[3..6]) {
            peer.link(id, addr.parse().unwrap()).unwrap();
        }
        // Incarnation 1 writes until it is killed; later ones write 30 steps, then idle.
        let steps = if incarnation == 1 { u32::MAX } else { 30 };
        let deadline = Instant::now() + Duration::from_secs(60); // never outlive a stuck parent
        let mut i = 0;
        while Instant::now() < deadline {
            if i < steps {
                i += 1;
                write_value(&peer, incarnation * 1_000_000 + i);
            }
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    });
}

/// The whole array as child `d` sees it, read from its regions in shared memory.
fn whole_of_d(mesh: &str) -> Option<Vec<u8>> {
    let l = layout();
    let mut whole = vec![0u8; l.whole_len()];
    for (k, owner) in IDS.iter().enumerate() {
        let r = SeqReader::open(&format!("{mesh}.d.{owner}")).ok()?;
        let mut buf = vec![0u8; l.part_len(k)];
        r.read_at(0, &mut buf).ok()?;
        l.place(k, &buf, &mut whole);
    }
    Some(whole)
}

fn d_part_on(p: &MeshPeer) -> Vec<u32> {
    let mut buf = vec![0u8; layout().part_len(3)];
    p.part_region("d").unwrap().read_at(0, &mut buf).unwrap();
    buf.chunks_exact(4).map(bytemuck::pod_read_unaligned).collect()
}

async fn converge(peers: &[MeshPeer], mesh: &str, d_last: Option<u32>, timeout: Duration) {
    let start = Instant::now();
    loop {
        let h: Vec<[u8; 32]> = peers.iter().map(|p| p.whole_hash().unwrap()).collect();
        let hd = whole_of_d(mesh).map(|w| *blake3::hash(&w).as_bytes());
        let d_ok = d_last.is_none_or(|v| d_part_on(&peers[0]).iter().all(|&x| x == v));
        if d_ok && h.iter().all(|x| *x == h[0]) && hd == Some(h[0]) {
            return;
        }
        assert!(start.elapsed() < timeout, "mesh did not converge within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn mesh_converges_after_a_peer_is_killed_and_restarted() {
    if testkit::child_arg("mesh-peer-d").is_some() {
        return;
    }
    let dir = std::env::temp_dir().join(testkit::unique_name("venom-mesh-restart"));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = CertificateAuthority::new("mesh-ca").unwrap();
    let d = MeshTls::issue(&ca, "d").unwrap();
    std::fs::write(dir.join("ca.der"), ca.cert().as_ref()).unwrap();
    std::fs::write(dir.join("d.der"), d.identity.cert().as_ref()).unwrap();
    std::fs::write(dir.join("d.key"), d.identity.pkcs8_key_der()).unwrap();
    let d_port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let d_addr: SocketAddr = format!("127.0.0.1:{d_port}").parse().unwrap();
    let mesh = testkit::unique_name("meshrs");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let mut peers = Vec::new();
        for id in ["a", "b", "c"] {
            let cfg = config(&mesh, id, "127.0.0.1:0".parse().unwrap(), MeshTls::issue(&ca, id).unwrap());
            peers.push(MeshPeer::start(cfg).await.unwrap());
        }
        let addrs: Vec<SocketAddr> = peers.iter().map(|p| p.local_addr().unwrap()).collect();
        for p in &peers {
            for (q, addr) in peers.iter().zip(&addrs) {
                if p.id() != q.id() {
                    p.link(q.id(), *addr).unwrap();
                }
            }
            p.link("d", d_addr).unwrap();
            write_value(p, 1);
        }
        let arg = |inc: u32| format!("{}|{mesh}|{d_port}|{}|{}|{}|{inc}", dir.display(), addrs[0], addrs[1], addrs[2]);
        // Incarnation 1: killed while it streams updates.
        let mut child = testkit::spawn_child("mesh_peer_child", "mesh-peer-d", &arg(1)).unwrap();
        let seen = |n: u32| peers.iter().all(|p| d_part_on(p)[0] > 1_000_000 + n);
        let t = Instant::now();
        while !seen(20) {
            assert!(t.elapsed() < Duration::from_secs(20), "d's updates never arrived");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let epoch1 = peers[0].applied("d").unwrap().unwrap().epoch;
        child.kill9();
        // While d is down, the others keep writing.
        for p in &peers {
            write_value(p, 2);
        }
        // Incarnation 2: a new epoch; it must get everyone's latest and everyone must get its part.
        let mut child = testkit::spawn_child("mesh_peer_child", "mesh-peer-d", &arg(2)).unwrap();
        converge(&peers, &mesh, Some(2_000_030), Duration::from_secs(30)).await;
        let epoch2 = peers[0].applied("d").unwrap().unwrap().epoch;
        assert_ne!(epoch1, epoch2, "the restarted peer must publish a new epoch");
        child.kill9();
        for owner in IDS {
            if let Ok(r) = SeqReader::open(&format!("{mesh}.d.{owner}")) {
                let _ = r.segment().unlink();
            }
        }
        for p in peers {
            p.close().await;
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
}
