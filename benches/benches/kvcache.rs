//! KvCache get/put throughput against Redis (over its Unix socket) and an
//! in-process `Mutex<HashMap>`, measured in the same run.
//!
//! `bash scripts/bench-kv.sh` (starts redis-server and sets
//! `VENOM_REDIS_SOCKET`), or `cargo bench -p venom-benches --bench kvcache`
//! (the Redis baseline is then skipped with a message).
//!
//! Keys are 16 bytes; values 64 B, 1 KiB and 64 KiB; 128 keys per client,
//! visited round-robin. Benchmarks:
//! * `kv_get/1proc`, `kv_put/1proc`: one process, `get_into` a private
//!   buffer / `put` replacing an existing value.
//! * `kv_get/2proc`, `kv_put/2proc`: this process and a child process (the
//!   same binary re-executed) each run the same number of operations on their
//!   own keys at the same time; one iteration = 2 operations (throughput is
//!   the aggregate).
//! * `mutex_hashmap_get/put`: `Mutex<HashMap<Vec<u8>, Vec<u8>>>`, get copies
//!   into a private buffer, put inserts freshly allocated key and value.
//! * `redis_get/set`: one client, one request at a time, hand-written RESP.

use std::collections::HashMap;
use std::hint::black_box;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use venom_collections::{KvCache, KvConfig};
use venom_core::futex::EventCount;
use venom_core::{Segment, SegmentKind};

const SIZES: [(usize, &str); 3] = [(64, "64B"), (1024, "1KiB"), (64 << 10, "64KiB")];
const KEYS: usize = 128;
const CHILD_ENV: &str = "VENOM_KV_BENCH_CHILD";

/// The 16-byte key number `i` (precomputed, so formatting is not measured).
fn key(i: usize) -> &'static [u8; 16] {
    static TABLE: std::sync::OnceLock<Vec<[u8; 16]>> = std::sync::OnceLock::new();
    let keys = TABLE.get_or_init(|| {
        (0..4 * KEYS)
            .map(|n| {
                let mut k = *b"bench-key-000000";
                k[10..].copy_from_slice(format!("{n:06}").as_bytes());
                k
            })
            .collect()
    });
    &keys[i % keys.len()]
}

/// Control block shared with the child: request seq, iterations, mode
/// (0 get, 1 put), value size, done seq.
struct Ctl {
    seg: Segment,
}

impl Ctl {
    fn word(&self, i: usize) -> &AtomicU64 {
        // SAFETY: the body is 128 bytes, 128-aligned; words 0..5 are in it and
        // only accessed atomically by both processes.
        unsafe { &*(self.seg.body_ptr() as *const AtomicU64).add(i) }
    }

    /// Wakes the idle child (at byte 64 of the body; zero-valid).
    fn doorbell(&self) -> &EventCount {
        // SAFETY: bytes 64..72 of the 128-byte body, 8-aligned; EventCount
        // is repr(C) atomics, valid when zeroed, shared by design.
        unsafe { &*(self.seg.body_ptr().add(64) as *const EventCount) }
    }
}

fn child_main(arg: &str) {
    let (cache, ctl) = arg.split_once(',').expect("child arg");
    let cache = KvCache::open(cache).expect("child open cache");
    let ctl = Ctl { seg: Segment::open(ctl, SegmentKind::RAW).expect("child open ctl") };
    let mut buf = vec![0u8; 64 << 10];
    let value = vec![0x5Au8; 64 << 10];
    let mut idle = Instant::now();
    loop {
        // Sleep (futex) while idle, so the child does not steal a core from
        // the single-process benchmarks.
        let done = ctl.word(4).load(Ordering::Relaxed);
        // Acquire: pairs with the parent's Release publication of a request.
        let ready = ctl.doorbell().wait_until(Duration::from_millis(200), || {
            let seq = ctl.word(0).load(Ordering::Acquire);
            (seq != done).then_some(seq)
        });
        let Some(seq) = ready else {
            if idle.elapsed() > Duration::from_secs(300) {
                return;
            }
            continue;
        };
        if seq == u64::MAX {
            return;
        }
        let (iters, mode, size) = (
            ctl.word(1).load(Ordering::Relaxed),
            ctl.word(2).load(Ordering::Relaxed),
            ctl.word(3).load(Ordering::Relaxed),
        );
        for i in 0..iters as usize {
            let k = key(KEYS + i % KEYS);
            if mode == 0 {
                black_box(cache.get_into(k, &mut buf).expect("get"));
            } else {
                cache.put(k, &value[..size as usize]).expect("put");
            }
        }
        // Release: the parent's Acquire load of `done` ends its measurement.
        ctl.word(4).store(seq, Ordering::Release);
        idle = Instant::now();
    }
}

struct Redis {
    out: UnixStream,
    inp: BufReader<UnixStream>,
    line: String,
}

impl Redis {
    fn connect() -> Option<Redis> {
        let Ok(path) = std::env::var("VENOM_REDIS_SOCKET") else {
            println!("redis baseline skipped: VENOM_REDIS_SOCKET is not set (run scripts/bench-kv.sh)");
            return None;
        };
        match UnixStream::connect(&path) {
            Ok(s) => Some(Redis { inp: BufReader::new(s.try_clone().ok()?), out: s, line: String::new() }),
            Err(e) => {
                println!("redis baseline skipped: cannot connect to {path}: {e}");
                None
            }
        }
    }

