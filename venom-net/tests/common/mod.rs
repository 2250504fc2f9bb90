//! Helpers shared by the loopback tests.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};
use venom_net::io::{Mirror, Publisher};
use venom_net::tls::{ClientTls, Identity, ServerTls};
use venom_net::*;

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

pub fn loopback() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

pub struct Dev {
    pub id: Identity,
}

impl Dev {
    pub fn new() -> Dev {
        Dev { id: Identity::self_signed(&["localhost"]).unwrap() }
    }
    pub fn server(&self) -> ServerTls {
        ServerTls::new(&self.id).unwrap()
    }
    pub fn client(&self) -> ClientTls {
        ClientTls::pinned(self.id.cert().clone()).unwrap()
    }
}

pub async fn publish(region: &MemRegion, tls: ServerTls, cfg: PublisherConfig) -> Publisher {
    Publisher::bind(loopback(), Arc::new(region.clone()), tls, cfg).await.unwrap()
}

pub fn mirror(
    p_addr: std::net::SocketAddr,
    sub: Subscription,
    tls: ClientTls,
    local: &MemRegion,
    check_hash: bool,
) -> Mirror {
    let cfg = MirrorConfig { check_hash, ..Default::default() };
    Mirror::connect(p_addr, "localhost", sub, tls, Box::new(local.clone()), cfg).unwrap()
}

/// Publisher's subscribed bytes and the mirror's local copy of them, both in virtual order.
pub fn sides(region: &MemRegion, sub: &Subscription, local: &MemRegion) -> ([u8; 32], [u8; 32]) {
    let c = sub.compile(RegionSource::size(region) as u64).unwrap();
    let (src, dst) = (region.to_vec(), local.to_vec());
    let (mut a, mut b) = (blake3::Hasher::new(), blake3::Hasher::new());
    for r in c.runs() {
        a.update(&src[r.src as usize..(r.src + r.len) as usize]);
        b.update(&dst[r.dst as usize..(r.dst + r.len) as usize]);
    }
    (*a.finalize().as_bytes(), *b.finalize().as_bytes())
}

/// Waits (async) until the mirror's subscribed bytes equal the publisher's.
pub async fn converge(region: &MemRegion, sub: &Subscription, local: &MemRegion, timeout: Duration) {
    let start = Instant::now();
    loop {
        let (a, b) = sides(region, sub, local);
        if a == b {
            return;
        }
        assert!(start.elapsed() < timeout, "mirror did not converge within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// xorshift64* (seeded, no dependency).
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform-ish in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Random writes (random offsets, lengths 1..256) for `dur`; returns the count.
pub fn random_writes(region: &MemRegion, seed: u64, dur: Duration) -> u64 {
    let mut rng = Rng(seed | 1);
    let size = RegionSource::size(region);
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < dur {
        let len = 1 + (rng.next() % 256) as usize;
        let off = (rng.next() % (size - len) as u64) as usize;
        let fill = rng.next().to_le_bytes();
        let data: Vec<u8> = (0..len).map(|i| fill[i % 8] ^ i as u8).collect();
        region.write_at(off, &data);
        n += 1;
        if n % 64 == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    n
}

pub fn soak_duration(short: Duration) -> Duration {
    if std::env::var_os("VENOM_SOAK").is_some() { Duration::from_secs(60) } else { short }
}

/// Waits (async, polling every 10 ms) until `cond` holds or `timeout`
/// passes; returns whether it held (for callers that report their own state).
pub async fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() >= timeout {
            return cond();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}

/// Waits (async) until `cond` holds; panics after `timeout`.
pub async fn eventually(timeout: Duration, what: &str, cond: impl FnMut() -> bool) {
    assert!(wait_until(timeout, cond).await, "timed out waiting for {what}");
}

/// Waits (polling every 20 ms, at most `timeout`) until `local` holds the
/// same bytes as the writer's region, compared by blake3.
pub async fn converge_with(w: &venom_core::SeqWriter, local: &MemRegion, timeout: Duration) {
    let start = Instant::now();
    let mut buf = vec![0u8; w.size()];
    loop {
        w.read_at(0, &mut buf).unwrap();
        if blake3::hash(&buf) == blake3::hash(&local.to_vec()) {
            return;
        }
        assert!(start.elapsed() < timeout, "local copy did not converge within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
