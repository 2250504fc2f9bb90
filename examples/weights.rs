//! Broadcasts a large f32 weight tensor that changes in part at every step
//! (as in training) and prints the bytes sent against the full size.
//!
//! Run `cargo run -p venom-examples --example weights -- --help`.

use clap::Parser;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use venom_core::SeqWriter;
use venom_examples::net_cli::{BoxError, Role, RoleArgs, catalog_region, connect_mirror, publish, runtime};
use venom_net::Dtype;
use venom_net::proto::catalog::{Catalog, Pick};
use venom_net::tls::ClientTls;
use venom_net::typed::{Array, write_step};

/// Broadcast a partly-changing f32 weight tensor over QUIC (TLS 1.3).
///
/// The trainer keeps a ROWSx4096 f32 tensor "weights" (and a "step" counter)
/// in a venom SeqRegion with a catalog. Each step updates --dirty-pct percent
/// of the rows (a gradient step) as ONE atomic write; venom-net sends only
/// the changed byte runs. A mirror (the inference server) subscribes by
/// name; the example prints, per step, the bytes received against the full
/// tensor size, and at the end checks the mirror's tensor is blake3-equal to
/// the trainer's.
///
/// Default: trainer and mirror in this process. `--role server --listen ADDR
/// --certs DIR` and `--role client --connect ADDR --certs DIR`: one role per
/// terminal (the server saves its certificate in DIR; the client pins it).
#[derive(Parser)]
#[command(name = "weights")]
struct Args {
    /// Tensor rows of 4096 f32 (1024 = 16 MiB).
    #[arg(long, value_name = "N", default_value_t = 1024)]
    rows: u64,
    /// Training steps.
    #[arg(long, value_name = "N", default_value_t = 10)]
    steps: u64,
    /// Percent of rows changed per step.
    #[arg(long = "dirty-pct", value_name = "P", default_value_t = 1.0)]
    dirty_pct: f64,
    /// Server role: pause between steps in milliseconds.
    #[arg(long = "interval-ms", value_name = "MS", default_value_t = 500)]
    interval_ms: u64,
    #[command(flatten)]
    net: RoleArgs,
}

const COLS: u64 = 4096;

struct Trainer {
    w: SeqWriter,
    weights: Array<f32>,
    step: Array<u64>,
    tensor: Vec<f32>,
    rng: u64,
    dirty_rows: u64,
}

impl Trainer {
    fn new(rows: u64, dirty_pct: f64) -> Result<Trainer, Box<dyn std::error::Error>> {
        let cat =
            Catalog::builder().array("step", Dtype::U64, &[1]).array("weights", Dtype::F32, &[rows, COLS]).build()?;
        let mut w = catalog_region(&cat, "weights")?;
        let weights = Array::<f32>::from_catalog(&cat, "weights")?;
        let tensor: Vec<f32> = (0..rows * COLS).map(|i| ((i % 977) as f32 - 488.0) * 1e-3).collect();
        write_step(&mut w, |s| s.write_all(&weights, &tensor))?;
        let dirty_rows = ((rows as f64 * dirty_pct / 100.0).round() as u64).clamp(1, rows);
        Ok(Trainer {
            w,
            weights,
            step: Array::from_catalog(&cat, "step")?,
            tensor,
            rng: 0x9E37_79B9_7F4A_7C15,
            dirty_rows,
        })
    }

    fn rand(&mut self, n: u64) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng % n
    }

    /// One gradient step on random rows; returns the new region version.
    fn step(&mut self, s: u64) -> venom_net::Result<u64> {
        let rows = self.tensor.len() as u64 / COLS;
        let picked: Vec<u64> = (0..self.dirty_rows).map(|_| self.rand(rows)).collect();
        for &r in &picked {
            for x in &mut self.tensor[(r * COLS) as usize..((r + 1) * COLS) as usize] {
                *x -= 1e-3 * (*x + 0.01);
            }
        }
        let (tensor, weights, step) = (&self.tensor, &self.weights, &self.step);
        let ((), v) = write_step(&mut self.w, |w| {
            for &r in &picked {
                w.write_row(weights, r, &tensor[(r * COLS) as usize..((r + 1) * COLS) as usize])?;
            }
            w.set(step, &[0], s)
        })?;
        Ok(v)
    }
}

