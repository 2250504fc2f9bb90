//! A dynamic heatmap: a server diffuses heat on a grid in shared memory,
//! a mirror renders it in the terminal and writes PNG frames.
//!
//! Run `cargo run -p venom-examples --example heatmap -- --help`.

use clap::Parser;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use venom_examples::net_cli::{
    BoxError, GridRegion, RoleArgs, Served, catalog_region, connect_mirror, publish, run_simulation, simulate,
};
use venom_net::proto::catalog::Pick;
use venom_net::tls::ClientTls;

/// A dynamic heatmap replicated over QUIC (TLS 1.3), rendered as PNG frames
/// and in the terminal.
///
/// The server diffuses heat from two moving sources on a 64x64 f32 grid
/// ("heat", with a "step" counter) in a venom SeqRegion, one atomic step per
/// frame. The client mirrors it by name and, every --every steps, renders it
/// in the terminal (24-bit colour on a terminal, ASCII shades otherwise) and
/// writes a PNG frame into a temporary directory.
///
/// Default: server and client in this process. `--role server --listen ADDR
/// --certs DIR` and `--role client --connect ADDR --certs DIR`: one role per
/// terminal (the server saves its certificate in DIR; the client pins it).
#[derive(Parser)]
#[command(name = "heatmap")]
struct Args {
    /// Simulation steps.
    #[arg(long, value_name = "N", default_value_t = 60)]
    steps: u64,
    /// Render every Nth step.
    #[arg(long, value_name = "N", default_value_t = 20)]
    every: u64,
    /// Pause between steps in milliseconds.
    #[arg(long = "interval-ms", value_name = "MS", default_value_t = 20)]
    interval_ms: u64,
    /// Where PNG frames go (default: a new directory under the system temp dir).
    #[arg(long = "png-dir", value_name = "DIR")]
    png_dir: Option<PathBuf>,
    /// Terminal only.
    #[arg(long = "no-png")]
    no_png: bool,
    #[command(flatten)]
    net: RoleArgs,
}

const N: usize = 64;

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

async fn serve(listen: SocketAddr, dir: Option<String>, steps: u64, interval: Duration) -> Result<Served, BoxError> {
    let sim = GridRegion::<f32>::new("step", "heat", N)?;
    let w = catalog_region(&sim.catalog, "heatmap")?;
    let (p, ctls) = publish(listen, "heatmap", dir.as_deref()).await?;
    let (mut h, mut next) = (vec![0f32; N * N], vec![0f32; N * N]);
    let server = simulate(w, steps, interval, move |t, w| {
        diffuse(&h, &mut next, t);
        std::mem::swap(&mut h, &mut next);
        sim.write(w, t, &h)
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

fn write_png(dir: &Path, step: u64, h: &[f32]) -> Result<PathBuf, png::EncodingError> {
    const SCALE: usize = 4;
    let side = N * SCALE;
    let mut rgb = Vec::with_capacity(side * side * 3);
    for y in 0..side {
        for x in 0..side {
            rgb.extend_from_slice(&colour(h[(y / SCALE) * N + x / SCALE]));
        }
    }
    let path = dir.join(format!("heat-{step:05}.png"));
    let file = std::io::BufWriter::new(std::fs::File::create(&path)?);
    let mut enc = png::Encoder::new(file, side as u32, side as u32);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header()?.write_image_data(&rgb)?;
    Ok(path)
}

async fn client(addr: SocketAddr, tls: ClientTls, a: &Args) -> Result<(), BoxError> {
    let (steps, every) = (a.steps, a.every.max(1));
    let dir = match (a.no_png, &a.png_dir) {
        (true, _) => None,
        (false, Some(d)) => Some(d.clone()),
        (false, None) => Some(std::env::temp_dir().join(format!("venom-heatmap-{}", std::process::id()))),
    };
    if let Some(d) = &dir {
        std::fs::create_dir_all(d)?;
    }
    let m =
        connect_mirror(addr, tls, &[Pick::all("step"), Pick::all("heat")], "heatmap-mirror", Duration::from_secs(10))
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

fn main() -> Result<(), BoxError> {
    let a = Args::parse();
    let what = format!("simulating {} steps", a.steps);
    run_simulation(&a.net, ("heatmap", 7400), (a.steps, a.interval_ms), &what, serve, |addr, tls, _| {
        client(addr, tls, &a)
    })
}
