//! Four mesh peers, a to d, each write a running counter into their own
//! quadrant of a shared grid; every peer prints the whole grid.
//!
//! Run `cargo run -p venom-examples --example peer_split -- --help`.

#[path = "net_cli.rs"]
mod net_cli;

use net_cli::{Flags, mesh_tls_from_dir, parse_peers};
use std::time::{Duration, Instant};
use venom_net::Dtype;
use venom_net::mesh::{MeshConfig, MeshLayout, MeshPeer, MeshTls};
use venom_net::tls::CertificateAuthority;

const HELP: &str = "peer_split: four peers a..d share an 8x16 grid of u32 over a QUIC mesh (mutual TLS)

Each peer owns one quadrant (a: top-left, b: top-right, c: bottom-left,
d: bottom-right) and writes a running counter into it; it mirrors the other
quadrants DIRECTLY from their owners (no relaying). Every cell prints as
OWNER:COUNTER, so you see where each part came from; the grid hashes must match.

USAGE: peer_split [--steps N] [--interval-ms MS]
         all four peers in this process (default)
       peer_split --peer ID --listen ADDR --peers ID=ADDR,ID=ADDR,ID=ADDR --certs DIR [--steps N] [--linger S]
         one peer per terminal, e.g.
         peer_split --peer a --listen 127.0.0.1:7001 --peers b=127.0.0.1:7002,c=127.0.0.1:7003,d=127.0.0.1:7004 --certs /tmp/mesh-certs
         (the first peer started creates a CA and one private directory per peer,
         DIR/a .. DIR/d (0700, key 0600); each peer reads only DIR/<its id>; on
         separate hosts, copy DIR/<id> to peer id's host only)

  --steps N        counter updates per peer (default 20)
  --interval-ms MS pause between updates (default 50)
  --linger S       one-peer mode: seconds to keep printing after the last step (default 10)
  -h, --help       this text";

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

async fn all_in_one(steps: u32, interval: Duration) -> Result<(), Box<dyn std::error::Error>> {
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

async fn one_peer(f: &Flags, steps: u32, interval: Duration) -> Result<(), Box<dyn std::error::Error>> {
    let (Some(me), Some(listen), Some(peers), Some(certs)) =
        (f.opt("peer"), f.opt("listen"), f.opt("peers"), f.opt("certs"))
    else {
        return Err(format!("one-peer mode needs --peer, --listen, --peers and --certs\n\n{HELP}").into());
    };
    let tls = mesh_tls_from_dir(std::path::Path::new(certs), me, &IDS)?;
    let mut cfg = config(me, listen.parse()?, tls);
    cfg.mesh = format!("peer-split-{me}-{}", std::process::id());
    let p = MeshPeer::start(cfg).await?;
    for (id, addr) in parse_peers(peers)? {
        p.link(&id, addr)?;
    }
    println!("peer {me} serving on {}", p.local_addr()?);
    for n in 1..=steps {
        write_counter(&p, n)?;
        tokio::time::sleep(interval).await;
    }
    for _ in 0..f.get("linger", 10u64) {
        println!("{}", render(&p)?);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    p.close().await;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let f = Flags::parse(HELP, &["steps", "interval-ms", "peer", "listen", "peers", "certs", "linger"], &[]);
    let (steps, interval) = (f.get("steps", 20u32), Duration::from_millis(f.get("interval-ms", 50u64)));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    if f.has("peer") { rt.block_on(one_peer(&f, steps, interval)) } else { rt.block_on(all_in_one(steps, interval)) }
}