impl Drop for Trainer {
    fn drop(&mut self) {
        let _ = self.w.unlink();
    }
}

async fn all_in_one(a: &Args) -> Result<(), BoxError> {
    let (rows, steps) = (a.rows.max(1), a.steps);
    let mut t = Trainer::new(rows, a.dirty_pct)?;
    let full = rows * COLS * 4;
    let (p, ctls) = publish("127.0.0.1:0".parse()?, "weights", None).await?;
    let start = Instant::now();
    let m = connect_mirror(p.local_addr()?, ctls, &[Pick::all("weights")], "weights-mirror", Duration::from_secs(30))
        .await?;
    let mut last = m.mirror().stats().bytes_received;
    println!("initial snapshot: {last} bytes on the wire for a {full}-byte tensor ({:.0?})", start.elapsed());
    println!("{:>5} {:>12} {:>12} {:>9}", "step", "bytes sent", "full size", "ratio");
    let mut total = 0;
    for s in 1..=steps {
        let v = t.step(s)?;
        tokio::task::block_in_place(|| m.mirror().wait_until(Duration::from_secs(10), |_, a| a.seq >= v))?;
        let now = m.mirror().stats().bytes_received;
        println!("{s:>5} {:>12} {full:>12} {:>8.2}%", now - last, 100.0 * (now - last) as f64 / full as f64);
        total += now - last;
        last = now;
    }
    let mut mirrored = Vec::new();
    m.array::<f32>("weights")?.read_all(&mut mirrored)?;
    let same = blake3::hash(bytemuck::cast_slice(&mirrored)) == blake3::hash(bytemuck::cast_slice(&t.tensor));
    println!(
        "{steps} steps: {total} bytes sent vs {} for full copies ({:.1}x less); mirror blake3-equal: {same}",
        full * steps,
        (full * steps) as f64 / total.max(1) as f64
    );
    m.close().await;
    p.close().await;
    if !same {
        return Err("mirror differs from the trainer".into());
    }
    Ok(())
}

async fn server(a: &Args, listen: SocketAddr, certs: &str) -> Result<(), BoxError> {
    let (rows, steps) = (a.rows.max(1), a.steps);
    let mut t = Trainer::new(rows, a.dirty_pct)?;
    let (p, _) = publish(listen, "weights", Some(certs)).await?;
    println!("training {steps} steps on {}", p.local_addr()?);
    for s in 1..=steps {
        tokio::time::sleep(Duration::from_millis(a.interval_ms)).await;
        t.step(s)?;
        let sent: u64 = p.stats().iter().map(|st| st.bytes_sent).sum();
        println!("step {s}: {sent} bytes sent so far to {} mirror(s)", p.stats().len());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    p.close().await;
    Ok(())
}

async fn client(a: &Args, addr: SocketAddr, tls: ClientTls) -> Result<(), BoxError> {
    let m = connect_mirror(
        addr,
        tls,
        &[Pick::all("weights"), Pick::all("step")],
        "weights-mirror",
        Duration::from_secs(30),
    )
    .await?;
    let step = m.array::<u64>("step")?;
    let full = m.catalog().get("weights")?.byte_len().unwrap_or(0);
    let mut last = m.mirror().stats().bytes_received;
    println!("initial snapshot: {last} bytes for a {full}-byte tensor");
    let steps = a.steps;
    let mut seen = m.applied().map(|a| (a.epoch, a.seq));
    while step.get(&[0])? < steps {
        // An update newer than the last one seen (none is missed between the check and the wait).
        let a = tokio::task::block_in_place(|| {
            m.mirror().wait_until(Duration::from_secs(30), |_, a| Some((a.epoch, a.seq)) != seen)
        })?;
        seen = Some((a.epoch, a.seq));
        let now = m.mirror().stats().bytes_received;
        println!("step {}: {} bytes received (full size {full})", step.get(&[0])?, now - last);
        last = now;
    }
    m.close().await;
    Ok(())
}

fn main() -> Result<(), BoxError> {
    let a = Args::parse();
    let role = a.net.resolve(7300, "/tmp/venom-weights")?;
    runtime()?.block_on(async {
        match role {
            Role::Loopback => all_in_one(&a).await,
            Role::Server { listen, certs } => server(&a, listen, &certs).await,
            Role::Client { connect, tls } => client(&a, connect, tls).await,
        }
    })
}
