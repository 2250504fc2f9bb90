//! Extreme arguments never panic: capacities 0 and `usize::MAX`, indices and
//! offsets near the end of the address space, `Duration::MAX`/`ZERO`
//! timeouts, absurd `KvConfig`s. Each gets a typed error or a sane result.

use std::time::Duration;

use proptest::prelude::*;
use venom_collections::{Error, Eviction, KvCache, KvConfig, ObjectSegment};
use venom_core::testkit;

/// Issue 13: `copy_to_slice`/`copy_from_slice` with a start near
/// `usize::MAX` overflowed (a panic in debug builds, a wrong index in the
/// error in release).
#[test]
fn array_copy_near_usize_max() {
    let name = testkit::unique_name("xarg-array");
    let seg = ObjectSegment::create(&name, 1 << 16).unwrap();
    let a = seg.array::<u64>("a", 10).unwrap();
    let mut buf = [0u64; 4];
    for start in [usize::MAX, usize::MAX - 1, usize::MAX - 3, 11, 10, 7] {
        match a.copy_to_slice(start, &mut buf) {
            Err(Error::IndexOutOfBounds { index, len: 10 }) => assert_eq!(index, (start as u64).max(10)),
            other => panic!("copy_to_slice({start}): {other:?}"),
        }
        assert!(matches!(a.copy_from_slice(start, &buf), Err(Error::IndexOutOfBounds { len: 10, .. })));
    }
    a.copy_from_slice(6, &buf).unwrap();
    a.copy_to_slice(6, &mut buf).unwrap();
    a.copy_to_slice(usize::MAX, &mut []).unwrap_err();
    a.copy_to_slice(10, &mut []).unwrap();
    seg.unlink().unwrap();
}

/// Waits with `Duration::MAX` return as soon as they can; `ZERO` tries once.
#[test]
fn waits_accept_duration_max() {
    let name = testkit::unique_name("xarg-waits");
    let seg = ObjectSegment::create(&name, 1 << 16).unwrap();
    let q = seg.queue::<u64>("q", 2).unwrap();
    q.push(1, Duration::MAX).unwrap();
    q.push(2, Duration::MAX).unwrap();
    assert!(matches!(q.push(3, Duration::ZERO), Err(Error::Timeout(_))));
    assert_eq!(q.pop(Duration::MAX).unwrap(), 1);
    assert_eq!(q.pop(Duration::ZERO).unwrap(), 2);
    assert!(matches!(q.pop(Duration::ZERO), Err(Error::Timeout(_))));
    let mut m = seg.hash_map::<u64, u64>("m", 4).unwrap();
    m.set_stall_timeout(Duration::MAX);
    m.insert(1, 1).unwrap();
    assert_eq!(m.get(&1).unwrap(), Some(1));
    let mut a = seg.array::<[u64; 3]>("a", 4).unwrap();
    a.set_stall_timeout(Duration::MAX);
    a.store(3, [1, 2, 3]).unwrap();
    assert_eq!(a.load(3).unwrap(), [1, 2, 3]);
    seg.unlink().unwrap();

    let kv = testkit::unique_name("xarg-kv-ttl");
    let c = KvCache::create(&kv, KvConfig::default()).unwrap();
    // A TTL too large to represent is a typed error, not a panic.
    assert!(matches!(c.put_with_ttl(b"k", b"v", Duration::MAX), Err(Error::InvalidConfig(_))));
    assert!(matches!(c.put_with_ttl(b"k", b"v", Duration::ZERO), Err(Error::InvalidConfig(_))));
    c.put_with_ttl(b"k", b"v", Duration::from_secs(60)).unwrap();
    c.unlink().unwrap();
}

fn capacity() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(0),
        Just(1),
        Just(2),
        Just(3),
        Just(1 << 20),
        Just(1 << 40),
        Just(usize::MAX / 2),
        Just(usize::MAX - 1),
        Just(usize::MAX),
        0usize..300,
    ]
}

fn index() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(0),
        Just(usize::MAX),
        Just(usize::MAX - 1),
        Just(usize::MAX / 2),
        Just(u32::MAX as usize),
        0usize..400
    ]
}

/// Sizes for `KvConfig` fields: tiny, or over the limits (never a huge cache).
fn kv_size() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(0),
        Just(1),
        Just(63),
        Just(64),
        Just(65),
        Just(4096),
        Just(1 << 40),
        Just(usize::MAX),
        0usize..5000
    ]
}

fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::from_nanos(1)),
        Just(Duration::from_secs(u64::MAX)),
        Just(Duration::MAX)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn object_segment_extremes(size in capacity(), entries in capacity(), mode in any::<u32>()) {
        let name = testkit::unique_name("xarg-objseg");
        // Sizes up to 1 MiB only actually get created.
        let size = if size > (1 << 20) && size < (1 << 46) { usize::MAX } else { size };
        if let Ok(seg) = ObjectSegment::create_with(&name, size, entries, mode) {
            prop_assert!(seg.data_bytes() <= size as u64);
            seg.unlink().unwrap();
        }
    }

    #[test]
    fn structure_extremes(cap in capacity(), i in index(), j in index(), bit in any::<u64>(), t in duration()) {
        let name = testkit::unique_name("xarg-structs");
        let seg = ObjectSegment::create(&name, 1 << 20).unwrap();
        if let Ok(q) = seg.queue::<u64>("q", cap) {
            // Room for one item: MAX returns at once.
            q.push(7, t).unwrap();
            prop_assert_eq!(q.pop(t).unwrap(), 7);
            prop_assert!(matches!(q.pop(Duration::ZERO), Err(Error::Timeout(_))));
        }
        if let Ok(s) = seg.stack::<u64>("s", cap) {
            if cap > 0 {
                s.push(1).unwrap();
                prop_assert_eq!(s.pop(), Some(1));
            } else {
                prop_assert!(s.push(1).is_err());
            }
        }
        if let Ok(m) = seg.hash_map::<u64, u64>("m", cap) {
            let _ = m.insert(i as u64, j as u64);
            let _ = m.get(&(i as u64));
            let _ = m.remove(&(i as u64));
        }
        if let Ok(b) = seg.bitset("b", cap as u64) {
            let r = b.set(bit);
            prop_assert_eq!(r.is_ok(), bit < cap as u64);
            let _ = b.test(u64::MAX);
            let _ = b.flip(bit);
            let _ = b.clear(bit);
        }
        if let Ok(a) = seg.array::<u64>("a", cap) {
            let n = j.min(1000);
            let mut buf = vec![0u64; n];
            let fits = i.checked_add(n).is_some_and(|e| e <= a.len());
            prop_assert_eq!(a.copy_to_slice(i, &mut buf).is_ok(), fits);
            prop_assert_eq!(a.copy_from_slice(i, &buf).is_ok(), fits);
            prop_assert_eq!(a.load(i).is_ok(), i < a.len());
            prop_assert_eq!(a.store(i, 1).is_ok(), i < a.len());
            let _ = a.fetch_add(i, u64::MAX);
            let _ = a.compare_exchange(i, 0, u64::MAX);
        }
        seg.unlink().unwrap();
    }

    #[test]
    fn kv_extremes(
        entries in kv_size(), data in kv_size(), key_len in kv_size(), value_len in kv_size(),
        ttl in prop_oneof![Just(None), duration().prop_map(Some)],
        put_ttl in duration(),
        klen in prop_oneof![Just(0usize), Just(1), Just(4096), Just(5000), 0usize..100],
        vlen in prop_oneof![Just(0usize), Just(1), Just(5000), 0usize..100],
    ) {
        let cfg = KvConfig {
            max_entries: entries, data_bytes: data, max_key_len: key_len, max_value_len: value_len,
            eviction: Eviction::Clock, default_ttl: ttl, ..KvConfig::default()
        };
        let valid = cfg.validate().is_ok();
        let name = testkit::unique_name("xarg-kv");
        match KvCache::create(&name, cfg) {
            Ok(c) => {
                prop_assert!(valid);
                let key = vec![b'k'; klen];
                let value = vec![b'v'; vlen];
                let _ = c.put(&key, &value);
                let _ = c.put_with_ttl(&key, &value, put_ttl);
                let mut buf = vec![0u8; vlen / 2];
                let _ = c.get_into(&key, &mut buf);
                let _ = c.get(&key);
                let _ = c.delete(&key);
                let _ = c.top_by_access_count(usize::MAX);
                let _ = c.top_by_recency(0);
                let _ = c.purge_expired();
                c.unlink().unwrap();
            }
            Err(Error::InvalidConfig(_)) => prop_assert!(!valid),
            Err(e) => prop_assert!(false, "unexpected {e}"),
        }
    }
}
