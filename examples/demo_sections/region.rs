//! Demo section `region`: one writer process, one reader process, a
//! seqlock-protected region in shared memory.
//!
//! The writer fills a 1 MiB region with a repeated counter, a few thousand
//! times; the reader (another process) follows along with
//! `wait_for_change`, checks that every read is whole (all words equal), and
//! reports versions and read bandwidth.

use std::time::{Duration, Instant};

use venom_core::{RegionConfig, SeqReader, SeqWriter};
use venom_examples::Children;

const SIZE: usize = 1 << 20;
const WRITES: u64 = 2000;
/// Pause between writes: a paced writer (10k updates/s), as a real
/// publisher of state would be. A writer that rewrites 1 MiB back to back
/// starves readers of whole-region reads (see the seqlock limits).
const PACE: Duration = Duration::from_micros(100);

/// Parent: becomes the writer, spawns the reader.
pub fn run(exe: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let name = format!("demo-region-{}", std::process::id());
    let mut writer = SeqWriter::create(&name, RegionConfig::new(SIZE))?;
    let mut buf = vec![0u8; SIZE];
    writer.write(&buf)?;
    println!(
        "  writer pid {} created region {name:?}: {} KiB, {} chunks",
        std::process::id(),
        SIZE >> 10,
        writer.chunk_count()
    );
    let mut reader = Children::new("region");
    reader.spawn(exe, &["reader", &name])?;
    // Give the reader a moment to attach, bounded.
    let deadline = Instant::now() + Duration::from_secs(5);
    while writer.version() == 2 && Instant::now() < deadline && !reader_ready(&name) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let t = Instant::now();
    let mut in_write = Duration::ZERO;
    for c in 1..=WRITES {
        for w in buf.chunks_exact_mut(8) {
            w.copy_from_slice(&c.to_le_bytes());
        }
        let tw = Instant::now();
        writer.write(&buf)?;
        in_write += tw.elapsed();
        std::thread::sleep(PACE);
    }
    println!(
        "  writer: {WRITES} whole-region writes in {:.0} ms; write bandwidth {:.1} GB/s incl. dirty marking; version now {}",
        t.elapsed().as_secs_f64() * 1e3,
        (WRITES as f64 * SIZE as f64) / in_write.as_secs_f64() / 1e9,
        writer.version()
    );
    let joined = reader.join(Duration::from_secs(20));
    writer.unlink()?;
    joined
}

fn reader_ready(name: &str) -> bool {
    std::path::Path::new(&format!("/tmp/{name}.ready")).exists()
}

/// Child: the reader.
pub fn child(role: &str, args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    if role != "reader" {
        return Err(format!("unknown region role {role}").into());
    }
    let name = args.first().ok_or("missing region name")?;
    let reader = SeqReader::open(name)?;
    let ready = format!("/tmp/{name}.ready");
    std::fs::write(&ready, b"")?;
    let mut buf = vec![0u8; reader.size()];
    let (mut reads, mut bytes, mut versions_seen) = (0u64, 0u64, 0u64);
    let mut copy_time = Duration::ZERO;
    let mut last = reader.version();
    let first = last;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match reader.wait_for_change(last, Duration::from_millis(200)) {
            Ok(_) => {}
            Err(venom_core::Error::Timeout(_)) => break, // the writer is done
            Err(e) => return Err(e.into()),
        }
        let t = Instant::now();
        let v = reader.read_at(0, &mut buf)?;
        copy_time += t.elapsed();
        let word0 = &buf[..8];
        if !buf.chunks_exact(8).all(|w| w == word0) {
            return Err("torn read".into());
        }
        reads += 1;
        bytes += buf.len() as u64;
        versions_seen += (v - last) / 2;
        last = v;
    }
    let _ = std::fs::remove_file(ready);
    println!(
        "  reader pid {}: {reads} whole, untorn reads following versions {first} -> {last} \
         ({versions_seen} writes, the rest conflated); read bandwidth {:.1} GB/s",
        std::process::id(),
        bytes as f64 / copy_time.as_secs_f64().max(1e-9) / 1e9
    );
    Ok(())
}
