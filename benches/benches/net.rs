//! venom-net on loopback against raw quinn and TLS-over-TCP, measured in the same run.
//!
//! `cargo bench -p venom-benches --bench net -- --warm-up-time 1 --measurement-time 3`
//!
//! Transport ceilings (64 MiB server -> client, the publisher -> mirror
//! direction, same TLS and transport settings and socket buffers as venom-net):
//! * `raw_quinn_bulk`: one QUIC stream, 1 MiB chunks, zero-copy reads.
//! * `raw_quinn_2streams`: two streams of 32 MiB on one connection, concurrently.
//! * `raw_quinn_2conns`: two connections (two client sockets), one 32 MiB stream each, concurrently.
//! * `tls_tcp_bulk`: rustls (ring, TLS 1.3) over a loopback TCP socket, one
//!   blocking thread per side (the kernel-TCP baseline).
//!
//! venom-net (SeqRegion -> QUIC -> SeqRegion):
//! * `snapshot_new_mirror`: a new mirror connects and receives a full 64 MiB
//!   snapshot (TLS handshake and session setup included).
//! * `snapshot`: a connected mirror asks for a full 64 MiB snapshot
//!   (`Mirror::request_snapshot`): the steady-state snapshot throughput.
//! * `delta/{1pct,10pct}/{uniform,clustered}`: 1% or 10% of the region (4 KiB
//!   blocks of fresh bytes) rewritten in one write, then the time until the
//!   mirror applied it; throughput counts the changed bytes. `uniform`
//!   spreads the blocks over the whole region (almost every 64 KiB chunk is
//!   dirty), `clustered` writes one contiguous range. The fresh bytes are
//!   generated before the clock starts.
//! * `quic_rtt_64B`: a 64-byte echo over a quinn stream (the RTT baseline).
//! * `latency_64B`: one 64-byte write until it is visible in the mirror's
//!   region (p50/p99 printed at the end).
//! * Wire bytes per changed byte (1% and 10% dirty) are printed, not timed.
//! * A summary prints each throughput row's median over its timed
//!   iterations (criterion's warm-up included) and its ratio to
//!   `raw_quinn_bulk`, and whether quinn-udp has GSO/GRO on this host.
//! * `paced_64B/{hash_off,hash_on}/{8MiB,64MiB}`: 64-byte writes at random
//!   offsets, one per millisecond, into a publisher with one mirror (with or
//!   without `check_hash`); the time from each write until the mirror applied
//!   it. p50/p99 and the on/off p99 ratio per size are printed at the end.
//!   Alone: `cargo bench -p venom-benches --bench net -- paced`; a filter
//!   that does not mention `paced` skips them.
//! * `encode_step/{10pct,1pct}/uniform`, `encode_step/10pct/clustered`: the
//!   publisher's shared encoder alone (no network): one step (consistent
//!   read of the dirty pages, diff against the shadow, shadow update, frame
//!   encode) after the same rewrites as the delta rows, timed without the
//!   write; against `encode_step/gather_memcpy/...`, a memcpy of the same
//!   number of scattered 4 KiB blocks out of a private 64 MiB buffer into
//!   one buffer (same run). Alone: `-- encode_step`; other filters skip it.

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use venom_benches::Rng;
use venom_core::{RegionConfig, SeqReader, SeqRegion, SeqWriter};
use venom_net::io::{Mirror, Publisher, bind_endpoint};
use venom_net::tls::{ClientTls, Identity, ServerTls};
use venom_net::{MirrorConfig, PublisherConfig, RegionSink, Subscription};

const SIZE: usize = 64 << 20;
const BLOCK: usize = 4096;

/// The mirror's local SeqRegion, shared so it outlives each mirror.
#[derive(Clone)]
struct SharedSink(Arc<Mutex<SeqWriter>>);
impl RegionSink for SharedSink {
    fn size(&self) -> usize {
        SeqRegion::size(&self.0.lock().unwrap())
    }
    fn apply(&mut self, w: &[(usize, &[u8])]) -> venom_net::Result<u64> {
        self.0.lock().unwrap().apply(w)
    }
    fn read_at(&self, o: usize, b: &mut [u8]) -> venom_net::Result<()> {
        RegionSink::read_at(&*self.0.lock().unwrap(), o, b)
    }
    fn prefault(&mut self) {
        self.0.lock().unwrap().prefault();
    }
}

