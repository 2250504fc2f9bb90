//! Replicates a shared-memory region to a mirror over QUIC on loopback.
//!
//! Run `cargo run --release -p venom-examples --example replicate -- --help`.

use clap::{Parser, ValueEnum};
use std::sync::Arc;
use std::time::{Duration, Instant};
use venom_core::{RegionConfig, SeqReader, SeqWriter};
use venom_net::io::{Mirror, Publisher};
use venom_net::tls::{ClientTls, Identity, ServerTls};
use venom_net::{Dtype, MirrorConfig, PublisherConfig, Subscription};

/// Publisher + mirror of a venom SeqRegion over QUIC (TLS 1.3) on loopback.
///
/// Each round rewrites a random DIRTY% of the publisher's region in 4 KiB
/// blocks (about a quarter of each block's bytes actually change), waits
/// until the mirror has applied it, and prints the bytes put on the wire. At
/// the end the mirror's subscribed bytes are compared with the publisher's
/// by blake3.
#[derive(Parser)]
#[command(name = "replicate")]
struct Args {
    /// Region size in MiB.
    #[arg(long = "size", value_name = "MIB", default_value = "64", value_parser = parse_mib)]
    size: usize,
    /// Percent of the region rewritten per round.
    #[arg(long, value_name = "PCT", default_value_t = 1.0)]
    dirty: f64,
    /// Rounds.
    #[arg(long, value_name = "N", default_value_t = 10)]
    rounds: usize,
    /// What the mirror subscribes to: whole | range (the middle half) | slice
    /// (rows 100..200 of the region viewed as an f64 matrix with 1024 columns).
    #[arg(long, value_enum, value_name = "KIND", default_value_t = Sub::Whole)]
    sub: Sub,
    /// Publisher sends blake3 digests, the mirror verifies them.
    #[arg(long = "check-hash")]
    check_hash: bool,
}

/// `--sub` values.
#[derive(Clone, Copy, ValueEnum)]
enum Sub {
    Whole,
    Range,
    Slice,
}

/// MiB to bytes.
fn parse_mib(s: &str) -> Result<usize, String> {
    let mib: usize = s.parse().map_err(|e| format!("{e}"))?;
    mib.checked_mul(1 << 20).ok_or_else(|| format!("{mib} MiB is too large"))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = Args::parse();
    let sub_name = a.sub.to_possible_value().map(|v| v.get_name().to_owned()).unwrap_or_default();
    let (sub, local_size) = match a.sub {
        Sub::Whole => (Subscription::whole(), a.size),
        Sub::Range => (Subscription::range((a.size / 4) as u64, (a.size / 2) as u64, 0), a.size / 2),
        Sub::Slice => {
            let rows = (a.size / (1024 * 8)) as u64;
            let sub = Subscription::slice(0, Dtype::F64, &[rows, 1024], &[100..200.min(rows), 0..1024], 0);
            (sub, 100 * 1024 * 8)
        }
    };
    let pid = std::process::id();
    let (pub_name, mir_name) = (format!("replicate-pub-{pid}"), format!("replicate-mir-{pid}"));
    let mut w = SeqWriter::create(&pub_name, RegionConfig::new(a.size))?;
    let local = SeqWriter::create(&mir_name, RegionConfig::new(local_size))?;
    let local_reader = SeqReader::open(&mir_name)?;
    let rt = venom_examples::net_cli::runtime()?;
    let _enter = rt.enter();
    let id = Identity::self_signed(&["localhost"])?;
    let publisher = rt.block_on(Publisher::bind(
        "127.0.0.1:0".parse()?,
        Arc::new(SeqReader::open(&pub_name)?),
        ServerTls::new(&id)?,
        PublisherConfig::default(),
    ))?;
    let t = Instant::now();
    let mirror = Mirror::connect(
        publisher.local_addr()?,
        "localhost",
        sub.clone(),
        ClientTls::pinned(id.cert().clone())?,
        Box::new(local),
        MirrorConfig { check_hash: a.check_hash, ..Default::default() },
    )?;
    mirror.wait_for_update(Duration::from_secs(30))?;
    println!("snapshot of {} MiB ({}) applied in {:.1} ms", a.size >> 20, sub_name, t.elapsed().as_secs_f64() * 1e3);

    let mut rng = 0x2545_F491_4F6C_DD1Du64 ^ pid as u64;
    let blocks = ((a.size as f64 * a.dirty / 100.0) / 4096.0).ceil() as usize;
    for round in 0..a.rounds {
        let before = publisher.stats().first().map(|s| (s.bytes_sent, s.payload_bytes)).unwrap_or_default();
        let t = Instant::now();
        let ((), v) = w.write_with(|r| {
            for _ in 0..blocks {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let off = (rng as usize % (a.size / 4096)) * 4096;
                for k in (0..4096).step_by(16) {
                    r.store(off + k, &(rng.wrapping_add(k as u64) as u32))?;
                }
            }
            Ok(())
        })?;
        mirror.wait_until(Duration::from_secs(30), |_, ap| ap.seq >= v).ok();
        let after = publisher.stats().first().map(|s| (s.bytes_sent, s.payload_bytes)).unwrap_or_default();
        println!(
            "round {round}: {blocks} blocks dirtied, {:.0} KiB of region bytes sent ({:.0} KiB frames) in {:.1} ms",
            (after.1 - before.1) as f64 / 1024.0,
            (after.0 - before.0) as f64 / 1024.0,
            t.elapsed().as_secs_f64() * 1e3
        );
    }
    std::thread::sleep(Duration::from_millis(200));
    let c = sub.compile(a.size as u64)?;
    let (mut hp, mut hm) = (blake3::Hasher::new(), blake3::Hasher::new());
    for r in c.runs() {
        let mut buf = vec![0u8; r.len as usize];
        w.read_at(r.src as usize, &mut buf)?;
        hp.update(&buf);
        local_reader.read_at(r.dst as usize, &mut buf)?;
        hm.update(&buf);
    }
    let (hp, hm) = (hp.finalize(), hm.finalize());
    println!(
        "publisher blake3 {}\nmirror    blake3 {}\n{}",
        hp.to_hex(),
        hm.to_hex(),
        if hp == hm { "EQUAL" } else { "DIFFERENT" }
    );
    println!("mirror stats: {:?}", mirror.stats());
    rt.block_on(mirror.close());
    rt.block_on(publisher.close());
    w.unlink()?;
    local_reader.segment().unlink()?;
    if hp != hm {
        return Err("mirror differs".into());
    }
    Ok(())
}
