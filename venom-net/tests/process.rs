//! A publisher in a real child process is killed with SIGKILL mid-stream and
//! restarted (new epoch); the mirror reconnects and converges.

mod common;
use common::*;
use rustls::pki_types::CertificateDer;
use std::sync::Arc;
use std::time::{Duration, Instant};
use venom_core::{RegionConfig, SeqReader, SeqWriter, testkit};
use venom_net::io::{Mirror, Publisher};
use venom_net::tls::{ClientTls, Identity, ServerTls};
use venom_net::*;

const TEST: &str = "publisher_process_killed_and_restarted";

/// Child: serve region `name` on `port` with the given certificate, until killed (30 s cap).
fn publisher_child(arg: &str) {
    let a: Vec<&str> = arg.split(',').collect();
    let id = Identity::from_der(vec![CertificateDer::from(std::fs::read(a[2]).unwrap())], std::fs::read(a[3]).unwrap())
        .unwrap();
    runtime().block_on(async {
        let addr = format!("127.0.0.1:{}", a[1]).parse().unwrap();
        let region = Arc::new(SeqReader::open(a[0]).unwrap());
        let _p = Publisher::bind(addr, region, ServerTls::new(&id).unwrap(), PublisherConfig::default()).await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
}

#[test]
fn publisher_process_killed_and_restarted() {
    if let Some(arg) = testkit::child_arg("publisher") {
        publisher_child(&arg);
        return;
    }
    let name = testkit::unique_name("net-proc");
    let mut w = SeqWriter::create(&name, RegionConfig::new(1 << 20).chunk_size(16 << 10)).unwrap();
    let id = Identity::self_signed(&["localhost"]).unwrap();
    let dir = std::env::temp_dir();
    let (cert, key) = (dir.join(format!("{name}.cert")), dir.join(format!("{name}.key")));
    std::fs::write(&cert, id.cert().as_ref()).unwrap();
    std::fs::write(&key, id.pkcs8_key_der()).unwrap();
    let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let arg = format!("{name},{port},{},{}", cert.display(), key.display());
    let mut child = testkit::spawn_child(TEST, "publisher", &arg).unwrap();
    let local = MemRegion::new(1 << 20, 16 << 10);
    let mut rng = Rng(99);
    let mut write_some = |w: &mut SeqWriter| {
        for _ in 0..300 {
            let off = (rng.next() % ((1 << 20) - 64)) as usize;
            w.write_at(off, &rng.next().to_le_bytes().repeat(8)).unwrap();
        }
    };
    runtime().block_on(async {
        let addr = format!("127.0.0.1:{port}").parse().unwrap();
        let tls = ClientTls::pinned(id.cert().clone()).unwrap();
        let m = Mirror::connect(
            addr,
            "localhost",
            Subscription::whole(),
            tls,
            Box::new(local.clone()),
            MirrorConfig::default(),
        )
        .unwrap();
        write_some(&mut w);
        converge_with(&w, &local, Duration::from_secs(20)).await;
        let epoch1 = m.wait_until(Duration::from_secs(10), |_, _| true).unwrap().epoch;
        // Kill the publisher mid-stream: writes continue while it is down.
        write_some(&mut w);
        child.kill9();
        write_some(&mut w);
        child = testkit::spawn_child(TEST, "publisher", &arg).unwrap();
        write_some(&mut w);
        converge_with(&w, &local, Duration::from_secs(30)).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while m.applied().unwrap().epoch == epoch1 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_ne!(m.applied().unwrap().epoch, epoch1, "restarted publisher has a new epoch");
        assert!(m.stats().connections >= 2);
        m.close().await;
    });
    child.kill9();
    w.unlink().unwrap();
    let _ = std::fs::remove_file(cert);
    let _ = std::fs::remove_file(key);
}
