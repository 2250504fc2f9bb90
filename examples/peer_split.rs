//! Four mesh peers, a to d, each write a running counter into their own
//! quadrant of a shared grid; every peer prints the whole grid.
//!
//! Run `cargo run -p venom-examples --example peer_split -- --help`.

use clap::Parser;
use std::time::{Duration, Instant};
use venom_examples::net_cli::{BoxError, MeshArgs, runtime};
use venom_net::Dtype;
use venom_net::mesh::{MeshConfig, MeshLayout, MeshPeer, MeshTls};
use venom_net::tls::CertificateAuthority;

/// Four peers a..d share an 8x16 grid of u32 over a QUIC mesh (mutual TLS).
///
/// Each peer owns one quadrant (a: top-left, b: top-right, c: bottom-left,
/// d: bottom-right) and writes a running counter into it; it mirrors the
/// other quadrants DIRECTLY from their owners (no relaying). Every cell
/// prints as OWNER:COUNTER, so you see where each part came from; the grid
/// hashes must match.
///
/// Default: all four peers in this process. One peer per terminal, e.g.
/// `peer_split --peer a --listen 127.0.0.1:7001 --peers
/// b=127.0.0.1:7002,c=127.0.0.1:7003,d=127.0.0.1:7004 --certs
/// /tmp/mesh-certs` (the first peer started creates a CA and one private
/// directory per peer, DIR/a .. DIR/d (0700, key 0600); each peer reads only
/// DIR/<its id>; on separate hosts, copy DIR/<id> to peer id's host only).
#[derive(Parser)]
#[command(name = "peer_split")]
struct Args {
    /// Counter updates per peer.
    #[arg(long, value_name = "N", default_value_t = 20)]
    steps: u32,
    /// Pause between updates in milliseconds.
    #[arg(long = "interval-ms", value_name = "MS", default_value_t = 50)]
    interval_ms: u64,
    /// One-peer mode: seconds to keep printing after the last step.
    #[arg(long, value_name = "S", default_value_t = 10)]
    linger: u64,
    #[command(flatten)]
    mesh: MeshArgs,
}

const IDS: [&str; 4] = ["a", "b", "c", "d"];
const ROWS: u64 = 8;
const COLS: u64 = 16;

fn layout() -> MeshLayout {
    MeshLayout::quadrants(Dtype::U32, ROWS, COLS, IDS).expect("valid layout")
}

fn write_counter(p: &MeshPeer, n: u32) -> venom_net::Result<()> {
    let mine = p.own_array::<u32>()?;
    let k = IDS.iter().position(|i| *i == p.id()).unwrap_or(0) as u32;
    // Peer k counts in steps of k + 1, so the quadrants differ visibly.
    p.write(p.id(), |w| w.write_all(&mine, &vec![((k + 1) << 24) | (n * (k + 1)); mine.len()]))?;
    Ok(())
}

fn render(p: &MeshPeer) -> venom_net::Result<String> {
    let cells = p.read_whole_as::<u32>()?;
    let mut s = format!("peer {} sees (blake3 {}):\n", p.id(), &blake3::Hash::from(p.whole_hash()?).to_hex()[..16]);
    for row in cells.chunks(COLS as usize) {
        for &c in row {
            let owner = match c >> 24 {
                1..=4 => IDS[(c >> 24) as usize - 1],
                _ => "?",
            };
            s += &format!(" {owner}:{:<3}", c & 0xFF_FFFF);
        }
        s.push('\n');
    }
    Ok(s)
}

fn config(me: &str, listen: std::net::SocketAddr, tls: MeshTls) -> MeshConfig {
    MeshConfig { mesh: format!("peer-split-{}", std::process::id()), layout: layout(), me: me.into(), listen, tls }
}

async fn all_in_one(steps: u32, interval: Duration) -> Result<(), BoxError> {
    let ca = CertificateAuthority::new("peer-split-ca")?;
    let mut peers = Vec::new();
    for id in IDS {
        peers.push(MeshPeer::start(config(id, "127.0.0.1:0".parse()?, MeshTls::issue(&ca, id)?)).await?);
    }
    for p in &peers {
        for q in &peers {
            if p.id() != q.id() {
                p.link(q.id(), q.local_addr()?)?;
            }
        }
    }
    println!("4 peers on loopback, each writing {steps} counter steps into its quadrant");
    for n in 1..=steps {
        if n > 1 {
            tokio::time::sleep(interval).await;
        }
        for p in &peers {
            write_counter(p, n)?;
        }
    }
    let start = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let h: Vec<[u8; 32]> = peers.iter().map(|p| p.whole_hash()).collect::<Result<_, _>>()?;
        if h.iter().all(|x| *x == h[0]) {
            break;
        }
        if Instant::now() > deadline {
            return Err("peers did not converge within 10 s".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for p in &peers {
        println!("{}", render(p)?);
    }
    println!("all 4 peers converged (blake3-equal) {:.1?} after the last write", start.elapsed());
    for p in peers {
        p.close().await;
    }
    Ok(())
}

async fn one_peer(a: &Args, steps: u32, interval: Duration) -> Result<(), BoxError> {
    let Some(one) = a.mesh.one_peer(&IDS)? else { return Ok(()) };
    let me = one.me.as_str();
    let mut cfg = config(me, one.listen, one.tls);
    cfg.mesh = format!("peer-split-{me}-{}", std::process::id());
    let p = MeshPeer::start(cfg).await?;
    for (id, addr) in &one.peers {
        p.link(id, *addr)?;
    }
    println!("peer {me} serving on {}", p.local_addr()?);
    for n in 1..=steps {
        write_counter(&p, n)?;
        tokio::time::sleep(interval).await;
    }
    for _ in 0..a.linger {
        println!("{}", render(&p)?);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    p.close().await;
    Ok(())
}

fn main() -> Result<(), BoxError> {
    let a = Args::parse();
    let (steps, interval) = (a.steps, Duration::from_millis(a.interval_ms));
    let rt = runtime()?;
    if a.mesh.peer.is_some() {
        rt.block_on(one_peer(&a, steps, interval))
    } else {
        rt.block_on(all_in_one(steps, interval))
    }
}
