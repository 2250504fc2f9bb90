//! venom-net fan-out: one publisher, 1 / 8 / 32 / 64 mirrors of a 64 MiB
//! region, 1 % of it rewritten per step (164 random 4 KiB blocks, one write).
//!
//! `cargo bench -p venom-benches --bench fanout`
//!
//! The publisher (and the writer) run in this process; the mirrors run as
//! tokio tasks in ONE child process (this binary again, `VENOM_FANOUT_CHILD`
//! set), connected over loopback QUIC, applying into null sinks (a mirror's
//! 64 MiB local copy times 64 would not fit the machine; receiving, decoding
//! and acknowledging are unchanged). The child adds mirrors as the run goes
//! (1, then 8, 32, 64): each joins with a full snapshot, then every step is
//! measured until each mirror acknowledged it.
//!
//! * `fanout/visible/{n}`: wall time from the write until the LAST mirror
//!   acknowledged the new version (applied, so visible to its readers).
//! * `fanout/publisher_cpu/{n}`: CPU time of the publisher per step:
//!   `getrusage(RUSAGE_SELF) - getrusage(RUSAGE_THREAD)` of the main thread
//!   (which only writes and waits), i.e. the encoder thread, the tokio
//!   workers (sessions) and quinn (TLS + UDP).
//!
//! `VENOM_FANOUT_MAX=8` stops at 8 mirrors (a quick smoke run).
//!
//! Printed at the end: medians, the per-mirror cost ratio
//! `cpu(n) / (n * cpu(1))` (1.0 = the whole step cost scales with mirrors;
//! lower = the shared encode is paid once), and the publisher's anonymous
//! RSS growth (shadow + backlog + per-mirror state; the region itself is
//! shared memory) against the target `region + backlog + 1 MiB per mirror`.

use criterion::{BenchmarkId, Criterion, SamplingMode};
use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use venom_benches::Rng;
use venom_core::{RegionConfig, SeqReader, SeqWriter};
use venom_net::io::{Mirror, Publisher};
use venom_net::proto::admission::AdmissionLimits;
use venom_net::tls::{ClientTls, Identity, ServerTls};
use venom_net::{MirrorConfig, PublisherConfig, RegionSink, Subscription};

const SIZE: usize = 64 << 20;
const BLOCK: usize = 4096;
/// 1 % of the region.
const BLOCKS_PER_STEP: usize = SIZE / 100 / BLOCK;
const COUNTS: [usize; 4] = [1, 8, 32, 64];
const CHILD: &str = "VENOM_FANOUT_CHILD";
const CERT: &str = "VENOM_FANOUT_CERT";
const T: Duration = Duration::from_secs(120);

/// A mirror sink that keeps nothing (see the module docs).
struct NullSink(u64);
impl RegionSink for NullSink {
    fn size(&self) -> usize {
        SIZE
    }
    fn apply(&mut self, _w: &[(usize, &[u8])]) -> venom_net::Result<u64> {
        self.0 += 2;
        Ok(self.0)
    }
    fn read_at(&self, _o: usize, b: &mut [u8]) -> venom_net::Result<()> {
        b.fill(0);
        Ok(())
    }
}

/// The mirrors process: reads a target count per stdin line and connects
/// mirrors up to it; exits when stdin closes.
fn child(addr: &str) {
    let addr: std::net::SocketAddr = addr.parse().expect("publisher address");
    let der = std::fs::read(std::env::var(CERT).expect("cert path")).expect("cert");
    let tls = ClientTls::pinned(rustls::pki_types::CertificateDer::from(der)).expect("client tls");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let _g = rt.enter();
    let mut mirrors: Vec<Mirror> = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let Ok(n) = line.unwrap_or_default().trim().parse::<usize>() else { break };
        while mirrors.len() < n {
            let cfg = MirrorConfig { mirror_id: mirrors.len() as u64, ..Default::default() };
            let sink = Box::new(NullSink(0));
            mirrors.push(Mirror::connect(addr, "localhost", Subscription::whole(), tls.clone(), sink, cfg).unwrap());
        }
    }
}

