//! A 256x256 Game of Life served over QUIC; the client renders it in the
//! terminal, and with `--region` subscribes only to that sub-region.
//!
//! Run `cargo run -p venom-examples --example life -- --help`.

use clap::Parser;
use std::net::SocketAddr;
use std::ops::Range;
use std::time::Duration;
use venom_examples::life_world;
use venom_examples::net_cli::{
    BoxError, GridRegion, RoleArgs, Served, catalog_region, connect_mirror, publish, run_simulation, simulate,
};
use venom_net::proto::catalog::Pick;
use venom_net::tls::ClientTls;
use venom_net::typed::write_step;

/// A 256x256 Game of Life replicated over QUIC (TLS 1.3).
///
/// The server keeps the world in a venom SeqRegion with a catalog (arrays
/// "generation" and "grid") and writes each generation as ONE atomic step.
/// The client subscribes BY NAME and renders its mirror in the terminal: the
/// whole world downsampled, or with --region only that sub-region, cell by
/// cell -- and then it receives only those bytes.
///
/// Default: server and client in this process. `--role server --listen ADDR
/// --certs DIR` and `--role client --connect ADDR --certs DIR`: one role per
/// terminal (the server saves its certificate in DIR; the client pins it).
#[derive(Parser)]
#[command(name = "life")]
struct Args {
    /// Generations.
    #[arg(long, value_name = "N", default_value_t = 60)]
    steps: u64,
    /// Pause between generations in milliseconds.
    #[arg(long = "interval-ms", value_name = "MS", default_value_t = 30)]
    interval_ms: u64,
    /// Render every Nth generation.
    #[arg(long, value_name = "N", default_value_t = 20)]
    every: u64,
    /// Rows R0..R1 and columns C0..C1 only (e.g. 100:124,40:120).
    #[arg(long, value_name = "R0:R1,C0:C1", value_parser = parse_region)]
    region: Option<[Range<u64>; 2]>,
    #[command(flatten)]
    net: RoleArgs,
}

const N: usize = 256;

/// Runs the world for `steps` generations into a new region; returns the publisher.
async fn serve(listen: SocketAddr, dir: Option<String>, steps: u64, interval: Duration) -> Result<Served, BoxError> {
    let sim = GridRegion::<u8>::new("generation", "grid", N)?;
    let mut w = catalog_region(&sim.catalog, "life")?;
    let mut world = life_world::seed(N, 0x2545_F491_4F6C_DD1D);
    write_step(&mut w, |s| s.write_all(&sim.grid, &world))?;
    let (p, ctls) = publish(listen, "life", dir.as_deref()).await?;
    let mut next = vec![0u8; N * N];
    let server = simulate(w, steps, interval, move |g, w| {
        life_world::step(N, &world, &mut next);
        std::mem::swap(&mut world, &mut next);
        sim.write(w, g, &world)
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

async fn client(addr: SocketAddr, tls: ClientTls, a: &Args) -> Result<(), BoxError> {
    let (steps, every, region) = (a.steps, a.every.max(1), a.region.clone());
    let pick = match &region {
        Some(r) => Pick::slice("grid", r),
        None => Pick::all("grid"),
    };
    let m = connect_mirror(addr, tls, &[Pick::all("generation"), pick], "life-mirror", Duration::from_secs(10)).await?;
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

fn main() -> Result<(), BoxError> {
    let a = Args::parse();
    let what = format!("serving {} generations", a.steps);
    run_simulation(&a.net, ("life", 7100), (a.steps, a.interval_ms), &what, serve, |addr, tls, _| client(addr, tls, &a))
}
