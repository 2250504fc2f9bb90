//! Demo section `mesh`: four peer processes each own a quadrant of a grid,
//! mirror the other three directly from their owners (mutual TLS, no
//! relaying), and converge to blake3-equal copies.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use venom_core::SeqReader;
use venom_examples::Children;
use venom_net::Dtype;
use venom_net::mesh::{MeshConfig, MeshLayout, MeshPeer, MeshTls};
use venom_net::tls::CertificateAuthority;

const IDS: [&str; 4] = ["a", "b", "c", "d"];
const STEPS: u32 = 50;

fn layout() -> MeshLayout {
    MeshLayout::quadrants(Dtype::U32, 64, 64, IDS).expect("valid layout")
}

/// The whole array as peer `me` holds it, read from its regions in shared memory.
fn whole_of(mesh: &str, me: &str) -> Option<Vec<u8>> {
    let l = layout();
    let mut whole = vec![0u8; l.whole_len()];
    for (k, owner) in IDS.iter().enumerate() {
        let r = SeqReader::open(&format!("{mesh}.{me}.{owner}")).ok()?;
        let mut buf = vec![0u8; l.part_len(k)];
        r.read_at(0, &mut buf).ok()?;
        l.place(k, &buf, &mut whole);
    }
    Some(whole)
}

/// Runs the section from the parent demo process.
pub fn run(exe: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let pid = std::process::id();
    let mesh = format!("venom-demo-mesh-{pid}");
    let dir = std::env::temp_dir().join(&mesh);
    std::fs::create_dir_all(&dir)?;
    let result = story(exe, &mesh, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    for me in IDS {
        for owner in IDS {
            let _ = SeqReader::open(&format!("{mesh}.{me}.{owner}")).and_then(|r| r.segment().unlink());
        }
    }
    result
}

fn story(exe: &Path, mesh: &str, dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    // One private key directory per peer (0700, key 0600); each child is
    // handed only its own. The CA's private key never touches the disk.
    let ca = CertificateAuthority::new("venom-demo-mesh-ca")?;
    let mut ports = Vec::new();
    for id in IDS {
        MeshTls::issue(&ca, id)?.save(&dir.join("keys").join(id))?;
        ports.push(std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port());
    }
    let ports_arg = ports.iter().map(u16::to_string).collect::<Vec<_>>().join(",");
    let start = Instant::now();
    let mut children = Children::new("mesh");
    // Started in reverse order: peers may start in any order and still converge.
    let dir_arg = dir.display().to_string();
    for id in IDS.iter().rev() {
        let keys = dir.join("keys").join(id).display().to_string();
        children.spawn(exe, &[id, mesh, &dir_arg, &keys, &ports_arg])?;
    }
    println!(
        "  4 peer processes a..d, each owning one quadrant of a 64x64 u32 grid, each writing {STEPS} counter steps"
    );
    println!("  every peer mirrors the other 3 quadrants directly from their owners (QUIC, mutual TLS: no relaying)");
    let mut hashes;
    loop {
        let wholes: Vec<Option<Vec<u8>>> = IDS.iter().map(|me| whole_of(mesh, me)).collect();
        hashes = wholes.iter().map(|w| w.as_ref().map(|w| *blake3::hash(w).as_bytes())).collect::<Vec<_>>();
        // Done when every cell of every copy holds its owner's final step.
        let done = wholes.iter().all(|w| {
            w.as_ref()
                .is_some_and(|w| w.chunks_exact(4).all(|c| bytemuck::pod_read_unaligned::<u32>(c) & 0xFF_FFFF == STEPS))
        });
        if done && hashes.iter().all(|h| *h == hashes[0]) {
            break;
        }
        if start.elapsed() > Duration::from_secs(8) {
            return Err("the mesh did not converge within 8 s".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let took = start.elapsed();
    std::fs::write(dir.join("stop"), b"")?;
    children.join(Duration::from_secs(5))?; // each child exits after the stop file appears
    let h = blake3::Hash::from(hashes[0].unwrap_or_default());
    println!(
        "  all 4 copies blake3-equal ({}) {:.0} ms after launch (start-up and connect back-off included)",
        &h.to_hex()[..16],
        took.as_secs_f64() * 1e3
    );
    let mut links = Vec::new();
    for id in IDS {
        if let Ok(s) = std::fs::read_to_string(dir.join(format!("{id}.stats"))) {
            links.push(s.trim().to_owned());
        }
    }
    println!("  updates applied / bytes received per peer: {}", links.join(", "));
    Ok(())
}

/// Entry point for a child process spawned by `run`: role = peer id; args =
/// mesh, dir (stop/stats files), the peer's own key directory, ports.
pub fn child(role: &str, args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let [mesh, dir, keys, ports] = args else { return Err("usage: mesh ID MESH DIR KEYDIR PORTS".into()) };
    let dir = PathBuf::from(dir);
    let ports: Vec<u16> = ports.split(',').map(str::parse).collect::<Result<_, _>>()?;
    let me = IDS.iter().position(|i| *i == role).ok_or("unknown peer")?;
    let tls = MeshTls::load(Path::new(keys))?; // this peer's key only
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    rt.block_on(async {
        let cfg = MeshConfig {
            mesh: mesh.clone(),
            layout: layout(),
            me: role.into(),
            listen: format!("127.0.0.1:{}", ports[me]).parse()?,
            tls,
        };
        let peer = MeshPeer::start(cfg).await?;
        for (k, id) in IDS.iter().enumerate().filter(|(k, _)| *k != me) {
            peer.link(id, format!("127.0.0.1:{}", ports[k]).parse()?)?;
        }
        let mine = peer.own_array::<u32>()?;
        let tag = (me as u32 + 1) << 24;
        for n in 1..=STEPS {
            peer.write(role, |w| w.write_all(&mine, &vec![tag | n; mine.len()]))?;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !dir.join("stop").exists() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (n, bytes) = peer.link_stats().iter().fold((0, 0), |(a, b), s| (a + s.1, b + s.2));
        std::fs::write(dir.join(format!("{role}.stats")), format!("{role}: {n} / {bytes} B"))?;
        peer.close().await;
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}