fn rusage(who: libc::c_int) -> Duration {
    // SAFETY: getrusage writes one rusage struct into the zeroed value we own.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid, writable rusage; `who` is RUSAGE_SELF or RUSAGE_THREAD.
    unsafe { libc::getrusage(who, &mut u) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// CPU time of every thread but this one (the publisher's threads).
fn publisher_cpu() -> Duration {
    rusage(libc::RUSAGE_SELF).saturating_sub(rusage(libc::RUSAGE_THREAD))
}

/// Anonymous resident memory of this process (heap: shadow, backlog,
/// buffers), after returning freed heap pages to the kernel (so it counts
/// live memory, not what the allocator kept from the snapshot phase).
fn rss_anon() -> u64 {
    // SAFETY: malloc_trim only releases free heap memory; no pointer is involved.
    unsafe { libc::malloc_trim(0) };
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("RssAnon:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

struct Setup {
    w: SeqWriter,
    rng: Rng,
    publisher: Publisher,
    /// Runs the publisher's tasks (kept alive for the whole run).
    _rt: tokio::runtime::Runtime,
}

impl Setup {
    /// Rewrites 1 % of the region in one write and waits until every
    /// mirror acknowledged it; returns (wall time, publisher CPU time).
    fn step(&mut self) -> (Duration, Duration) {
        let n = SIZE / BLOCK;
        let mut buf = vec![0u8; BLOCK];
        let blocks: Vec<(usize, Vec<u8>)> = (0..BLOCKS_PER_STEP)
            .map(|_| {
                for c in buf.chunks_mut(8) {
                    c.copy_from_slice(&self.rng.next().to_le_bytes());
                }
                ((self.rng.next() as usize % n) * BLOCK, buf.clone())
            })
            .collect();
        let writes: Vec<(usize, &[u8])> = blocks.iter().map(|(o, d)| (*o, d.as_slice())).collect();
        let (cpu0, t0) = (publisher_cpu(), Instant::now());
        let v = self.w.apply(&writes).expect("write");
        self.wait_acked(v);
        (t0.elapsed(), publisher_cpu().saturating_sub(cpu0))
    }

    fn wait_acked(&self, v: u64) {
        let deadline = Instant::now() + T;
        while !self.publisher.stats().iter().all(|s| s.acked_seq >= v) {
            assert!(Instant::now() < deadline, "mirrors did not acknowledge {v}: {:?}", self.publisher.stats());
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

type Samples = Arc<Mutex<Vec<(usize, Duration, Duration)>>>;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let id = Identity::self_signed(&["localhost"]).unwrap();
    let cert_path = std::env::temp_dir().join(format!("venom-fanout-{}.der", std::process::id()));
    std::fs::write(&cert_path, id.cert().as_ref()).unwrap();
    let name = format!("bench-fanout-{}", std::process::id());
    let mut w = SeqWriter::create(&name, RegionConfig::new(SIZE).chunk_size(64 << 10)).unwrap();
    // Every byte nonzero (snapshots and deltas carry real data).
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let fill: Vec<u8> = (0..SIZE).map(|_| rng.next() as u8 | 1).collect();
    w.apply(&[(0, &fill)]).unwrap();
    drop(fill);
    let reader = Arc::new(SeqReader::open(&name).unwrap());
    let rss0 = rss_anon();
    let pcfg = PublisherConfig {
        max_mirrors: 128,
        admission: AdmissionLimits {
            max_handshaking: 128,
            max_awaiting_hello: 128,
            per_address: 128,
            ..Default::default()
        },
        ..Default::default()
    };
    let backlog = pcfg.backlog_bytes as u64;
    let publisher = rt
        .block_on(Publisher::bind("127.0.0.1:0".parse().unwrap(), reader, ServerTls::new(&id).unwrap(), pcfg))
        .unwrap();
    let addr = publisher.local_addr().unwrap();
    let mut kid = std::process::Command::new(std::env::current_exe().unwrap())
        .env(CHILD, addr.to_string())
        .env(CERT, &cert_path)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the mirrors process");
    let mut to_kid = kid.stdin.take().unwrap();
    let mut s = Setup { w, rng, publisher, _rt: rt };
    let samples: Samples = Arc::new(Mutex::new(Vec::new()));
    let mut rss = Vec::new();
    let mut g = c.benchmark_group("fanout");
    g.sample_size(10).sampling_mode(SamplingMode::Flat).measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_millis(500));
    // VENOM_FANOUT_MAX=8: a quick smoke run with fewer mirrors.
    let max: usize = std::env::var("VENOM_FANOUT_MAX").ok().and_then(|v| v.parse().ok()).unwrap_or(usize::MAX);
    for n in COUNTS.into_iter().filter(|&n| n <= max) {
        writeln!(to_kid, "{n}").unwrap();
        to_kid.flush().unwrap();
        let t = Instant::now();
        while s.publisher.stats().len() < n {
            assert!(t.elapsed() < T, "only {} of {n} mirrors connected", s.publisher.stats().len());
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = s.step(); // the new mirrors' snapshots are done once this is acknowledged
        for _ in 0..3 {
            let _ = s.step();
        }
        // The same steps, timed by wall clock (until the last mirror) and by publisher CPU.
        for (id, by_cpu) in [("visible", false), ("publisher_cpu", true)] {
            let sm = samples.clone();
            g.bench_function(BenchmarkId::new(id, n), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let (wall, cpu) = s.step();
                        sm.lock().unwrap().push((n, wall, cpu));
                        total += if by_cpu { cpu } else { wall };
                    }
                    total
                })
            });
        }
        rss.push((n, rss_anon().saturating_sub(rss0)));
    }
    g.finish();
    let enc = s.publisher.encoder_stats();
    drop(to_kid);
    let _ = kid.wait();
    let _ = std::fs::remove_file(&cert_path);
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v.get(v.len() / 2).copied().unwrap_or_default()
    };
    let all = samples.lock().unwrap().clone();
    let of =
        |n: usize, cpu: bool| median(all.iter().filter(|x| x.0 == n).map(|x| if cpu { x.2 } else { x.1 }).collect());
    let cpu1 = of(1, true).as_secs_f64().max(1e-9);
    println!("\nfan-out, 64 MiB region, 1 % dirty per step (same run; medians of {} steps):", all.len());
    println!(
        "| mirrors | last mirror visible | publisher CPU / step | per-mirror cost vs 1 mirror | publisher RSS growth (anon) | target: region + backlog + 1 MiB/mirror |"
    );
    println!("|---|---|---|---|---|---|");
    for (n, r) in &rss {
        let cpu = of(*n, true).as_secs_f64();
        let target = SIZE as u64 + backlog + (*n as u64) * (1 << 20);
        println!(
            "| {n} | {:.1} ms | {:.1} ms | {:.3} | {:.0} MiB | {:.0} MiB |",
            of(*n, false).as_secs_f64() * 1e3,
            cpu * 1e3,
            cpu / (*n as f64 * cpu1),
            *r as f64 / 1048576.0,
            target as f64 / 1048576.0
        );
    }
    println!(
        "encoder: {} deltas, {:.1} MiB changed bytes encoded once, {} CoW chunk copies, backlog {} deltas / {:.1} MiB of {:.0} MiB",
        enc.deltas,
        enc.payload_bytes as f64 / 1048576.0,
        enc.cow_copies,
        enc.backlog.deltas,
        enc.backlog.bytes as f64 / 1048576.0,
        enc.backlog.capacity as f64 / 1048576.0
    );
    drop(s);
}

fn main() {
    if let Ok(addr) = std::env::var(CHILD) {
        child(&addr);
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