/// Rewrites `blocks` distinct random 4 KiB blocks with fresh random bytes in one write.
fn dirty(w: &mut SeqWriter, rng: &mut Rng, blocks: usize) -> u64 {
    let n = SIZE / BLOCK;
    let start = rng.next() as usize % n;
    let stride = 1 + 2 * (rng.next() as usize % (n / 2 - 1)); // odd stride: distinct blocks (n is a power of 2)
    let mut buf = vec![0u8; BLOCK];
    w.write_with(|r| {
        for i in 0..blocks {
            for c in buf.chunks_mut(8) {
                c.copy_from_slice(&rng.next().to_le_bytes());
            }
            r.write_at(((start + i * stride) % n) * BLOCK, &buf)?;
        }
        Ok(())
    })
    .expect("write")
    .1
}

/// Where a delta step's blocks go.
#[derive(Clone, Copy)]
enum Spread {
    /// Distinct blocks over the whole region (odd stride).
    Uniform,
    /// One contiguous range of blocks.
    Clustered,
}

/// Fresh bytes for the delta rows, generated once (before any clock starts).
struct Noise(Vec<u8>);
impl Noise {
    fn new(rng: &mut Rng) -> Noise {
        let mut v = vec![0u8; 16 << 20];
        for c in v.chunks_mut(8) {
            c.copy_from_slice(&rng.next().to_le_bytes());
        }
        Noise(v)
    }
    /// A block of noise at a random byte offset (so a block almost never
    /// equals what it overwrites).
    fn block(&self, rng: &mut Rng) -> &[u8] {
        let at = rng.next() as usize % (self.0.len() - BLOCK);
        &self.0[at..at + BLOCK]
    }
}

/// Byte offsets of `blocks` distinct 4 KiB blocks of the region, spread as
/// asked (draws its randomness at the call).
fn block_offsets(rng: &mut Rng, blocks: usize, spread: Spread) -> impl Iterator<Item = usize> + use<> {
    let n = SIZE / BLOCK;
    let start = rng.next() as usize % n;
    let stride = match spread {
        Spread::Uniform => 1 + 2 * (rng.next() as usize % (n / 2 - 1)),
        Spread::Clustered => 1,
    };
    let start = match spread {
        Spread::Uniform => start,
        Spread::Clustered => start % (n - blocks + 1),
    };
    (0..blocks).map(move |i| ((start + i * stride) % n) * BLOCK)
}

/// Rewrites `blocks` 4 KiB blocks with noise in one write, spread as asked.
fn dirty_noise(w: &mut SeqWriter, rng: &mut Rng, noise: &Noise, blocks: usize, spread: Spread) -> u64 {
    let offsets = block_offsets(rng, blocks, spread);
    w.write_with(|r| {
        for at in offsets {
            r.write_at(at, noise.block(rng))?;
        }
        Ok(())
    })
    .expect("write")
    .1
}

/// Benches `row` (criterion id `row/64MiB`) as timed calls of `step`, each
/// also recorded with `bytes` in `samples` for the printed MiB/s summary.
fn timed_row(
    g: &mut BenchmarkGroup<'_, WallTime>,
    samples: &mut Samples,
    row: &'static str,
    bytes: usize,
    mut step: impl FnMut(),
) {
    g.bench_function(BenchmarkId::new(row, "64MiB"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                step();
                let d = t.elapsed();
                samples.push(row, bytes, d);
                total += d;
            }
            total
        })
    });
}

