//! A dynamic heatmap: a server diffuses heat on a grid in shared memory,
//! a mirror renders it in the terminal and writes PNG frames.
//!
//! Run `cargo run -p venom-examples --example heatmap -- --help`.

#[path = "net_cli.rs"]
mod net_cli;

use net_cli::{Flags, Role, finish, server_tls};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use venom_core::{RegionConfig, SeqReader, SeqWriter};
use venom_net::io::Publisher;
use venom_net::named::NamedMirror;
use venom_net::proto::catalog::{Catalog, Pick};
use venom_net::tls::ClientTls;
use venom_net::typed::{Array, write_step};
use venom_net::{Dtype, MirrorConfig, PublisherConfig};

const HELP: &str =
    "heatmap: a dynamic heatmap replicated over QUIC (TLS 1.3), rendered as PNG frames and in the terminal

The server diffuses heat from two moving sources on a 64x64 f32 grid (\"heat\",
with a \"step\" counter) in a venom SeqRegion, one atomic step per frame. The
client mirrors it by name and, every --every steps, renders it in the terminal
(24-bit colour on a terminal, ASCII shades otherwise) and writes a PNG frame
(a small built-in encoder: stored zlib blocks) into a temporary directory.

USAGE: heatmap [--steps N] [--every N] [--interval-ms MS] [--png-dir DIR] [--no-png]
         server and client in this process (default)
       heatmap --role server --listen ADDR --certs DIR [--steps N] [--interval-ms MS]
       heatmap --role client --connect ADDR --certs DIR [--steps N] [--every N] [--png-dir DIR] [--no-png]
         one role per terminal (the server saves its certificate in DIR; the client pins it)

  --steps N         simulation steps (default 60)
  --every N         render every Nth step (default 20)
  --interval-ms MS  pause between steps (default 20)
  --png-dir DIR     where PNG frames go (default: a new directory under the system temp dir)
  --no-png          terminal only
  -h, --help        this text";

const N: usize = 64;

fn catalog() -> Catalog {
    Catalog::builder()
        .array("step", Dtype::U64, &[1])
        .array("heat", Dtype::F32, &[N as u64, N as u64])
        .build()
        .expect("valid")
}

/// One explicit diffusion step with two orbiting heat sources.
fn diffuse(h: &[f32], out: &mut [f32], t: u64) {
    for r in 0..N {
        for c in 0..N {
            let at = |dr: usize, dc: usize| h[((r + dr) % N) * N + (c + dc) % N];
            let lap = at(N - 1, 0) + at(1, 0) + at(0, N - 1) + at(0, 1) - 4.0 * h[r * N + c];
            out[r * N + c] = (h[r * N + c] + 0.2 * lap) * 0.995;
        }
    }
    let a = t as f32 * 0.08;
    for (cx, cy) in
        [(0.5 + 0.3 * a.cos(), 0.5 + 0.3 * a.sin()), (0.5 - 0.25 * (1.7 * a).cos(), 0.5 + 0.2 * (1.3 * a).sin())]
    {
        let (x, y) = ((cx * N as f32) as usize % N, (cy * N as f32) as usize % N);
        out[y * N + x] = 1.0;
    }
}

type Served = (Publisher, ClientTls, std::thread::JoinHandle<()>);

async fn serve(
    listen: SocketAddr,
    dir: Option<&str>,
    steps: u64,
    interval: Duration,
) -> Result<Served, Box<dyn std::error::Error>> {
    let cat = catalog();
    let name = format!("heatmap-{}", std::process::id());
    let mut w = SeqWriter::create(&name, RegionConfig::new(cat.region_size() as usize))?;
    cat.write_to(&mut w)?;
    let (step, heat) = (Array::<u64>::from_catalog(&cat, "step")?, Array::<f32>::from_catalog(&cat, "heat")?);
    let (stls, ctls) = server_tls(dir)?;
    let p = Publisher::bind(listen, Arc::new(SeqReader::open(&name)?), stls, PublisherConfig::default()).await?;
    let server = std::thread::spawn(move || {
        let (mut h, mut next) = (vec![0f32; N * N], vec![0f32; N * N]);
        for t in 1..=steps {
            std::thread::sleep(interval);
            diffuse(&h, &mut next, t);
            std::mem::swap(&mut h, &mut next);
            if let Err(e) = write_step(&mut w, |s| {
                s.write_all(&heat, &h)?;
                s.set(&step, &[0], t)
            }) {
                eprintln!("server: {e}");
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(300));
        let _ = w.unlink();
    });
    Ok((p, ctls, server))
}

fn colour(v: f32) -> [u8; 3] {
    let t = v.clamp(0.0, 1.0).powf(0.4);
    let ch = |x: f32| (x.clamp(0.0, 1.0) * 255.0) as u8;
    [ch(3.0 * t), ch(3.0 * t - 1.0), ch(3.0 * t - 2.0)]
}

fn render_terminal(h: &[f32], colour_term: bool) -> String {
    const SHADES: &[u8] = b" .:-=+*#%@";
    let mut s = String::new();
    for r in (0..N).step_by(2) {
        for c in (0..N).step_by(2) {
            let v = (h[r * N + c] + h[r * N + c + 1] + h[(r + 1) * N + c] + h[(r + 1) * N + c + 1]) / 4.0;
            if colour_term {
                let [red, g, b] = colour(v);
                s += &format!("\x1b[48;2;{red};{g};{b}m  ");
            } else {
                let i = (v.clamp(0.0, 1.0).powf(0.4) * (SHADES.len() - 1) as f32) as usize;
                s.push(SHADES[i] as char);
                s.push(SHADES[i] as char);
            }
        }
        s += if colour_term { "\x1b[0m\n" } else { "\n" };
    }
    s
}

/// A minimal PNG (8-bit RGB, zlib "stored" blocks: no compression).
fn png(width: u32, height: u32, rgb: &[u8]) -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in data {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            }
        }
        !c
    }
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = crc32(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }
    let mut raw = Vec::with_capacity(rgb.len() + height as usize);
    for row in rgb.chunks(width as usize * 3) {
        raw.push(0); // filter: none
        raw.extend_from_slice(row);
    }
    let mut z = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = raw.chunks(65_535).collect();
    for (i, b) in blocks.iter().enumerate() {
        z.push((i + 1 == blocks.len()) as u8);
        z.extend_from_slice(&(b.len() as u16).to_le_bytes());
        z.extend_from_slice(&(!(b.len() as u16)).to_le_bytes());
        z.extend_from_slice(b);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &x in &raw {
        a = (a + x as u32) % 65_521;
        b = (b + a) % 65_521;
    }
    z.extend_from_slice(&((b << 16) | a).to_be_bytes());
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &z);
    chunk(&mut out, b"IEND", &[]);
    out
}

