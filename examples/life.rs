//! A 256x256 Game of Life served over QUIC; the client renders it in the
//! terminal, and with `--region` subscribes only to that sub-region.
//!
//! Run `cargo run -p venom-examples --example life -- --help`.

#[path = "net_cli.rs"]
mod net_cli;

use net_cli::{Flags, Role, finish, server_tls};
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;
use venom_core::{RegionConfig, SeqReader, SeqWriter};
use venom_net::io::Publisher;
use venom_net::named::NamedMirror;
use venom_net::proto::catalog::{Catalog, Pick};
use venom_net::tls::ClientTls;
use venom_net::typed::{Array, write_step};
use venom_net::{Dtype, MirrorConfig, PublisherConfig};

const HELP: &str = "life: a 256x256 Game of Life replicated over QUIC (TLS 1.3) on loopback

The server keeps the world in a venom SeqRegion with a catalog (arrays
\"generation\" and \"grid\") and writes each generation as ONE atomic step. The
client subscribes BY NAME and renders its mirror in the terminal: the whole
world downsampled, or with --region only that sub-region, cell by cell --
and then it receives only those bytes.

USAGE: life [--steps N] [--interval-ms MS] [--every N] [--region R0:R1,C0:C1]
         server and client in this process (default)
       life --role server --listen ADDR --certs DIR [--steps N] [--interval-ms MS]
       life --role client --connect ADDR --certs DIR [--steps N] [--every N] [--region R0:R1,C0:C1]
         one role per terminal (the server saves its certificate in DIR; the client pins it)

  --steps N         generations (default 60)
  --interval-ms MS  pause between generations (default 30)
  --every N         render every Nth generation (default 20)
  --region R0:R1,C0:C1  rows R0..R1 and columns C0..C1 only (e.g. 100:124,40:120)
  -h, --help        this text";

const N: usize = 256;

fn catalog() -> Catalog {
    Catalog::builder()
        .array("generation", Dtype::U64, &[1])
        .array("grid", Dtype::U8, &[N as u64, N as u64])
        .build()
        .expect("valid catalog")
}

fn seed() -> Vec<u8> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    (0..N * N)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.is_multiple_of(4) as u8
        })
        .collect()
}

/// One generation on a torus.
fn step(g: &[u8], out: &mut [u8]) {
    for r in 0..N {
        for c in 0..N {
            let mut n = 0;
            for (dr, dc) in [(N - 1, N - 1), (N - 1, 0), (N - 1, 1), (0, N - 1), (0, 1), (1, N - 1), (1, 0), (1, 1)] {
                n += g[((r + dr) % N) * N + (c + dc) % N];
            }
            out[r * N + c] = (n == 3 || (n == 2 && g[r * N + c] == 1)) as u8;
        }
    }
}

