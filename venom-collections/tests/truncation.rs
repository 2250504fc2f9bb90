//! A collections segment or KvCache truncated while another process reads
//! it: the reader gets `Error::Core(Truncated)` instead of dying by SIGBUS.

use std::path::Path;
use std::time::Duration;

use venom_collections::{Error, KvCache, KvConfig, ObjectSegment};
use venom_core::{Deadline, testkit};

const SEC: Duration = Duration::from_secs(1);
const ARRAY_LEN: usize = 96 << 10; // 768 KiB of u64 in a 1 MiB segment

fn is_truncated(e: &Error) -> bool {
    matches!(e, Error::Core(venom_core::Error::Truncated { .. }))
}

/// Warms up with 50 operations, signals `ready`, then runs `op` until it
/// reports the truncation (the child then exits 0).
fn read_until_truncated(ready: &Path, mut op: impl FnMut() -> Result<(), Error>) {
    for _ in 0..50 {
        match op() {
            Ok(()) | Err(Error::Timeout(_)) => {}
            Err(e) => panic!("before the truncation: {e}"),
        }
    }
    std::fs::write(ready, b"").unwrap();
    let deadline = Deadline::after(20 * SEC);
    while !deadline.is_past() {
        match op() {
            Err(e) if is_truncated(&e) => {
                assert!(op().is_err_and(|e| is_truncated(&e)), "later operations must fail too");
                return;
            }
            Ok(()) | Err(Error::Timeout(_)) => {}
            Err(e) => panic!("unexpected error before the truncation was reported: {e}"),
        }
    }
    panic!("the truncation was never reported");
}

#[test]
fn child_objects_reader() {
    let Some(name) = testkit::child_arg("objects-reader") else { return };
    let seg = ObjectSegment::open(&name).unwrap();
    let q = seg.open_queue::<u64>("q").unwrap();
    let m = seg.open_hash_map::<u64, u64>("m").unwrap();
    let b = seg.open_bitset("b").unwrap();
    let a = seg.open_array::<u64>("a").unwrap();
    let mut buf = vec![0u64; ARRAY_LEN];
    read_until_truncated(&testkit::marker_path(&name, "ready"), || {
        let _ = q.try_pop();
        m.get(&7)?;
        b.test(3)?;
        a.copy_to_slice(0, &mut buf)?;
        q.push(1, Duration::ZERO).or_else(|e| if matches!(e, Error::Timeout(_)) { Ok(()) } else { Err(e) })
    });
}

#[test]
fn object_segment_truncated_under_reader() {
    for (what, len) in testkit::shrinks() {
        let name = testkit::unique_name(&format!("trunc-objs-{what}"));
        let seg = ObjectSegment::create(&name, 1 << 20).unwrap();
        let q = seg.queue::<u64>("q", 64).unwrap();
        let m = seg.hash_map::<u64, u64>("m", 64).unwrap();
        let b = seg.bitset("b", 1024).unwrap();
        let a = seg.array::<u64>("a", ARRAY_LEN).unwrap();
        q.push(5, SEC).unwrap();
        m.insert(7, 70).unwrap();
        b.set(3).unwrap();
        a.store(ARRAY_LEN - 1, 9).unwrap();
        let mut kid = testkit::spawn_child("child_objects_reader", "objects-reader", &name).unwrap();
        testkit::truncate_under(&name, &mut kid, len);
        // Our own mapping notices too once it touches the lost pages.
        let mut buf = vec![0u64; ARRAY_LEN];
        assert!(a.copy_to_slice(0, &mut buf).is_err_and(|e| is_truncated(&e)));
        assert!(seg.check_mapped().is_err_and(|e| is_truncated(&e)));
        seg.unlink().unwrap();
    }
}

fn kv_key(i: usize) -> Vec<u8> {
    format!("key-{i:05}").into_bytes()
}

#[test]
fn child_kv_reader() {
    let Some(name) = testkit::child_arg("kv-reader") else { return };
    let c = KvCache::open(&name).unwrap();
    let mut buf = vec![0u8; 8192];
    read_until_truncated(&testkit::marker_path(&name, "ready"), || {
        for i in 0..200 {
            c.get_into(&kv_key(i), &mut buf)?;
        }
        Ok(())
    });
}

#[test]
fn kv_cache_truncated_under_reader() {
    for (what, len) in testkit::shrinks() {
        let name = testkit::unique_name(&format!("trunc-kv-{what}"));
        let cfg = KvConfig { max_entries: 256, data_bytes: 2 << 20, ..KvConfig::default() };
        let c = KvCache::create(&name, cfg).unwrap();
        for i in 0..200 {
            c.put(&kv_key(i), &vec![i as u8; 8000]).unwrap();
        }
        let mut kid = testkit::spawn_child("child_kv_reader", "kv-reader", &name).unwrap();
        testkit::truncate_under(&name, &mut kid, len);
        let mut lost = false;
        for i in 0..200 {
            if c.get(&kv_key(i)).is_err_and(|e| is_truncated(&e)) {
                lost = true;
                break;
            }
        }
        assert!(lost, "the creator's handle never noticed");
        c.unlink().unwrap();
    }
}

#[test]
fn child_blocked_pop() {
    let Some(name) = testkit::child_arg("blocked-pop") else { return };
    let seg = ObjectSegment::open(&name).unwrap();
    let q = seg.open_queue::<u64>("q").unwrap();
    std::fs::write(testkit::marker_path(&name, "ready"), b"").unwrap();
    // Blocks "forever" on an empty queue: only the truncation can end it.
    let r = q.pop(Duration::MAX);
    assert!(r.as_ref().is_err_and(is_truncated), "expected Truncated, got {r:?}");
}

/// A consumer asleep in `pop(Duration::MAX)` is woken by the truncation
/// (within the doorbell's sleep slice) and told why.
#[test]
fn blocked_pop_learns_of_truncation() {
    let name = testkit::unique_name("trunc-blocked-pop");
    let seg = ObjectSegment::create(&name, 1 << 16).unwrap();
    let _q = seg.queue::<u64>("q", 4).unwrap();
    let mut kid = testkit::spawn_child("child_blocked_pop", "blocked-pop", &name).unwrap();
    testkit::truncate_under(&name, &mut kid, |_| 0);
    seg.unlink().unwrap();
}
