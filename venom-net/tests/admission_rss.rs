//! The publisher's memory stays bounded during a connection attack while a
//! legitimate mirror keeps converging. One test per file: it reads this
//! process's VmRSS, which other tests running in parallel would disturb.

mod common;
use common::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use venom_net::io::bind_endpoint;
use venom_net::proto::admission::Refusal;
use venom_net::proto::frame::{Frame, Hello, PROTOCOL_VERSION};
use venom_net::*;

/// The documented bound (crate docs, "Bounds"): RSS growth of the whole
/// test process (publisher AND attackers) during the attack.
const RSS_BOUND: u64 = 64 << 20;

fn vm_rss() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

/// Defaults everywhere but the per-address cap (the caps under test are the documented ones), in
/// pinned mode without client authentication: the attackers are anonymous,
/// so only the global caps stand between them and the publisher's memory.
#[test]
fn publisher_memory_is_bounded_under_attack_while_a_mirror_converges() {
    runtime().block_on(async {
        let dev = Dev::new();
        let region = MemRegion::new(256 << 10, 4096);
        // The attackers all come from 127.0.0.1: lift the per-address cap so
        // they model a distributed attack that only the global caps stop.
        let mut cfg = PublisherConfig::default();
        cfg.admission.per_address = usize::MAX;
        let p = publish(&region, dev.server(), cfg).await;
        let addr = p.local_addr().unwrap();
        let sub = Subscription::whole();
        let local = MemRegion::new(256 << 10, 4096);
        let m = mirror(addr, sub.clone(), dev.client(), &local, true);
        converge(&region, &sub, &local, Duration::from_secs(10)).await;

        // A writer keeps changing the region for the whole attack.
        let stop = Arc::new(AtomicBool::new(false));
        let writes = Arc::new(AtomicU64::new(0));
        let writer = {
            let (region, stop, writes) = (region.clone(), stop.clone(), writes.clone());
            tokio::spawn(async move {
                let mut rng = Rng(42);
                while !stop.load(Ordering::Relaxed) {
                    let at = (rng.next() % ((256 << 10) - 64)) as usize;
                    region.write_at(at, &rng.next().to_le_bytes());
                    writes.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
        };
        let flood: Arc<[u8]> = vec![0u8; 8 << 20].into();
        let mut ep = bind_endpoint(loopback(), None).unwrap();
        ep.set_default_client_config(dev.client().quinn_config());
        tokio::time::sleep(Duration::from_millis(100)).await;
        let baseline = vm_rss();
        let peak = Arc::new(AtomicU64::new(baseline));
        let sampler = {
            let (peak, stop) = (peak.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    peak.fetch_max(vm_rss(), Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };

        // The attack: stalled hellos, silent sessions, stream floods.
        let mut hello = Vec::new();
        Frame::Hello(Hello { mirror_id: 66, region_id: 0, check_hash: true, subscription: Subscription::whole(), resume: None })
            .encode(&mut hello);
        let stalled = [b'V', b'N', PROTOCOL_VERSION, 1, 100, 0, 0, 0];
        let mut attackers = tokio::task::JoinSet::new();
        for i in 0..96u32 {
            let (ep, flood, hello) = (ep.clone(), flood.clone(), hello.clone());
            attackers.spawn(async move {
                // Staggered, so most attempts pass the handshake cap and reach the later caps.
                tokio::time::sleep(Duration::from_millis(8) * i).await;
                let Ok(connecting) = ep.connect(addr, "localhost") else { return };
                let Ok(conn) = connecting.await else { return };
                let Ok((mut send, recv)) = conn.open_bi().await else { return };
                match i {
                    // Silent sessions first: they become live and hold the most memory.
                    0..48 => {
                        let _ = send.write_all(&hello).await; // then never read
                    }
                    48..72 => {
                        let _ = send.write_all(&stalled).await;
                    }
                    _ => {
                        let _ = tokio::time::timeout(Duration::from_secs(1), conn.open_bi()).await;
                        let _ = tokio::time::timeout(Duration::from_secs(1), send.write_all(&flood)).await;
                    }
                }
                let _ = tokio::time::timeout(Duration::from_secs(4), conn.closed()).await;
                drop((send, recv));
            });
        }
        // Meanwhile a new legitimate mirror gets in (once a stalled hello's slot frees at the latest).
        let joined = Instant::now();
        let local2 = MemRegion::new(256 << 10, 4096);
        let m2 = mirror(addr, sub.clone(), dev.client(), &local2, true);
        assert!(
            wait_until(Duration::from_secs(10), || m2.applied().is_some()).await,
            "new mirror refused: {:?}",
            m2.last_refusal()
        );
        let join_time = joined.elapsed();
        while attackers.join_next().await.is_some() {}
        stop.store(true, Ordering::Relaxed);
        writer.await.unwrap();
        sampler.await.unwrap();
        converge(&region, &sub, &local, Duration::from_secs(10)).await;
        converge(&region, &sub, &local2, Duration::from_secs(10)).await;

        let grown = peak.load(Ordering::Relaxed).saturating_sub(baseline);
        let a = p.admission();
        eprintln!(
            "baseline {} MiB, peak growth {:.1} MiB during the attack; {} writes; new mirror in after {join_time:?}; {a:?}",
            baseline >> 20,
            grown as f64 / (1 << 20) as f64,
            writes.load(Ordering::Relaxed),
        );
        assert!(grown <= RSS_BOUND, "RSS grew {grown} bytes (bound {RSS_BOUND})");
        assert!(a.refused(Refusal::HelloTimeout) + a.refused(Refusal::Busy) > 0, "{a:?}");
        assert!(m.stats().hash_mismatches == 0 && m2.stats().hash_mismatches == 0);
        m.close().await;
        m2.close().await;
        p.close().await;
    });
}
