//! A price server streams random ticker updates; clients mirror them over
//! QUIC and compute rolling mean, standard deviation and VWAP.
//!
//! Run `cargo run -p venom-examples --example tickers -- --help`.

use clap::Parser;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;
use venom_examples::net_cli::{
    BoxError, RoleArgs, Served, catalog_region, connect_mirror, publish, run_simulation, simulate,
};
use venom_net::Dtype;
use venom_net::proto::catalog::{Catalog, Pick};
use venom_net::tls::ClientTls;
use venom_net::typed::{Array, write_step};

/// A price server and clients computing rolling statistics on their mirrors.
///
/// The server keeps arrays "price" (f64), "volume" (f64) and "tick" (u64) in
/// a venom SeqRegion with a catalog, and writes each tick (a random walk of a
/// few tickers) as ONE atomic step. Each client mirrors the arrays by name
/// over QUIC (TLS 1.3) and keeps, per ticker, the rolling mean and standard
/// deviation of the price and the VWAP over its last --window observed
/// updates. A mirror conflates: a slow client sees the latest prices, not
/// every tick.
///
/// Default: server + two clients in this process (client 2 subscribes to
/// tickers 0..4 only). `--role server --listen ADDR --certs DIR` and `--role
/// client --connect ADDR --certs DIR [--first K]`: one role per terminal (the
/// server saves its certificate in DIR; the client pins it).
#[derive(Parser)]
#[command(name = "tickers")]
struct Args {
    /// Ticks to stream.
    #[arg(long, value_name = "N", default_value_t = 300)]
    steps: u64,
    /// Pause between ticks in milliseconds.
    #[arg(long = "interval-ms", value_name = "MS", default_value_t = 5)]
    interval_ms: u64,
    /// Rolling window in observed updates.
    #[arg(long, value_name = "N", default_value_t = 50)]
    window: usize,
    /// Client role: subscribe to the first K tickers only (default all).
    #[arg(long, value_name = "K", default_value_t = T)]
    first: u64,
    #[command(flatten)]
    net: RoleArgs,
}

const NAMES: [&str; 8] = ["AAPL", "MSFT", "GOOG", "AMZN", "NVDA", "META", "TSLA", "AMD"];
const T: u64 = NAMES.len() as u64;

fn catalog() -> Catalog {
    Catalog::builder()
        .array("tick", Dtype::U64, &[1])
        .array("price", Dtype::F64, &[T])
        .array("volume", Dtype::F64, &[T])
        .build()
        .expect("valid catalog")
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        (venom_examples::xorshift64(&mut self.0) >> 11) as f64 / (1u64 << 53) as f64
    }
}

async fn serve(listen: SocketAddr, dir: Option<String>, steps: u64, interval: Duration) -> Result<Served, BoxError> {
    let cat = catalog();
    let mut w = catalog_region(&cat, "tickers")?;
    let tick = Array::<u64>::from_catalog(&cat, "tick")?;
    let price = Array::<f64>::from_catalog(&cat, "price")?;
    let volume = Array::<f64>::from_catalog(&cat, "volume")?;
    let mut p: Vec<f64> = (0..T).map(|i| 50.0 + 40.0 * i as f64).collect();
    let mut v = vec![100.0; T as usize];
    write_step(&mut w, |s| {
        s.write_all(&price, &p)?;
        s.write_all(&volume, &v)
    })?;
    let (publisher, ctls) = publish(listen, "tickers", dir.as_deref()).await?;
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    let server = simulate(w, steps, interval, move |t, w| {
        for i in 0..T as usize {
            if rng.next() < 0.5 {
                p[i] *= 1.0 + (rng.next() - 0.5) * 0.004; // +-0.2%
                v[i] = (rng.next() * 900.0 + 100.0).round();
            }
        }
        write_step(w, |s| {
            s.write_all(&price, &p)?;
            s.write_all(&volume, &v)?;
            s.set(&tick, &[0], t)
        })
        .map(drop)
    });
    Ok((publisher, ctls, server))
}

/// Rolling statistics of one ticker over the last `window` observations.
#[derive(Default)]
struct Rolling {
    samples: VecDeque<(f64, f64)>,
}