/// Per-row throughput samples (MiB/s per timed iteration) for the summary.
#[derive(Default)]
struct Samples(BTreeMap<&'static str, Vec<f64>>);
impl Samples {
    fn push(&mut self, row: &'static str, bytes: usize, d: Duration) {
        self.0.entry(row).or_default().push(bytes as f64 / (1 << 20) as f64 / d.as_secs_f64());
    }
    fn median(&self, row: &str) -> f64 {
        let mut v = self.0.get(row).cloned().unwrap_or_default();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    }
}

/// A TLS-over-TCP bulk server (rustls, blocking std sockets): for each
/// 1-byte request it sends `SIZE` bytes in 1 MiB writes. Returns its address.
fn tls_tcp_server(id: &venom_net::tls::Identity, ca: &venom_net::tls::CertificateAuthority) -> std::net::SocketAddr {
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(id.pkcs8_key_der().to_vec()));
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![id.cert().clone(), ca.cert().clone()], key)
        .unwrap();
    let cfg = Arc::new(cfg);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for sock in listener.incoming() {
            let Ok(sock) = sock else { return };
            let cfg = cfg.clone();
            std::thread::spawn(move || {
                let conn = rustls::ServerConnection::new(cfg).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, sock);
                let chunk = vec![0xA5u8; 1 << 20];
                let mut req = [0u8; 1];
                while tls.read_exact(&mut req).is_ok() {
                    for _ in 0..SIZE >> 20 {
                        if tls.write_all(&chunk).is_err() {
                            return;
                        }
                    }
                    let _ = tls.flush();
                }
            });
        }
    });
    addr
}

/// A connected TLS-over-TCP client of [`tls_tcp_server`].
fn tls_tcp_client(
    addr: std::net::SocketAddr,
    ca: &venom_net::tls::CertificateAuthority,
) -> rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert().clone()).unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let conn = rustls::ClientConnection::new(Arc::new(cfg), "localhost".try_into().unwrap()).unwrap();
    let sock = std::net::TcpStream::connect(addr).unwrap();
    sock.set_nodelay(true).unwrap();
    rustls::StreamOwned::new(conn, sock)
}

/// Whether quinn-udp can use GSO (segments per send) and GRO (per receive) here.
fn gso_gro() -> (usize, usize) {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let state = quinn::udp::UdpSocketState::new((&sock).into()).unwrap();
    (state.max_gso_segments(), state.gro_segments())
}

