//! A relay in a real child process (MirrorConfig::relay +
//! Publisher::bind_relay) is killed with SIGKILL and restarted; the leaf
//! mirror behind it stays consistent: it resumes without a snapshot when the
//! origin did not move meanwhile, and converges blake3-equal with the
//! origin's epoch (preserved end to end) when it did.

mod common;
use common::*;
use rustls::pki_types::CertificateDer;
use std::time::Duration;
use venom_core::{RegionConfig, SeqReader, SeqWriter, testkit};
use venom_net::io::{Mirror, Publisher};
use venom_net::tls::{ClientTls, Identity, ServerTls};
use venom_net::*;

const TEST: &str = "relay_process_killed_and_restarted";
const SIZE: usize = 1 << 20;

/// Child: relay the origin at `origin_port` to `port`, until killed (30 s cap).
fn relay_child(arg: &str) {
    let a: Vec<&str> = arg.split(',').collect();
    let id = Identity::from_der(vec![CertificateDer::from(std::fs::read(a[2]).unwrap())], std::fs::read(a[3]).unwrap())
        .unwrap();
    runtime().block_on(async {
        let origin = format!("127.0.0.1:{}", a[0]).parse().unwrap();
        let tls = ClientTls::pinned(id.cert().clone()).unwrap();
        let local = Box::new(MemRegion::new(SIZE, 16 << 10)); // a fresh process: fresh memory
        let cfg = MirrorConfig { relay: Some(EncoderConfig::default()), ..Default::default() };
        let relay = Mirror::connect(origin, "localhost", Subscription::whole(), tls, local, cfg).unwrap();
        let addr = format!("127.0.0.1:{}", a[1]).parse().unwrap();
        let _p = Publisher::bind_relay(addr, &relay, ServerTls::new(&id).unwrap(), PublisherConfig::default())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
}

#[test]
fn relay_process_killed_and_restarted() {
    if let Some(arg) = testkit::child_arg("relay") {
        relay_child(&arg);
        return;
    }
    let name = testkit::unique_name("net-relay");
    let mut w = SeqWriter::create(&name, RegionConfig::new(SIZE).chunk_size(16 << 10)).unwrap();
    let id = Identity::self_signed(&["localhost"]).unwrap();
    let dir = std::env::temp_dir();
    let (cert, key) = (dir.join(format!("{name}.cert")), dir.join(format!("{name}.key")));
    std::fs::write(&cert, id.cert().as_ref()).unwrap();
    std::fs::write(&key, id.pkcs8_key_der()).unwrap();
    let free_port = || std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut rng = Rng(7);
    let mut write_some = |w: &mut SeqWriter| {
        for _ in 0..200 {
            let off = (rng.next() % (SIZE as u64 - 64)) as usize;
            w.write_at(off, &rng.next().to_le_bytes().repeat(8)).unwrap();
        }
    };
    let local = MemRegion::new(SIZE, 16 << 10);
    let rt = runtime();
    let origin = rt
        .block_on(Publisher::bind(
            loopback(),
            std::sync::Arc::new(SeqReader::open(&name).unwrap()),
            ServerTls::new(&id).unwrap(),
            PublisherConfig::default(),
        ))
        .unwrap();
    let relay_port = free_port();
    let arg = format!("{},{relay_port},{},{}", origin.local_addr().unwrap().port(), cert.display(), key.display());
    let mut child = testkit::spawn_child(TEST, "relay", &arg).unwrap();
    rt.block_on(async {
        let addr = format!("127.0.0.1:{relay_port}").parse().unwrap();
        let tls = ClientTls::pinned(id.cert().clone()).unwrap();
        let leaf = Mirror::connect(
            addr,
            "localhost",
            Subscription::whole(),
            tls,
            Box::new(local.clone()),
            MirrorConfig { check_hash: true, ..Default::default() },
        )
        .unwrap();
        write_some(&mut w);
        converge_with(&w, &local, Duration::from_secs(20)).await;
        let version = RegionSource::version(&SeqReader::open(&name).unwrap());
        eventually(Duration::from_secs(10), "leaf at the origin's (epoch, seq)", || {
            leaf.applied().is_some_and(|a| a.epoch == origin.epoch() && a.seq == version)
        })
        .await;
        // 1. Kill the relay while the origin is quiet: the leaf resumes.
        let (snapshots, matches) = (leaf.stats().snapshots_applied, leaf.stats().hash_matches);
        child.kill9();
        child = testkit::spawn_child(TEST, "relay", &arg).unwrap();
        eventually(Duration::from_secs(20), "leaf reconnected", || leaf.stats().connections >= 2).await;
        eventually(Duration::from_secs(10), "a digest verified after the resume", || {
            leaf.stats().hash_matches > matches
        })
        .await;
        assert_eq!(leaf.stats().snapshots_applied, snapshots, "resumed: no snapshot");
        // 2. Kill it while the origin keeps writing: the leaf converges.
        write_some(&mut w);
        child.kill9();
        write_some(&mut w);
        child = testkit::spawn_child(TEST, "relay", &arg).unwrap();
        write_some(&mut w);
        converge_with(&w, &local, Duration::from_secs(30)).await;
        assert_eq!(leaf.applied().unwrap().epoch, origin.epoch(), "the origin's epoch through the relay");
        assert_eq!(leaf.stats().hash_mismatches, 0);
        leaf.close().await;
    });
    child.kill9();
    rt.block_on(origin.close());
    w.unlink().unwrap();
    let _ = std::fs::remove_file(cert);
    let _ = std::fs::remove_file(key);
}
