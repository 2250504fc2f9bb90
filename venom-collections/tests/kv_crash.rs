//! SIGKILL mid-put. A child stops at a named point inside `put` (test hook),
//! tells the parent through a shared-memory flag, and is killed. The
//! interrupted put must be all-or-nothing, other processes must not hang,
//! and the space accounting must return to zero afterwards.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use venom_collections::{Eviction, KvCache, KvConfig};
use venom_core::testkit::{self, ChildProc, spawn_child, unique_name};
use venom_core::{Segment, SegmentKind};

/// Address of the flag word in this process (0 = none).
static FLAG: AtomicUsize = AtomicUsize::new(0);
static POINT: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn flag_word(seg: &Segment) -> &AtomicU32 {
    // SAFETY: the body is >= 64 bytes, 128-aligned, and only accessed
    // atomically by both processes.
    unsafe { &*(seg.body_ptr() as *const AtomicU32) }
}

fn pause_hook(point: &'static str) {
    if POINT.get().is_some_and(|p| p == point) {
        let addr = FLAG.load(Ordering::SeqCst);
        if addr != 0 {
            // SAFETY: `addr` is the flag word of a leaked (never unmapped)
            // segment.
            unsafe { &*(addr as *const AtomicU32) }.store(1, Ordering::SeqCst);
        }
        // Wait to be killed (bounded: the parent kills within seconds).
        std::thread::sleep(Duration::from_secs(30));
        std::process::exit(3);
    }
}

#[test]
fn child_kv_crasher() {
    let Some(arg) = testkit::child_arg("kv-crasher") else { return };
    let parts: Vec<&str> = arg.split(',').collect();
    let (cache, flag, point, key, len) = (parts[0], parts[1], parts[2], parts[3], parts[4].parse().unwrap());
    let seg = Segment::open(flag, SegmentKind::RAW).unwrap();
    FLAG.store(flag_word(&seg) as *const AtomicU32 as usize, Ordering::SeqCst);
    std::mem::forget(seg);
    POINT.set(point.to_owned()).unwrap();
    venom_collections::kv::set_pause_hook(pause_hook);
    let c = KvCache::open(cache).unwrap();
    c.put(key.as_bytes(), &vec![0xEE; len]).unwrap();
}

#[test]
fn child_kv_waiting_writer() {
    let Some(name) = testkit::child_arg("kv-waiter") else { return };
    let c = KvCache::open(&name).unwrap();
    c.put(b"waiter", b"got the lock").unwrap();
}

struct Setup {
    cache: KvCache,
    flag: Segment,
    initial_free: u64,
}

fn setup() -> Setup {
    setup_with(KvConfig { data_bytes: 1 << 20, ..KvConfig::default() })
}

fn setup_with(cfg: KvConfig) -> Setup {
    let mut cache = KvCache::create(&unique_name("kvcr"), cfg).unwrap();
    cache.set_unlink_on_drop(true);
    let initial_free = cache.stats().largest_free_block;
    cache.put(b"victim", &[0x11; 100]).unwrap();
    cache.put(b"neighbour", &[0x22; 300]).unwrap();
    let mut flag = Segment::builder(&unique_name("kvcr-flag"), SegmentKind::RAW).body_len(64).create().unwrap();
    flag.set_unlink_on_drop(true);
    Setup { cache, flag, initial_free }
}

/// Starts a child that stops at `point` while putting `len` bytes of 0xEE
/// under `key`; returns once it is there.
fn crash_at(s: &Setup, point: &str, key: &str, len: usize) -> ChildProc {
    let arg = format!("{},{},{point},{key},{len}", s.cache.name(), s.flag.name());
    let child = spawn_child("child_kv_crasher", "kv-crasher", &arg).unwrap();
    assert!(testkit::wait_for(Duration::from_secs(20), || flag_word(&s.flag).load(Ordering::SeqCst) == 1));
    child
}

/// The cache is still consistent and usable, and frees back to its start.
fn check_usable(s: &Setup) {
    let c = &s.cache;
    if c.layout().eviction == Eviction::Reject {
        assert_eq!(c.get(b"neighbour").unwrap().unwrap(), vec![0x22; 300]);
    }
    c.put(b"after", &[0x33; 2000]).unwrap();
    assert_eq!(c.get(b"after").unwrap().unwrap(), vec![0x33; 2000]);
    let keys: Vec<Vec<u8>> = c.entries().map(|m| m.key).collect();
    assert_eq!(keys.len(), c.len());
    for k in keys {
        assert!(c.get(&k).unwrap().is_some());
        assert!(c.delete(&k).unwrap());
    }
    let st = c.stats();
    assert_eq!((st.len, st.used_bytes, st.value_bytes), (0, 0, 0));
    assert_eq!(st.largest_free_block, s.initial_free);
}