fn bench(c: &mut Criterion) {
    if std::env::args().skip(1).any(|a| a.contains("paced") || a.contains("encode_step")) {
        return; // only the paced or encode_step rows were asked for: skip this setup (64 MiB fill, wire-bytes rounds)
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let _enter = rt.enter();
    let id = Identity::self_signed(&["localhost"]).unwrap();
    let (server_tls, client_tls) = (ServerTls::new(&id).unwrap(), ClientTls::pinned(id.cert().clone()).unwrap());
    let lo = "127.0.0.1:0".parse().unwrap();

    // Raw quinn: a server that drains each stream and answers one byte; echo streams for RTT.
    let server = bind_endpoint(lo, Some(&server_tls)).unwrap();
    let saddr = server.local_addr().unwrap();
    rt.spawn(async move {
        while let Some(inc) = server.accept().await {
            tokio::spawn(async move {
                let conn = inc.await.unwrap();
                while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 64];
                        let first = recv.read_exact(&mut buf).await;
                        if first.is_ok() && matches!(buf[0], b'B' | b'H' | b'S') {
                            // bulk mode: SIZE (H: SIZE / 2; S: the u64 after the mode byte) bytes
                            // server -> client, the direction (and the flow-control windows) a
                            // publisher streams to a mirror
                            let chunk = bytes::Bytes::from(vec![0xA5u8; 1 << 20]);
                            let mut left = match buf[0] {
                                b'B' => SIZE,
                                b'H' => SIZE / 2,
                                _ => u64::from_le_bytes(buf[1..9].try_into().unwrap()) as usize,
                            };
                            while left > 0 {
                                let n = left.min(chunk.len());
                                if send.write_chunk(chunk.slice(..n)).await.is_err() {
                                    return;
                                }
                                left -= n;
                            }
                            let _ = send.finish();
                            return;
                        }
                        if first.is_ok() && buf[0] == b'E' {
                            // echo mode: 64-byte ping-pong until the stream ends
                            loop {
                                if send.write_all(&buf).await.is_err() || recv.read_exact(&mut buf).await.is_err() {
                                    return;
                                }
                            }
                        }
                        while let Ok(Some(_)) = recv.read_chunk(1 << 20, true).await {}
                        let _ = send.write_all(b"k").await;
                        let _ = send.finish();
                    });
                }
            });
        }
    });
    let mut client = bind_endpoint(lo, None).unwrap();
    client.set_default_client_config(client_tls.quinn_config());
    let conn = rt.block_on(async { client.connect(saddr, "localhost").unwrap().await.unwrap() });
    // The second connection gets its own endpoint (socket and driver task), like a second mirror.
    let mut client2 = bind_endpoint(lo, None).unwrap();
    client2.set_default_client_config(client_tls.quinn_config());
    let conn2 = rt.block_on(async { client2.connect(saddr, "localhost").unwrap().await.unwrap() });
    let ca = venom_net::tls::CertificateAuthority::new("bench-ca").unwrap();
    let tcp_id = ca.issue(&["localhost"]).unwrap();
    let mut tcp = tls_tcp_client(tls_tcp_server(&tcp_id, &ca), &ca);
    let mut samples = Samples::default();

    // venom-net: 64 MiB SeqRegion published, mirrored into another SeqRegion.
    let pid = std::process::id();
    let (pub_name, mir_name) = (format!("bench-net-pub-{pid}"), format!("bench-net-mir-{pid}"));
    let mut w = SeqWriter::create(&pub_name, RegionConfig::new(SIZE).chunk_size(64 << 10)).unwrap();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    dirty(&mut w, &mut rng, SIZE / BLOCK);
    let noise = Noise::new(&mut rng);
    let sink = SharedSink(Arc::new(Mutex::new(SeqWriter::create(&mir_name, RegionConfig::new(SIZE)).unwrap())));
    let publisher = rt
        .block_on(Publisher::bind(
            lo,
            Arc::new(SeqReader::open(&pub_name).unwrap()),
            server_tls.clone(),
            PublisherConfig::default(),
        ))
        .unwrap();
    let paddr = publisher.local_addr().unwrap();
    let connect = |s: &SharedSink| {
        Mirror::connect(
            paddr,
            "localhost",
            Subscription::whole(),
            client_tls.clone(),
            Box::new(s.clone()),
            MirrorConfig::default(),
        )
        .unwrap()
    };

    let mut g = c.benchmark_group("net");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    g.throughput(Throughput::Bytes(SIZE as u64));
    /// Reads one bulk stream (mode `B`, `H`, or `S` with `len`) to its end; returns the bytes.
    async fn drain_len(conn: &quinn::Connection, mode: u8, len: usize) -> usize {
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        let mut hello = [mode; 64];
        hello[1..9].copy_from_slice(&(len as u64).to_le_bytes());
        send.write_all(&hello).await.unwrap();
        let mut got = 0usize;
        while let Some(c) = recv.read_chunk(1 << 20, true).await.unwrap() {
            got += c.bytes.len();
        }
        got
    }
    async fn drain(conn: &quinn::Connection, mode: u8) -> usize {
        drain_len(conn, mode, 0).await
    }
    let rt_ref = &rt;
    timed_row(&mut g, &mut samples, "raw_quinn_bulk", SIZE, || assert_eq!(rt_ref.block_on(drain(&conn, b'B')), SIZE));
    timed_row(&mut g, &mut samples, "raw_quinn_2streams", SIZE, || {
        let (x, y) = rt_ref.block_on(async { tokio::join!(drain(&conn, b'H'), drain(&conn, b'H')) });
        assert_eq!(x + y, SIZE);
    });
    timed_row(&mut g, &mut samples, "raw_quinn_2conns", SIZE, || {
        let (x, y) = rt_ref.block_on(async { tokio::join!(drain(&conn, b'H'), drain(&conn2, b'H')) });
        assert_eq!(x + y, SIZE);
    });
    let mut tcp_buf = vec![0u8; 1 << 20];
    timed_row(&mut g, &mut samples, "tls_tcp_bulk", SIZE, || {
        tcp.write_all(b"B").unwrap();
        tcp.flush().unwrap();
        let mut got = 0;
        while got < SIZE {
            let n = tcp.read(&mut tcp_buf[..(SIZE - got).min(1 << 20)]).unwrap();
            assert!(n > 0, "TLS server closed early");
            got += n;
        }
    });
    // The transport on the deltas' sizes: one stream of 1% / 10% of the region.
    for (row, percent) in [("raw_quinn_burst/1pct", 1usize), ("raw_quinn_burst/10pct", 10)] {
        let len = SIZE / BLOCK * percent / 100 * BLOCK;
        g.throughput(Throughput::Bytes(len as u64));
        timed_row(&mut g, &mut samples, row, len, || assert_eq!(rt_ref.block_on(drain_len(&conn, b'S', len)), len));
    }
    g.throughput(Throughput::Bytes(SIZE as u64));
    g.bench_function(BenchmarkId::new("snapshot_new_mirror", "64MiB"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                let m = connect(&sink);
                m.wait_for_update(Duration::from_secs(30)).unwrap();
                let d = t.elapsed();
                samples.push("snapshot_new_mirror", SIZE, d);
                total += d;
                rt.block_on(m.close());
            }
            total
        })
    });
    let m = connect(&sink);
    m.wait_for_update(Duration::from_secs(30)).unwrap();
    timed_row(&mut g, &mut samples, "snapshot", SIZE, || {
        let n = m.stats().snapshots_applied;
        m.request_snapshot();
        while m.stats().snapshots_applied == n {
            m.wait_for_update(Duration::from_secs(30)).unwrap();
        }
    });
    let delta_rows: [(&'static str, usize, Spread); 4] = [
        ("delta/1pct/uniform", 1, Spread::Uniform),
        ("delta/1pct/clustered", 1, Spread::Clustered),
        ("delta/10pct/uniform", 10, Spread::Uniform),
        ("delta/10pct/clustered", 10, Spread::Clustered),
    ];
    for (row, percent, spread) in delta_rows {
        let blocks = SIZE / BLOCK * percent / 100;
        g.throughput(Throughput::Bytes((blocks * BLOCK) as u64));
        timed_row(&mut g, &mut samples, row, blocks * BLOCK, || {
            let v = dirty_noise(&mut w, &mut rng, &noise, blocks, spread);
            m.wait_until(Duration::from_secs(30), |_, a| a.seq >= v).unwrap();
        });
    }
    g.sampling_mode(SamplingMode::Auto).sample_size(50).measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(1));
    let (mut es, mut er) = rt.block_on(conn.open_bi()).unwrap();
    let mut rtts = Vec::new();
    g.bench_function("quic_rtt_64B", |b| {
        b.iter(|| {
            let t = Instant::now();
            rt.block_on(async {
                let mut buf = [b'E'; 64];
                es.write_all(&buf).await.unwrap();
                er.read_exact(&mut buf).await.unwrap();
            });
            rtts.push(t.elapsed());
        })
    });
    let mut lats = Vec::new();
    g.bench_function("latency_64B", |b| {
        b.iter(|| {
            let t = Instant::now();
            let v = w.write_at(rng.next() as usize % (SIZE - 64), &rng.next().to_le_bytes().repeat(8)).unwrap();
            m.wait_until(Duration::from_secs(10), |_, a| a.seq >= v).unwrap();
            lats.push(t.elapsed());
        })
    });
    g.finish();
    let pct = |v: &mut Vec<Duration>, p: usize| percentile(v, p);
    println!("net/quic_rtt_64B: p50 {:.1} us, p99 {:.1} us", pct(&mut rtts, 50), pct(&mut rtts, 99));
    println!("net/latency_64B: p50 {:.1} us, p99 {:.1} us", pct(&mut lats, 50), pct(&mut lats, 99));
    let (gso, gro) = gso_gro();
    println!("net/summary: quinn-udp GSO {gso} segments/send, GRO {gro} segments/recv (1 = off)");
    let raw = samples.median("raw_quinn_bulk");
    for (row, _) in samples.0.iter() {
        let med = samples.median(row);
        let burst = match row.split('/').nth(1) {
            Some(p) if row.starts_with("delta/") => {
                format!("  {:.2}x raw_quinn_burst/{p}", med / samples.median(&format!("raw_quinn_burst/{p}")))
            }
            _ => String::new(),
        };
        println!("net/summary: {row:<24} median {med:>8.1} MiB/s  {:.2}x raw_quinn_bulk{burst}", med / raw);
    }

    // Wire bytes per changed byte, counted exactly by diffing against a private copy.
    for percent in [1usize, 10] {
        let mut before = vec![0u8; SIZE];
        let mut after = vec![0u8; SIZE];
        let (mut changed, mut payload, mut frames) = (0u64, 0u64, 0u64);
        for _ in 0..5 {
            w.read_at(0, &mut before).unwrap();
            let s0 = publisher.stats()[0].clone();
            let v = dirty(&mut w, &mut rng, SIZE / BLOCK * percent / 100);
            m.wait_until(Duration::from_secs(30), |_, a| a.seq >= v).unwrap();
            let s1 = publisher.stats()[0].clone();
            w.read_at(0, &mut after).unwrap();
            changed += before.iter().zip(&after).filter(|(a, b)| a != b).count() as u64;
            payload += s1.payload_bytes - s0.payload_bytes;
            frames += s1.bytes_sent - s0.bytes_sent;
        }
        println!(
            "net/wire_bytes_{percent}pct: changed {changed} B, payload {payload} B ({:.4}x), frames {frames} B ({:.4}x)",
            payload as f64 / changed as f64,
            frames as f64 / changed as f64
        );
    }
    rt.block_on(m.close());
    rt.block_on(publisher.close());
    w.unlink().unwrap();
    sink.0.lock().unwrap().unlink().unwrap();
}