    fn command(&mut self, args: &[&[u8]], value_out: &mut Vec<u8>) -> std::io::Result<()> {
        let mut req = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            req.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            req.extend_from_slice(a);
            req.extend_from_slice(b"\r\n");
        }
        self.out.write_all(&req)?;
        self.line.clear();
        self.inp.read_line(&mut self.line)?;
        if let Some(len) = self.line.strip_prefix('$') {
            let len: i64 = len.trim().parse().map_err(std::io::Error::other)?;
            if len >= 0 {
                value_out.resize(len as usize + 2, 0);
                self.inp.read_exact(value_out)?;
                value_out.truncate(len as usize);
            }
        } else if !self.line.starts_with('+') {
            return Err(std::io::Error::other(format!("redis error: {}", self.line.trim())));
        }
        Ok(())
    }
}

fn kvcache(c: &mut Criterion) {
    let name = format!("bench-kv-{}", std::process::id());
    let cfg = KvConfig { max_entries: 4 * KEYS, data_bytes: 24 << 20, max_key_len: 16, ..KvConfig::default() };
    let mut cache = KvCache::create(&name, cfg).expect("create cache");
    cache.set_unlink_on_drop(true);
    let mut ctl =
        Ctl { seg: Segment::builder(&format!("{name}-ctl"), SegmentKind::RAW).body_len(128).create().unwrap() };
    ctl.seg.set_unlink_on_drop(true);
    let exe = std::env::current_exe().expect("current exe");
    let mut child = std::process::Command::new(exe)
        .env(CHILD_ENV, format!("{name},{}", ctl.seg.name()))
        .spawn()
        .expect("spawn child");
    let mut redis = Redis::connect();
    let map: Mutex<HashMap<Vec<u8>, Vec<u8>>> = Mutex::new(HashMap::new());
    let mut buf = vec![0u8; 64 << 10];
    let mut rbuf = Vec::new();

    for (size, label) in SIZES {
        let value = vec![0xA5u8; size];
        for i in 0..2 * KEYS {
            cache.put(key(i), &value).expect("fill");
            map.lock().unwrap().insert(key(i).to_vec(), value.clone());
            if let Some(r) = redis.as_mut() {
                r.command(&[b"SET", key(i), &value], &mut rbuf).expect("redis fill");
            }
        }
        let mut g = c.benchmark_group(format!("kv/{label}"));
        g.throughput(Throughput::Elements(1));
        let mut i = 0usize;
        g.bench_function(BenchmarkId::new("get", "1proc"), |b| {
            b.iter(|| {
                i = i.wrapping_add(1);
                black_box(cache.get_into(key(i % KEYS), &mut buf).unwrap())
            })
        });
        g.bench_function(BenchmarkId::new("get", "mutex_hashmap"), |b| {
            b.iter(|| {
                i = i.wrapping_add(1);
                let m = map.lock().unwrap();
                let v = m.get(&key(i % KEYS)[..]).unwrap();
                buf[..v.len()].copy_from_slice(v);
                black_box(v.len())
            })
        });
        if let Some(r) = redis.as_mut() {
            g.bench_function(BenchmarkId::new("get", "redis"), |b| {
                b.iter(|| {
                    i = i.wrapping_add(1);
                    r.command(&[b"GET", key(i % KEYS)], &mut rbuf).unwrap();
                    black_box(rbuf.len())
                })
            });
        }
        g.bench_function(BenchmarkId::new("put", "1proc"), |b| {
            b.iter(|| {
                i = i.wrapping_add(1);
                cache.put(key(i % KEYS), black_box(&value)).unwrap()
            })
        });
        g.bench_function(BenchmarkId::new("put", "mutex_hashmap"), |b| {
            b.iter(|| {
                i = i.wrapping_add(1);
                black_box(map.lock().unwrap().insert(key(i % KEYS).to_vec(), black_box(&value).to_vec()))
            })
        });
        if let Some(r) = redis.as_mut() {
            g.bench_function(BenchmarkId::new("put", "redis"), |b| {
                b.iter(|| {
                    i = i.wrapping_add(1);
                    r.command(&[b"SET", key(i % KEYS), &value], &mut rbuf).unwrap()
                })
            });
        }
        g.throughput(Throughput::Elements(2));
        for (mode, op) in [(0u64, "get"), (1, "put")] {
            g.bench_function(BenchmarkId::new(op, "2proc"), |b| {
                b.iter_custom(|iters| {
                    ctl.word(1).store(iters, Ordering::Relaxed);
                    ctl.word(2).store(mode, Ordering::Relaxed);
                    ctl.word(3).store(size as u64, Ordering::Relaxed);
                    let seq = ctl.word(0).load(Ordering::Relaxed) + 1;
                    // Release: publishes the request words to the child.
                    ctl.word(0).store(seq, Ordering::Release);
                    ctl.doorbell().notify_all();
                    let start = Instant::now();
                    for n in 0..iters as usize {
                        if mode == 0 {
                            black_box(cache.get_into(key(n % KEYS), &mut buf).unwrap());
                        } else {
                            cache.put(key(n % KEYS), &value).unwrap();
                        }
                    }
                    // Acquire: the child's operations are complete.
                    while ctl.word(4).load(Ordering::Acquire) != seq {
                        assert!(start.elapsed() < Duration::from_secs(60), "bench child stalled");
                        std::thread::yield_now();
                    }
                    start.elapsed()
                })
            });
        }
        g.finish();
        if let Some(r) = redis.as_mut() {
            for i in 0..2 * KEYS {
                let _ = r.command(&[b"DEL", key(i)], &mut rbuf);
            }
        }
    }
    ctl.word(0).store(u64::MAX, Ordering::Release);
    ctl.doorbell().notify_all();
    let _ = child.wait();
}

fn main() {
    if let Ok(arg) = std::env::var(CHILD_ENV) {
        child_main(&arg);
        return;
    }
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
        .configure_from_args();
    kvcache(&mut c);
    c.final_summary();
}
