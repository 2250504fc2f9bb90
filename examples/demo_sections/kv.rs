//! Demo section `kv`: a shared-memory key-value cache used by several
//! processes, a writer killed mid-put, and the cache's own analytics.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use venom_collections::{Eviction, KvCache, KvConfig};
use venom_core::{Segment, SegmentKind};
use venom_examples::Children;

const HOT: usize = 64;

fn hot_key(i: usize) -> Vec<u8> {
    format!("hot-{i:012}").into_bytes()
}

/// A value that checks itself: 8-byte seq, then `seq as u8` repeated.
fn value(seq: u64, len: usize) -> Vec<u8> {
    let mut v = vec![seq as u8; len.max(8)];
    v[..8].copy_from_slice(&seq.to_le_bytes());
    v
}

fn torn(v: &[u8]) -> bool {
    v.len() < 8 || v[8..].iter().any(|&b| b != v[0])
}

/// Runs the section from the parent demo process.
pub fn run(exe: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let name = format!("demo-kv-{}", std::process::id());
    let cfg = KvConfig { max_entries: 4096, data_bytes: 8 << 20, eviction: Eviction::Clock, ..KvConfig::default() };
    let mut cache = KvCache::create(&name, cfg)?;
    cache.set_unlink_on_drop(true);
    println!("[kv] KvCache {name:?}: 4096 entries, 8 MiB of values, CLOCK eviction, mode 0600");

    let mut kids = Children::new("kv");
    let t = Instant::now();
    kids.spawn(exe, &["load", &name])?;
    kids.join(Duration::from_secs(10))?;
    println!("[kv] a writer process put 2000 keys (16 B keys, 64 B..4 KiB values) in {:?}", t.elapsed());

    let mut buf = vec![0u8; 64 << 10];
    let n = 200_000;
    let mut lat = Vec::with_capacity(n / 100);
    let t = Instant::now();
    for i in 0..n {
        let k = hot_key(i % HOT);
        if i % 100 == 0 {
            let s = Instant::now();
            cache.get_into(&k, &mut buf)?;
            lat.push(s.elapsed());
        } else {
            cache.get_into(&k, &mut buf)?;
        }
    }
    let per = t.elapsed() / n as u32;
    lat.sort();
    println!(
        "[kv] {n} gets of 64 B values here: {per:?} each on average (p50 {:?} with timer overhead)",
        lat[lat.len() / 2]
    );

    kids.spawn(exe, &["update", &name, "600"])?;
    kids.spawn(exe, &["read", &name, "600", "0"])?;
    kids.spawn(exe, &["read", &name, "600", "1"])?;
    kids.join(Duration::from_secs(10))?;
    let reads: u64 = (0..2)
        .map(|r| cache.get(format!("demo:reads-{r}").as_bytes()).ok().flatten())
        .map(|v| v.and_then(|v| v.try_into().ok()).map_or(0, u64::from_le_bytes))
        .sum();
    let updates = cache.stats().updates;
    println!("[kv] 2 reader processes vs 1 updater for 0.6 s: {reads} validated reads, 0 torn, {updates} updates");

    let mut flag = Segment::builder(&format!("{name}-flag"), SegmentKind::RAW).body_len(64).create()?;
    flag.set_unlink_on_drop(true);
    let before = cache.get(&hot_key(0))?.ok_or("hot-0 missing")?;
    kids.spawn(exe, &["crash", &name, flag.name()])?;
    let word = flag_word(&flag);
    let deadline = Instant::now() + Duration::from_secs(5);
    while word.load(Ordering::SeqCst) == 0 {
        if Instant::now() > deadline {
            return Err("crasher never reached its pause point".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    kids.kill9(0)?;
    kids.procs.clear();
    let t = Instant::now();
    let after = cache.get(&hot_key(0))?.ok_or("hot-0 lost")?;
    println!(
        "[kv] writer SIGKILLed inside put (entry half-written, lock held): next get took {:?}, \
         returned the {} value; recoveries = {}",
        t.elapsed(),
        if after == before { "old (rolled back)" } else { "NEW?!" },
        cache.stats().recoveries
    );
    cache.put(b"after-crash", b"fine")?;

    let s = cache.stats();
    let top: Vec<String> = cache
        .top_by_access_count(3)
        .iter()
        .map(|m| format!("{} ({} reads)", String::from_utf8_lossy(&m.key), m.access_count))
        .collect();
    println!(
        "[kv] analytics: {} entries, {} KiB in blocks, hit rate {:.1}%, hottest: {}",
        s.len,
        s.used_bytes >> 10,
        100.0 * s.hit_rate(),
        top.join(", ")
    );
    Ok(())
}

fn flag_word(seg: &Segment) -> &AtomicU32 {
    // SAFETY: the body is 64 bytes, 128-aligned, accessed only atomically.
    unsafe { &*(seg.body_ptr() as *const AtomicU32) }
}

static FLAG_ADDR: AtomicUsize = AtomicUsize::new(0);

fn crash_hook(point: &'static str) {
    if point == "put:inside-update" {
        let addr = FLAG_ADDR.load(Ordering::SeqCst);
        if addr != 0 {
            // SAFETY: the flag segment is leaked (never unmapped) in this process.
            unsafe { &*(addr as *const AtomicU32) }.store(1, Ordering::SeqCst);
        }
        std::thread::sleep(Duration::from_secs(10));
        std::process::exit(3);
    }
}

/// Entry point for a child process spawned by `run`.
pub fn child(role: &str, args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let name = args.first().ok_or("missing cache name")?;
    let cache = KvCache::open(name)?;
    let ms = |i: usize| args.get(i).and_then(|a| a.parse().ok()).map_or(Duration::ZERO, Duration::from_millis);
    match role {
        "load" => {
            for i in 0..HOT {
                cache.put(&hot_key(i), &value(0, 64))?;
            }
            for i in HOT..2000 {
                cache.put(format!("cold-{i:011}").as_bytes(), &value(0, 64 << (i % 7)))?;
            }
        }
        "update" => {
            let end = Instant::now() + ms(1);
            let mut seq = 1u64;
            while Instant::now() < end {
                cache.put(&hot_key(seq as usize % HOT), &value(seq, 64 + (seq as usize * 37) % 2000))?;
                seq += 1;
            }
        }
        "read" => {
            let end = Instant::now() + ms(1);
            let (mut reads, mut i) = (0u64, 0usize);
            let mut buf = vec![0u8; 64 << 10];
            while Instant::now() < end {
                for _ in 0..256 {
                    i = i.wrapping_add(7);
                    if let Some(len) = cache.get_into(&hot_key(i % HOT), &mut buf)? {
                        if torn(&buf[..len]) {
                            return Err("torn value observed".into());
                        }
                        reads += 1;
                    }
                }
            }
            let id = args.get(2).map_or("0", |s| s.as_str());
            cache.put(format!("demo:reads-{id}").as_bytes(), &reads.to_le_bytes())?;
        }
        "crash" => {
            let flag = Segment::open(args.get(1).ok_or("missing flag name")?, SegmentKind::RAW)?;
            FLAG_ADDR.store(flag_word(&flag) as *const AtomicU32 as usize, Ordering::SeqCst);
            std::mem::forget(flag);
            venom_collections::kv::set_pause_hook(crash_hook);
            cache.put(&hot_key(0), &value(999, 3000))?;
        }
        other => return Err(format!("unknown kv role {other:?}").into()),
    }
    Ok(())
}