fn write_png(dir: &Path, step: u64, h: &[f32]) -> std::io::Result<PathBuf> {
    const SCALE: usize = 4;
    let side = N * SCALE;
    let mut rgb = Vec::with_capacity(side * side * 3);
    for y in 0..side {
        for x in 0..side {
            rgb.extend_from_slice(&colour(h[(y / SCALE) * N + x / SCALE]));
        }
    }
    let path = dir.join(format!("heat-{step:05}.png"));
    std::fs::write(&path, png(side as u32, side as u32, &rgb))?;
    Ok(path)
}

async fn client(addr: SocketAddr, tls: ClientTls, f: &Flags) -> Result<(), Box<dyn std::error::Error>> {
    let (steps, every) = (f.get("steps", 60u64), f.get("every", 20u64).max(1));
    let dir = match (f.has("no-png"), f.opt("png-dir")) {
        (true, _) => None,
        (false, Some(d)) => Some(PathBuf::from(d)),
        (false, None) => Some(std::env::temp_dir().join(format!("venom-heatmap-{}", std::process::id()))),
    };
    if let Some(d) = &dir {
        std::fs::create_dir_all(d)?;
    }
    let local = format!("heatmap-mirror-{}", std::process::id());
    let m = NamedMirror::connect(
        addr,
        "localhost",
        tls,
        &[Pick::all("step"), Pick::all("heat")],
        &local,
        MirrorConfig::default(),
        Duration::from_secs(10),
    )
    .await?;
    let cat = m.catalog().clone();
    let (s_off, h_off) = (cat.get("step")?.offset as usize, cat.get("heat")?.offset as usize);
    let mut buf = vec![0u8; cat.region_size() as usize];
    let (mut shown, mut frames) = (0u64, 0);
    let tty = std::io::stdout().is_terminal();
    let mut updates = m.mirror().updates();
    loop {
        m.region().read_at(0, &mut buf)?; // step and heat from one version
        let step = u64::from_le_bytes(buf[s_off..s_off + 8].try_into()?);
        if step > 0 && (step / every > shown / every || step == steps) && step != shown {
            shown = step;
            let h: Vec<f32> = buf[h_off..h_off + N * N * 4]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            let total: f32 = h.iter().sum();
            println!("step {step}: total heat {total:.2}");
            print!("{}", render_terminal(&h, tty));
            if let Some(d) = &dir {
                write_png(d, step, &h)?;
                frames += 1;
            }
        }
        if step >= steps {
            break;
        }
        if tokio::time::timeout(Duration::from_secs(10), updates.next()).await.is_err() {
            return Err(format!("no update for 10 s (at step {step})").into());
        }
    }
    if let Some(d) = dir {
        println!("{frames} PNG frames in {}", d.display());
    }
    m.close().await;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let f = Flags::parse(
        HELP,
        &["steps", "every", "interval-ms", "png-dir", "role", "listen", "connect", "certs"],
        &["no-png"],
    );
    let steps: u64 = f.get("steps", 60);
    let interval = Duration::from_millis(f.get("interval-ms", 20));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async {
        match f.role(7400, "/tmp/venom-heatmap")? {
            Role::Loopback => {
                let (p, tls, server) = serve("127.0.0.1:0".parse()?, None, steps, interval).await?;
                client(p.local_addr()?, tls, &f).await?;
                finish(p, server).await;
                Ok(())
            }
            Role::Server { listen, certs } => {
                let (p, _, server) = serve(listen, Some(&certs), steps, interval).await?;
                println!("simulating {steps} steps on {}", p.local_addr()?);
                finish(p, server).await;
                Ok(())
            }
            Role::Client { connect, tls } => client(connect, tls, &f).await,
        }
    })
}
