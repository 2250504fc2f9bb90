//! Demo section `net`: replicate a shared-memory region to a mirror over
//! QUIC on loopback, verify the mirror by blake3 from another process, and
//! show how few bytes the deltas put on the wire.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use venom_core::{RegionConfig, SeqReader, SeqWriter};
use venom_net::io::{Mirror, Publisher};
use venom_net::tls::{ClientTls, Identity, ServerTls};
use venom_net::{MirrorConfig, PublisherConfig, Subscription};

const SIZE: usize = 8 << 20;

/// Runs the section from the parent demo process.
pub fn run(exe: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let pid = std::process::id();
    let (pub_name, mir_name) = (format!("venom-demo-net-pub-{pid}"), format!("venom-demo-net-mir-{pid}"));
    let mut writer = SeqWriter::create(&pub_name, RegionConfig::new(SIZE).chunk_size(64 << 10))?;
    let local = SeqWriter::create(&mir_name, RegionConfig::new(SIZE))?;
    let result = story(exe, &mut writer, local, &pub_name, &mir_name);
    writer.unlink()?;
    let _ = SeqReader::open(&mir_name).and_then(|r| r.segment().unlink());
    result
}

fn story(
    exe: &Path,
    writer: &mut SeqWriter,
    local: SeqWriter,
    pub_name: &str,
    mir_name: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let seed: Vec<u8> = (0..SIZE).map(|i| (i * 31 % 251) as u8).collect();
    writer.write_at(0, &seed)?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let _enter = rt.enter();
    let id = Identity::self_signed(&["localhost"])?;
    let source = Arc::new(SeqReader::open(pub_name)?);
    let publisher =
        rt.block_on(Publisher::bind("127.0.0.1:0".parse()?, source, ServerTls::new(&id)?, PublisherConfig::default()))?;
    let t0 = Instant::now();
    let mirror = Mirror::connect(
        publisher.local_addr()?,
        "localhost",
        Subscription::whole(),
        ClientTls::pinned(id.cert().clone())?,
        Box::new(local),
        MirrorConfig { check_hash: true, ..Default::default() },
    )?;
    let v = writer.version();
    mirror.wait_until(Duration::from_secs(5), |_, a| a.seq >= v)?;
    println!(
        "  publisher {} (TLS 1.3, pinned self-signed cert) -> mirror: 8 MiB snapshot applied in {:.1} ms",
        publisher.local_addr()?,
        t0.elapsed().as_secs_f64() * 1e3
    );

    // Small scattered writes: each one is a 64-byte change somewhere in the region.
    let before = publisher.stats().first().map(|s| (s.bytes_sent, s.payload_bytes)).unwrap_or_default();
    let mut lat = Vec::new();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let rounds = 200;
    for i in 0..rounds {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let off = (rng as usize) % (SIZE - 64);
        let t = Instant::now();
        let v = writer.write_at(off, &[i as u8 ^ 0xA5; 64])?;
        mirror.wait_until(Duration::from_secs(5), |_, a| a.seq >= v)?;
        lat.push(t.elapsed());
    }
    lat.sort();
    let after = publisher.stats().first().map(|s| (s.bytes_sent, s.payload_bytes)).unwrap_or_default();
    let (sent, payload) = (after.0 - before.0, after.1 - before.1);
    let changed = rounds * 64;
    println!(
        "  {rounds} writes of 64 B: write->mirror-visible p50 {:.0} us, p99 {:.0} us (loopback)",
        lat[lat.len() / 2].as_secs_f64() * 1e6,
        lat[lat.len() * 99 / 100].as_secs_f64() * 1e6
    );
    println!(
        "  sent {payload} B of region bytes for {changed} B changed ({sent} B of frames incl. 65 B headers per update and \
         blake3 digests); resending dirty 64 KiB chunks would be {} KiB, whole-region diffs {} MiB",
        rounds * 64,
        rounds * 8
    );
    // The digest of the final state follows within the hash interval (100 ms).
    let checks = mirror.stats().hash_matches;
    let t = Instant::now();
    while mirror.stats().hash_matches == checks && t.elapsed() < Duration::from_secs(1) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let st = mirror.stats();
    println!(
        "  mirror: {} updates ({} snapshot), blake3 checks {} ok / {} mismatches, lag {:?}",
        st.updates_applied, st.snapshots_applied, st.hash_matches, st.hash_mismatches, st.lag_time
    );

    // Verify from another process, through the ordinary venom-core reader API.
    let mut all = vec![0u8; SIZE];
    writer.read_at(0, &mut all)?;
    let want = blake3::hash(&all).to_hex().to_string();
    let out = std::process::Command::new(exe).args(["--child", "net", "verify", mir_name]).output()?;
    let got = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || got != want {
        return Err(format!("mirror hash {got:?} != publisher hash {want}").into());
    }
    println!("  child process read the mirror's shared memory: blake3 {}... equals the publisher's", &want[..16]);
    rt.block_on(mirror.close());
    rt.block_on(publisher.close());
    Ok(())
}

/// Entry point for a child process: `verify <mirror region name>` prints the blake3 of the region.
pub fn child(role: &str, args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    match role {
        "verify" => {
            let name = args.first().ok_or("verify needs a region name")?;
            let r = SeqReader::open(name)?;
            let mut all = vec![0u8; r.size()];
            r.read_at(0, &mut all)?;
            println!("{}", blake3::hash(&all).to_hex());
            Ok(())
        }
        _ => Err(format!("unknown net child role {role}").into()),
    }
}