/// Runs the world for `steps` generations into a new region; returns the publisher.
async fn serve(
    listen: SocketAddr,
    dir: Option<&str>,
    steps: u64,
    interval: Duration,
) -> Result<(Publisher, ClientTls, std::thread::JoinHandle<()>), Box<dyn std::error::Error>> {
    let cat = catalog();
    let name = format!("life-{}", std::process::id());
    let mut w = SeqWriter::create(&name, RegionConfig::new(cat.region_size() as usize))?;
    cat.write_to(&mut w)?;
    let (generation, grid) =
        (Array::<u64>::from_catalog(&cat, "generation")?, Array::<u8>::from_catalog(&cat, "grid")?);
    let mut world = seed();
    write_step(&mut w, |s| s.write_all(&grid, &world))?;
    let (stls, ctls) = server_tls(dir)?;
    let src = Arc::new(SeqReader::open(&name)?);
    let p = Publisher::bind(listen, src, stls, PublisherConfig::default()).await?;
    let server = std::thread::spawn(move || {
        let mut next = vec![0u8; N * N];
        for g in 1..=steps {
            std::thread::sleep(interval);
            step(&world, &mut next);
            std::mem::swap(&mut world, &mut next);
            let r = write_step(&mut w, |s| {
                s.write_all(&grid, &world)?;
                s.set(&generation, &[0], g)
            });
            if let Err(e) = r {
                eprintln!("server: {e}");
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(300)); // let the last generation reach the mirror
        let _ = w.unlink();
    });
    Ok((p, ctls, server))
}

fn parse_region(s: &str) -> Result<[Range<u64>; 2], String> {
    let range = |p: &str| -> Result<Range<u64>, String> {
        let (a, b) = p.split_once(':').ok_or(format!("expected A:B, got {p:?}"))?;
        Ok(a.parse::<u64>().map_err(|e| e.to_string())?..b.parse::<u64>().map_err(|e| e.to_string())?)
    };
    let (r, c) = s.split_once(',').ok_or("expected R0:R1,C0:C1")?;
    Ok([range(r)?, range(c)?])
}

/// Renders a rows x cols grid; downsampled by (fy, fx) with density characters.
fn render(cells: &[u8], rows: usize, cols: usize, fy: usize, fx: usize) -> String {
    const SHADES: &[u8] = b" .:-=+*#%@";
    let mut s = String::new();
    for by in (0..rows).step_by(fy) {
        for bx in (0..cols).step_by(fx) {
            let mut alive = 0;
            for y in by..(by + fy).min(rows) {
                for x in bx..(bx + fx).min(cols) {
                    alive += cells[y * cols + x] as usize;
                }
            }
            s.push(SHADES[(alive * (SHADES.len() - 1)).div_ceil(fy * fx)] as char);
        }
        s.push('\n');
    }
    s
}

async fn client(addr: SocketAddr, tls: ClientTls, f: &Flags) -> Result<(), Box<dyn std::error::Error>> {
    let steps: u64 = f.get("steps", 60);
    let every: u64 = f.get("every", 20u64).max(1);
    let region = f.opt("region").map(parse_region).transpose()?;
    let pick = match &region {
        Some(r) => Pick::slice("grid", r),
        None => Pick::all("grid"),
    };
    let local = format!("life-mirror-{}", std::process::id());
    let m = NamedMirror::connect(
        addr,
        "localhost",
        tls,
        &[Pick::all("generation"), pick],
        &local,
        MirrorConfig::default(),
        Duration::from_secs(10),
    )
    .await?;
    let cat = m.catalog().clone();
    let (g_off, grid) = (cat.get("generation")?.offset as usize, cat.get("grid")?.clone());
    let (rows, cols) = (grid.shape[0] as usize, grid.shape[1] as usize);
    let (fy, fx) = if region.is_some() { (1, 1) } else { (8, 4) };
    let tty = stdout_is_terminal();
    let mut buf = vec![0u8; cat.region_size() as usize];
    let mut shown = u64::MAX;
    let mut generation = 0;
    let mut seen = None;
    while generation < steps {
        // Wait for an update newer than the one the last read included (none is missed).
        let r = tokio::task::block_in_place(|| {
            m.mirror().wait_until(Duration::from_secs(10), |_, a| Some((a.epoch, a.seq)) != seen)
        });
        match r {
            Ok(a) => seen = Some((a.epoch, a.seq)),
            Err(_) => return Err(format!("no update for 10 s (at generation {generation})").into()),
        }
        m.region().read_at(0, &mut buf)?; // one consistent read: generation and grid together
        generation = u64::from_le_bytes(buf[g_off..g_off + 8].try_into()?);
        if generation / every != shown / every || generation == steps {
            shown = generation;
            let cells = &buf[grid.offset as usize..grid.offset as usize + rows * cols];
            let alive: usize = cells.iter().map(|&c| c as usize).sum();
            if tty {
                print!("\x1b[H\x1b[2J");
            }
            println!(
                "generation {generation}: {alive} cells alive in {rows}x{cols}{}",
                if region.is_some() { " (sub-region)" } else { "" }
            );
            print!("{}", render(cells, rows, cols, fy, fx));
        }
    }
    let st = m.mirror().stats();
    println!("mirror received {} bytes for {} generations ({} bytes per full world)", st.bytes_received, steps, N * N);
    m.close().await;
    Ok(())
}

/// Whether stdout is a terminal (ANSI clear only then).
fn stdout_is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let f = Flags::parse(HELP, &["steps", "interval-ms", "every", "region", "role", "listen", "connect", "certs"], &[]);
    let steps: u64 = f.get("steps", 60);
    let interval = Duration::from_millis(f.get("interval-ms", 30));
    if let Some(r) = f.opt("region") {
        parse_region(r)?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async {
        match f.role(7100, "/tmp/venom-life")? {
            Role::Loopback => {
                let (p, tls, server) = serve("127.0.0.1:0".parse()?, None, steps, interval).await?;
                client(p.local_addr()?, tls, &f).await?;
                finish(p, server).await;
                Ok(())
            }
            Role::Server { listen, certs } => {
                let (p, _, server) = serve(listen, Some(&certs), steps, interval).await?;
                println!("serving {steps} generations on {}", p.local_addr()?);
                finish(p, server).await;
                Ok(())
            }
            Role::Client { connect, tls } => client(connect, tls, &f).await,
        }
    })
}
