//! A 4-peer mesh under continuous writes: prints update rates and lag while
//! writing, then how long the mesh takes to converge once writes stop.
//!
//! Run `cargo run -p venom-examples --example peer_stress -- --help`.

use clap::Parser;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use venom_examples::net_cli::{BoxError, MeshArgs, runtime};
use venom_net::Dtype;
use venom_net::mesh::{MeshConfig, MeshLayout, MeshPeer, MeshTls};
use venom_net::tls::CertificateAuthority;

/// A 4-peer QUIC mesh (mutual TLS) under continuous writes.
///
/// Peers a..d each own a quadrant of a 256x256 u64 grid and write it
/// continuously (each write: a step counter plus 64 random cells, ONE atomic
/// step). Every second the example prints writes/s per owner, mirror updates
/// applied/s and the worst lag (owner's step minus the step a peer has
/// applied). When writes stop, it measures how long until all four copies
/// are blake3-equal.
///
/// Default: all four peers in this process. `--peer ID --listen ADDR --peers
/// ID=ADDR,... --certs DIR`: one peer per terminal; each reads only its own
/// key directory DIR/<id> (see peer_split --help for the layout).
#[derive(Parser)]
#[command(name = "peer_stress")]
struct Args {
    /// Seconds of writing.
    #[arg(long, value_name = "S", default_value_t = 3.0)]
    duration: f64,
    /// Pause between a peer's writes in microseconds.
    #[arg(long = "pause-us", value_name = "US", default_value_t = 100)]
    pause_us: u64,
    #[command(flatten)]
    mesh: MeshArgs,
}

const IDS: [&str; 4] = ["a", "b", "c", "d"];

fn layout() -> MeshLayout {
    MeshLayout::quadrants(Dtype::U64, 256, 256, IDS).expect("valid layout")
}

/// Writes until `stop`; counts writes in `count`.
fn writer(p: &MeshPeer, stop: &AtomicBool, count: &AtomicU64, pause: Duration) -> venom_net::Result<()> {
    let mine = p.own_array::<u64>()?;
    let (rows, cols) = (mine.info().shape[0], mine.info().shape[1]);
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ p.id().as_bytes()[0] as u64;
    let mut step = 0u64;
    while !stop.load(Ordering::Relaxed) {
        step += 1;
        p.write(p.id(), |w| {
            w.set(&mine, &[0, 0], step)?;
            for _ in 0..64 {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                w.set(&mine, &[1 + rng % (rows - 1), (rng >> 20) % cols], rng)?; // row 0 keeps the step
            }
            Ok(())
        })?;
        count.fetch_add(1, Ordering::Relaxed); // a statistic only
        std::thread::sleep(pause);
    }
    Ok(())
}

/// Step counter of `owner`'s part as `p` holds it.
fn step_of(p: &MeshPeer, owner: &str) -> u64 {
    p.part_region(owner).and_then(|r| Ok(r.read_pod::<u64>(0)?)).unwrap_or(0)
}

fn applied_total(peers: &[&MeshPeer]) -> u64 {
    peers.iter().flat_map(|p| p.link_stats()).map(|(_, n, _)| n).sum()
}

/// Writes for `duration`, printing rates every second.
fn stress(peers: &[&MeshPeer], duration: Duration, pause: Duration) -> Result<(), Box<dyn std::error::Error>> {
    let stop = AtomicBool::new(false);
    let counts: Vec<AtomicU64> = peers.iter().map(|_| AtomicU64::new(0)).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = peers.iter().zip(&counts).map(|(p, c)| s.spawn(|| writer(p, &stop, c, pause))).collect();
        let start = Instant::now();
        let (mut last_w, mut last_a) = (vec![0u64; peers.len()], applied_total(peers));
        while start.elapsed() < duration {
            std::thread::sleep(Duration::from_secs(1).min(duration));
            let w: Vec<u64> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
            let a = applied_total(peers);
            let rates: Vec<String> =
                peers.iter().zip(w.iter().zip(&last_w)).map(|(p, (n, l))| format!("{}={}", p.id(), n - l)).collect();
            let mut lag = 0;
            for p in peers {
                for owner in IDS.iter().filter(|o| **o != p.id()) {
                    if let Some(q) = peers.iter().find(|q| q.id() == *owner) {
                        lag = lag.max(step_of(q, owner).saturating_sub(step_of(p, owner)));
                    }
                }
            }
            println!(
                "t={:>4.1}s writes/s [{}]  mirror updates applied/s {}  worst lag {lag} steps",
                start.elapsed().as_secs_f64(),
                rates.join(" "),
                a - last_a
            );
            (last_w, last_a) = (w, a);
        }
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            if let Ok(Err(e)) = h.join() {
                eprintln!("writer: {e}");
            }
        }
    });
    Ok(())
}

fn main() -> Result<(), BoxError> {
    let a = Args::parse();
    let duration = Duration::try_from_secs_f64(a.duration)?;
    let pause = Duration::from_micros(a.pause_us);
    let rt = runtime()?;
    let _runtime = rt.enter(); // `link` spawns the mirror tasks on it
    let mesh = format!("peer-stress-{}", std::process::id());
    if let Some(one) = a.mesh.one_peer(&IDS)? {
        let cfg = MeshConfig { mesh, layout: layout(), me: one.me, listen: one.listen, tls: one.tls };
        let p = rt.block_on(MeshPeer::start(cfg))?;
        for (id, addr) in &one.peers {
            p.link(id, *addr)?;
        }
        stress(&[&p], duration, pause)?;
        for _ in 0..5 {
            std::thread::sleep(Duration::from_secs(1));
            println!("whole-array blake3 {}", &blake3::hash(&p.read_whole()?).to_hex()[..16]);
        }
        rt.block_on(p.close());
        return Ok(());
    }
    let ca = CertificateAuthority::new("peer-stress-ca")?;
    let peers = rt.block_on(async {
        let mut v = Vec::new();
        for id in IDS {
            let cfg = MeshConfig {
                mesh: mesh.clone(),
                layout: layout(),
                me: id.into(),
                listen: "127.0.0.1:0".parse()?,
                tls: MeshTls::issue(&ca, id)?,
            };
            v.push(MeshPeer::start(cfg).await?);
        }
        Ok::<_, Box<dyn std::error::Error>>(v)
    })?;
    for p in &peers {
        for q in &peers {
            if p.id() != q.id() {
                p.link(q.id(), q.local_addr()?)?;
            }
        }
    }
    println!("4 peers, {} KiB grid, writing for {duration:?}", layout().whole_len() >> 10);
    let refs: Vec<&MeshPeer> = peers.iter().collect();
    stress(&refs, duration, pause)?;
    let start = Instant::now();
    loop {
        let h: Vec<[u8; 32]> = peers.iter().map(|p| p.whole_hash()).collect::<Result<_, _>>()?;
        if h.iter().all(|x| *x == h[0]) {
            println!(
                "writes stopped; all 4 copies blake3-equal after {:.1?} ({})",
                start.elapsed(),
                &blake3::Hash::from(h[0]).to_hex()[..16]
            );
            break;
        }
        if start.elapsed() > Duration::from_secs(20) {
            return Err("the mesh did not converge within 20 s".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    rt.block_on(async {
        for p in peers {
            p.close().await;
        }
    });
    Ok(())
}
