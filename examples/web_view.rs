//! Watch a region live in the browser: a Game of Life (default), an existing
//! local region, or a mirror of a remote publisher, bridged to a page over a
//! WebSocket by `venom_net::web`.
//!
//! `cargo run --release -p venom-examples --example web_view` then open
//! <http://127.0.0.1:8080/>. Run with `--help` for the flags.

use clap::Parser;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use venom_core::SeqReader;
use venom_examples::life_world::LifeWorld;
use venom_examples::net_cli::{self, BoxError};
use venom_net::named::{NamedMirror, fetch_catalog};
use venom_net::proto::catalog::{Catalog, Pick};
use venom_net::web::{WebConfig, WebView};
use venom_net::{MirrorConfig, RegionSource};

/// Serves a live view of a venom region's named arrays: 2-D arrays as heat
/// maps, 1-D arrays as line charts. Read-only.
///
/// SECURITY: it listens on 127.0.0.1 unless --listen says otherwise. When you
/// expose it, pass --token: the page then needs `?token=...`, which is the ONLY
/// authentication and travels in plain HTTP (use a TLS proxy on untrusted networks).
#[derive(Parser, Debug)]
#[command(name = "web_view")]
struct Args {
    /// Address to serve the page on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Access token required as `?token=` (1..=128 of [A-Za-z0-9_.~-]); `random` makes one.
    #[arg(long)]
    token: Option<String>,
    /// Show an existing local region (it must carry a venom_net catalog) instead of the life demo.
    #[arg(long, conflicts_with = "mirror")]
    region: Option<String>,
    /// Mirror the region published at this address (all its named arrays) and show the mirror.
    #[arg(long)]
    mirror: Option<SocketAddr>,
    /// Directory holding the publisher's certificate `server.der` (with --mirror).
    #[arg(long, requires = "mirror")]
    certs: Option<String>,
    /// Side of the life world (demo mode).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u16).range(8..=1024))]
    size: u16,
    /// Pause between generations in ms (demo mode).
    #[arg(long, default_value_t = 50)]
    interval_ms: u64,
    /// Most updates per second sent to browsers (faster changes are conflated).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=1000))]
    max_fps: u32,
    /// Most browsers at once.
    #[arg(long, default_value_t = 32)]
    max_browsers: usize,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    seconds: Option<u64>,
}

fn random_token() -> Result<String, BoxError> {
    let mut b = [0u8; 16];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let token = match args.token.as_deref() {
        Some("random") => Some(random_token()?),
        t => t.map(str::to_owned),
    };
    if !args.listen.ip().is_loopback() && token.is_none() {
        eprintln!(
            "WARNING: serving on {} WITHOUT a token: anyone who can reach it sees the data (add --token random)",
            args.listen
        );
    }
    let cfg = |title: String| WebConfig {
        listen: args.listen,
        token: token.clone(),
        max_fps: args.max_fps,
        max_browsers: args.max_browsers,
        title,
        ..WebConfig::default()
    };
    // Deadline: `--seconds 18446744073709551615` means "no deadline", not an overflow panic.
    let deadline = args.seconds.and_then(|s| venom_core::Deadline::after(Duration::from_secs(s)).instant());

    if let Some(name) = &args.region {
        let reader = SeqReader::open(name)?;
        let catalog = Catalog::read_from(reader.region())?;
        let view = WebView::serve(Arc::new(reader), catalog, cfg(format!("region {name}"))).await?;
        println!("serving region {name:?} at {}", view.url());
        wait(deadline).await;
        view.close().await;
    } else if let Some(addr) = args.mirror {
        let dir = args.certs.as_deref().ok_or("--mirror needs --certs DIR (with the publisher's server.der)")?;
        let tls = net_cli::client_tls(dir)?;
        let remote = fetch_catalog(addr, "localhost", tls.clone(), Duration::from_secs(10)).await?;
        let picks: Vec<Pick> = remote.arrays().iter().map(|a| Pick::all(&a.name)).collect();
        let local = format!("web-view-mirror-{}", std::process::id());
        let m = NamedMirror::connect(
            addr,
            "localhost",
            tls,
            &picks,
            &local,
            MirrorConfig::default(),
            Duration::from_secs(10),
        )
        .await?;
        let source: Arc<dyn RegionSource> = Arc::new(SeqReader::open(&local)?);
        let view = WebView::serve(source, m.catalog().clone(), cfg(format!("mirror of {addr}"))).await?;
        println!("serving a mirror of {addr} at {}", view.url());
        wait(deadline).await;
        view.close().await;
        m.close().await;
    } else {
        let n = args.size as usize;
        let name = format!("web-view-life-{}", std::process::id());
        let mut world = LifeWorld::create(&name, n, 0x2545_F491_4F6C_DD1D)?;
        let reader = SeqReader::open(&name)?;
        let catalog = Catalog::read_from(reader.region())?;
        let view = WebView::serve(Arc::new(reader), catalog, cfg(format!("life {n}x{n}"))).await?;
        println!("serving a {n}x{n} Game of Life at {}", view.url());
        let interval = Duration::from_millis(args.interval_ms);
        let stop = Arc::new(AtomicBool::new(false));
        let sim = {
            let stop = stop.clone();
            std::thread::spawn(move || -> venom_net::Result<()> {
                // Relaxed: a stop flag; nothing else is published through it.
                while !stop.load(Ordering::Relaxed) && deadline.is_none_or(|d| Instant::now() < d) {
                    std::thread::sleep(interval);
                    world.advance()?;
                }
                world.writer().unlink()?;
                Ok(())
            })
        };
        while !sim.is_finished() {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = tokio::signal::ctrl_c() => break,
            }
        }
        stop.store(true, Ordering::Relaxed);
        sim.join().map_err(|_| "the simulation thread panicked")??;
        let st = view.stats();
        println!(
            "{} versions, {} delta frames of {} bytes on average ({} changed bytes), {} browsers served",
            st.versions,
            st.delta_frames,
            st.delta_bytes / st.delta_frames.max(1),
            st.changed_bytes / st.delta_frames.max(1),
            st.browsers_total
        );
        view.close().await;
    }
    Ok(())
}

async fn wait(deadline: Option<Instant>) {
    match deadline {
        Some(d) => {
            tokio::select! {
                _ = tokio::time::sleep_until(d.into()) => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        None => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