#[test]
fn killed_inside_insert_is_invisible_and_a_reader_recovers() {
    let s = setup();
    let mut child = crash_at(&s, "put:inside-insert", "fresh", 5000);
    child.kill9();
    let t = Instant::now();
    // A reader meets the half-written (odd) entry only via a stale index
    // slot at most; this get must not hang either way.
    assert_eq!(s.cache.get(b"fresh").unwrap(), None);
    assert!(t.elapsed() < Duration::from_secs(3));
    s.cache.put(b"x", b"y").unwrap();
    assert_eq!(s.cache.stats().recoveries, 1);
    assert_eq!(s.cache.get(b"fresh").unwrap(), None);
    assert_eq!(s.cache.get(b"victim").unwrap().unwrap(), vec![0x11; 100]);
    check_usable(&s);
}

#[test]
fn killed_inside_update_rolls_back_and_waiters_proceed() {
    let s = setup();
    let mut child = crash_at(&s, "put:inside-update", "victim", 5000);
    // Another process blocks on the writer lock meanwhile.
    let mut waiter = spawn_child("child_kv_waiting_writer", "kv-waiter", s.cache.name()).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    child.kill9();
    assert!(waiter.wait_timeout(Duration::from_secs(10)).unwrap().success(), "waiter must not hang");
    // A reader of the victim saw an odd version; now it sees the old value.
    assert_eq!(s.cache.get(b"victim").unwrap().unwrap(), vec![0x11; 100]);
    assert_eq!(s.cache.get(b"waiter").unwrap().unwrap(), b"got the lock");
    assert_eq!(s.cache.stats().recoveries, 1);
    check_usable(&s);
}

#[test]
fn killed_reader_side_during_odd_window_recovers_via_get() {
    let s = setup();
    let mut child = crash_at(&s, "put:inside-update", "victim", 70);
    child.kill9();
    let t = Instant::now();
    assert_eq!(s.cache.get(b"victim").unwrap().unwrap(), vec![0x11; 100]);
    assert!(t.elapsed() < Duration::from_secs(3), "reader recovered promptly");
    assert_eq!(s.cache.stats().recoveries, 1);
    check_usable(&s);
}

#[test]
fn killed_after_publish_is_fully_visible() {
    let s = setup();
    let mut child = crash_at(&s, "put:published", "fresh2", 3000);
    child.kill9();
    s.cache.put(b"x", b"y").unwrap();
    assert_eq!(s.cache.get(b"fresh2").unwrap().unwrap(), vec![0xEE; 3000], "index rebuilt by recovery");
    check_usable(&s);
}

#[test]
fn killed_after_value_write_leaves_old_value() {
    let s = setup();
    let mut child = crash_at(&s, "put:value-written", "victim", 900);
    child.kill9();
    s.cache.put(b"x", b"y").unwrap();
    assert_eq!(s.cache.get(b"victim").unwrap().unwrap(), vec![0x11; 100]);
    check_usable(&s);
}

#[test]
fn child_kv_churner() {
    let Some(name) = testkit::child_arg("kv-churner") else { return };
    let c = KvCache::open(&name).unwrap();
    for i in 0u64.. {
        let k = (i * 7) % 97;
        let len = 8 + ((i * 131) % 3000) as usize;
        let mut v = vec![(k as u8) ^ (len as u8); len];
        v[..8].copy_from_slice(&(len as u64).to_le_bytes());
        if i % 5 == 4 {
            c.delete(&k.to_le_bytes()).unwrap();
        } else {
            c.put(&k.to_le_bytes(), &v).unwrap();
        }
    }
}

#[test]
fn killed_at_random_points_stays_consistent() {
    // CLOCK eviction in a small data region: kills also land inside
    // evictions and allocator work.
    let s = setup_with(KvConfig { data_bytes: 96 << 10, eviction: Eviction::Clock, ..KvConfig::default() });
    for round in 0..8u64 {
        let mut child = spawn_child("child_kv_churner", "kv-churner", s.cache.name()).unwrap();
        assert!(testkit::wait_for(Duration::from_secs(20), || s.cache.len() > 20));
        std::thread::sleep(Duration::from_millis(3 + round * 7));
        child.kill9();
        s.cache.put(b"probe", b"p").unwrap();
        for m in s.cache.entries() {
            let v = s.cache.get(&m.key).unwrap().unwrap();
            if m.key.len() == 8 {
                let len = u64::from_le_bytes(v[..8].try_into().unwrap()) as usize;
                assert_eq!(v.len(), len);
                assert!(v[8..].iter().all(|&b| b == (m.key[0] ^ len as u8)), "torn value after crash");
            }
        }
    }
    let st = s.cache.stats();
    eprintln!("random kills: {} recoveries, {} evictions in 8 rounds", st.recoveries, st.evictions);
    check_usable(&s);
}