/// A mirror of the whole region, connected and (with `check_hash`) past its
/// first verified digest, i.e. in steady state.
fn paced_mirror(addr: std::net::SocketAddr, tls: &ClientTls, sink: &SharedSink, check_hash: bool) -> Mirror {
    let cfg = MirrorConfig { check_hash, ..Default::default() };
    let m =
        Mirror::connect(addr, "localhost", Subscription::whole(), tls.clone(), Box::new(sink.clone()), cfg).unwrap();
    m.wait_for_update(Duration::from_secs(60)).unwrap();
    let t = Instant::now();
    while check_hash && m.stats().hash_matches == 0 && t.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!check_hash || m.stats().hash_matches > 0, "no digest verified");
    m
}

/// `n` 64-byte writes at random offsets on a 1 ms schedule; each one's
/// write -> applied-in-the-mirror time is pushed to `lats`. Returns their sum.
fn paced_writes(w: &mut SeqWriter, rng: &mut Rng, m: &Mirror, n: u64, lats: &mut Vec<Duration>) -> Duration {
    let size = SeqRegion::size(w);
    let mut total = Duration::ZERO;
    let mut next = Instant::now();
    for _ in 0..n {
        next += Duration::from_millis(1);
        let t = Instant::now();
        let v = w.write_at(rng.next() as usize % (size - 64), &rng.next().to_le_bytes().repeat(8)).unwrap();
        m.wait_until(Duration::from_secs(10), |_, a| a.seq >= v).unwrap();
        let dt = t.elapsed();
        lats.push(dt);
        total += dt;
        match next.checked_duration_since(Instant::now()) {
            Some(sleep) => std::thread::sleep(sleep), // 1 ms apart, from the schedule
            None => next = Instant::now(),
        }
    }
    total
}