impl Rolling {
    fn push(&mut self, price: f64, volume: f64, window: usize) {
        if self.samples.len() == window {
            self.samples.pop_front();
        }
        self.samples.push_back((price, volume));
    }
    fn stats(&self) -> (f64, f64, f64) {
        let n = self.samples.len().max(1) as f64;
        let mean = self.samples.iter().map(|s| s.0).sum::<f64>() / n;
        let var = self.samples.iter().map(|s| (s.0 - mean).powi(2)).sum::<f64>() / n;
        let (pv, vol) = self.samples.iter().fold((0.0, 0.0), |(a, b), s| (a + s.0 * s.1, b + s.1));
        (mean, var.sqrt(), if vol > 0.0 { pv / vol } else { 0.0 })
    }
}

async fn client(
    label: &str,
    addr: SocketAddr,
    tls: ClientTls,
    first: u64,
    steps: u64,
    window: usize,
) -> Result<String, BoxError> {
    let tickers = std::iter::once(0..first).collect::<Vec<_>>(); // one dimension: tickers 0..first
    let picks = [Pick::all("tick"), Pick::slice("price", &tickers), Pick::slice("volume", &tickers)];
    let m = connect_mirror(addr, tls, &picks, &format!("tickers-mirror-{label}"), Duration::from_secs(10)).await?;
    let cat = m.catalog().clone();
    let (tick, price, volume) =
        (cat.get("tick")?.offset as usize, cat.get("price")?.offset as usize, cat.get("volume")?.offset as usize);
    let mut buf = vec![0u8; cat.region_size() as usize];
    let mut stats: Vec<Rolling> = (0..first).map(|_| Rolling::default()).collect();
    let (mut t, mut observed) = (0u64, 0u64);
    let f64s = |b: &[u8]| -> Vec<f64> {
        b.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap_or_default())).collect()
    };
    let mut updates = m.mirror().updates(); // subscribed before the first read: no update is missed
    loop {
        m.region().read_at(0, &mut buf)?; // one consistent read: all arrays of one tick
        let now = u64::from_le_bytes(buf[tick..tick + 8].try_into()?);
        if now != t || observed == 0 {
            t = now;
            observed += 1;
            let p = f64s(&buf[price..price + 8 * first as usize]);
            let v = f64s(&buf[volume..volume + 8 * first as usize]);
            for (i, s) in stats.iter_mut().enumerate() {
                s.push(p[i], v[i], window);
            }
        }
        if t >= steps {
            break;
        }
        if tokio::time::timeout(Duration::from_secs(10), updates.next()).await.is_err() {
            return Err(format!("no update for 10 s (at tick {t})").into());
        }
    }
    let st = m.mirror().stats();
    let mut out = format!(
        "client {label}: {observed} updates observed of {steps} ticks, {} bytes received, tickers 0..{first}\n  {:<6} {:>10} {:>10} {:>9} {:>10}\n",
        st.bytes_received, "ticker", "last", "mean", "stddev", "VWAP"
    );
    let p = f64s(&buf[price..price + 8 * first as usize]);
    for (i, s) in stats.iter().enumerate() {
        let (mean, sd, vwap) = s.stats();
        out += &format!("  {:<6} {:>10.3} {:>10.3} {:>9.4} {:>10.3}\n", NAMES[i], p[i], mean, sd, vwap);
    }
    m.close().await;
    Ok(out)
}

fn main() -> Result<(), BoxError> {
    let a = Args::parse();
    let (steps, interval) = (a.steps, Duration::from_millis(a.interval_ms));
    let (window, first) = (a.window.max(1), a.first.clamp(1, T));
    let clients = |addr: SocketAddr, tls: ClientTls, in_process: bool| async move {
        if !in_process {
            println!("{}", client("1", addr, tls, first, steps, window).await?);
            return Ok(());
        }
        println!("streaming {steps} ticks of {T} tickers every {interval:?}");
        let tls2 = tls.clone();
        let a = tokio::spawn(async move { client("1", addr, tls, T, steps, window).await.map_err(|e| e.to_string()) });
        let b = client("2", addr, tls2, 4, steps, window).await?;
        println!("{}", a.await??);
        println!("{b}");
        Ok(())
    };
    run_simulation(
        &a.net,
        ("tickers", 7200),
        (steps, a.interval_ms),
        &format!("streaming {steps} ticks"),
        serve,
        clients,
    )
}