fn percentile(v: &mut [Duration], p: usize) -> f64 {
    v.sort();
    v.get((v.len() * p / 100).min(v.len().saturating_sub(1))).map_or(f64::NAN, |d| d.as_secs_f64() * 1e6)
}

/// One publisher + one mirror over loopback, `size` bytes, paced 64 B writes:
/// criterion rows per (check_hash, size), then the on/off ratio from
/// interleaved blocks (off, on, off, on, ...: both see the same machine load).
/// The criterion filter, if one was given (the first argument that is not
/// a flag nor a flag's value).
fn filter_arg() -> Option<String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let takes_value = |a: &str| a.starts_with("--") && !matches!(a, "--bench" | "--test" | "--list" | "--quick");
    let mut i = 0;
    while i < args.len() {
        if takes_value(&args[i]) && !args[i].contains('=') {
            i += 2;
        } else if args[i].starts_with('-') {
            i += 1;
        } else {
            return Some(args[i].clone());
        }
    }
    None
}

fn bench_paced(c: &mut Criterion) {
    const BLOCKS: usize = 8;
    const BLOCK_WRITES: u64 = 150;
    if filter_arg().is_some_and(|f| !f.contains("paced")) {
        return; // a filter for other rows: skip the paced setup and its interleaved blocks
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let _enter = rt.enter();
    let id = Identity::self_signed(&["localhost"]).unwrap();
    let (server_tls, client_tls) = (ServerTls::new(&id).unwrap(), ClientTls::pinned(id.cert().clone()).unwrap());
    let mut g = c.benchmark_group("net");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    g.throughput(Throughput::Elements(1));
    let mut report = Vec::new();
    for (size, label) in [(8usize << 20, "8MiB"), (64 << 20, "64MiB")] {
        let pid = std::process::id();
        let (pub_name, mir_name) = (format!("bench-paced-pub-{pid}"), format!("bench-paced-mir-{pid}"));
        let mut w = SeqWriter::create(&pub_name, RegionConfig::new(size).chunk_size(64 << 10)).unwrap();
        let mut rng = Rng(0x2545_F491_4F6C_DD1D);
        let mut fill = vec![0u8; 1 << 20];
        for at in (0..size).step_by(fill.len()) {
            for c in fill.chunks_mut(8) {
                c.copy_from_slice(&rng.next().to_le_bytes());
            }
            w.write_at(at, &fill).unwrap();
        }
        let sink = SharedSink(Arc::new(Mutex::new(SeqWriter::create(&mir_name, RegionConfig::new(size)).unwrap())));
        let publisher = rt
            .block_on(Publisher::bind(
                "127.0.0.1:0".parse().unwrap(),
                Arc::new(SeqReader::open(&pub_name).unwrap()),
                server_tls.clone(),
                PublisherConfig::default(),
            ))
            .unwrap();
        let addr = publisher.local_addr().unwrap();
        // Criterion rows (mean and its confidence interval per mode).
        for check_hash in [false, true] {
            let m = paced_mirror(addr, &client_tls, &sink, check_hash);
            let name = if check_hash { "hash_on" } else { "hash_off" };
            let mut unused = Vec::new();
            g.bench_function(BenchmarkId::new(format!("paced_64B/{name}"), label), |b| {
                b.iter_custom(|iters| paced_writes(&mut w, &mut rng, &m, iters, &mut unused))
            });
            rt.block_on(m.close());
        }
        // Percentiles and the ratio: interleaved blocks, pooled per mode.
        let mut lats = [Vec::new(), Vec::new()];
        let mut verified = 0;
        for _ in 0..BLOCKS {
            for (k, check_hash) in [false, true].into_iter().enumerate() {
                let m = paced_mirror(addr, &client_tls, &sink, check_hash);
                paced_writes(&mut w, &mut rng, &m, BLOCK_WRITES, &mut lats[k]);
                let st = m.stats();
                assert_eq!(st.hash_mismatches, 0);
                verified += st.hash_matches;
                rt.block_on(m.close());
            }
        }
        let [off, on] = &mut lats;
        let (off50, off99, on50, on99) =
            (percentile(off, 50), percentile(off, 99), percentile(on, 50), percentile(on, 99));
        report.push(format!(
            "net/paced_64B/{label} ({BLOCKS}x{BLOCK_WRITES} writes per mode, interleaved): \
             hash_off p50 {off50:.1} us p99 {off99:.1} us | hash_on p50 {on50:.1} us p99 {on99:.1} us \
             ({verified} digests verified) | on/off: p50 {:.2}x, p99 {:.2}x",
            on50 / off50,
            on99 / off99
        ));
        rt.block_on(publisher.close());
        w.unlink().unwrap();
        sink.0.lock().unwrap().unlink().unwrap();
    }
    g.finish();
    for line in report {
        println!("{line}");
    }
}

/// The publisher's encoder step alone (no network, no sessions): a 10 % or
/// 1 % rewrite of the 64 MiB region, then one step of the shared encoder
/// (`snapshot_since` of the dirty pages + `ingest_snapshot`: diff against
/// the shadow, shadow update, frame encode), timed. The writes are outside
/// the timed part. Alone: `cargo bench -p venom-benches --bench net --
/// encode_step`; a filter that does not mention `encode_step` skips it.
fn bench_encode_step(c: &mut Criterion) {
    if filter_arg().is_some_and(|f| !f.contains("encode_step")) {
        return;
    }
    let name = format!("bench-encstep-{}", std::process::id());
    let mut w = SeqWriter::create(&name, RegionConfig::new(SIZE).chunk_size(64 << 10)).unwrap();
    let r = SeqReader::open(&name).unwrap();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let noise = Noise::new(&mut rng);
    // Every page written once, so no step reads a page of the region for the first time.
    for at in (0..SIZE).step_by(noise.0.len()) {
        w.write_at(at, &noise.0).unwrap();
    }
    // The baseline's source: a private copy of the region, every page touched.
    let private: Vec<u8> = noise.0.iter().copied().cycle().take(SIZE).collect();
    let mut gathered = vec![0u8; SIZE / 10];
    let mut g = c.benchmark_group("net");
    g.sample_size(30).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    let rows = [
        (10usize, Spread::Uniform, "10pct/uniform"),
        (1, Spread::Uniform, "1pct/uniform"),
        (10, Spread::Clustered, "10pct/clustered"),
    ];
    for (percent, spread, label) in rows {
        let blocks = SIZE / BLOCK * percent / 100;
        g.throughput(Throughput::Bytes((blocks * BLOCK) as u64));
        let mut enc = venom_net::RegionEncoder::from_region(1, &r, venom_net::EncoderConfig::default()).unwrap();
        let mut snap = venom_net::Snapshot::default();
        g.bench_function(format!("encode_step/{label}"), |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    dirty_noise(&mut w, &mut rng, &noise, blocks, spread);
                    let t = Instant::now();
                    venom_net::RegionSource::snapshot_since(&r, enc.version(), &mut snap).unwrap();
                    enc.ingest_snapshot(&mut snap, 0);
                    spent += t.elapsed();
                }
                spent
            })
        });
        // Same-run baseline: gathering the same number of scattered 4 KiB
        // blocks out of a private 64 MiB buffer into one buffer with memcpy
        // (the least any step must do: touch every changed byte once).
        g.bench_function(format!("encode_step/gather_memcpy/{label}"), |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let offsets: Vec<usize> = block_offsets(&mut rng, blocks, spread).collect();
                    let t = Instant::now();
                    for (i, at) in offsets.into_iter().enumerate() {
                        gathered[i * BLOCK..(i + 1) * BLOCK].copy_from_slice(&private[at..at + BLOCK]);
                    }
                    std::hint::black_box(&gathered);
                    spent += t.elapsed();
                }
                spent
            })
        });
    }
    g.finish();
    w.unlink().unwrap();
}

criterion_group!(benches, bench, bench_paced, bench_encode_step);
criterion_main!(benches);
