//! Single-process behaviour of `KvCache`: API, metadata, typed errors, TTL,
//! eviction order, the MemStream neighbour-corruption scenario, space
//! accounting under churn and a property test against `HashMap`.

use std::collections::HashMap;
use std::time::Duration;

use proptest::prelude::*;
use venom_collections::{Error, Eviction, KvCache, KvConfig};
use venom_core::testkit::unique_name;

fn cache(cfg: KvConfig) -> KvCache {
    let mut c = KvCache::create(&unique_name("kvt"), cfg).unwrap();
    c.set_unlink_on_drop(true);
    c
}

#[test]
fn roundtrip_metadata_and_second_handle() {
    let c = cache(KvConfig::default());
    assert!(c.is_empty());
    c.put(b"alpha", b"one").unwrap();
    c.put(b"", b"empty key is a key").unwrap();
    c.put(b"nothing", b"").unwrap();
    let other = KvCache::open(c.name()).unwrap();
    assert_eq!(other.get(b"alpha").unwrap().as_deref(), Some(&b"one"[..]));
    assert_eq!(other.get(b"").unwrap().as_deref(), Some(&b"empty key is a key"[..]));
    assert_eq!(other.get(b"nothing").unwrap(), Some(vec![]));
    assert_eq!(other.get(b"beta").unwrap(), None);
    assert!(other.contains(b"alpha").unwrap());
    assert_eq!(c.len(), 3);

    let before = c.entries().find(|m| m.key == b"alpha").unwrap();
    std::thread::sleep(Duration::from_millis(10));
    c.put(b"alpha", b"a much longer second value").unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(other.get_into(b"alpha", &mut buf).unwrap(), Some(26));
    assert_eq!(&buf[..26], b"a much longer second value");
    assert_eq!(other.get_with(b"alpha", |v| v.to_vec()).unwrap().unwrap(), b"a much longer second value");
    let after = c.entries().find(|m| m.key == b"alpha").unwrap();
    assert_eq!(after.created_at, before.created_at, "updates keep created_at");
    assert_ne!(after.version, before.version);
    assert_eq!(after.value_len, 26);
    assert_eq!(after.access_count, 3);
    assert!(after.last_access >= before.last_access);

    assert!(c.delete(b"alpha").unwrap());
    assert!(!c.delete(b"alpha").unwrap());
    assert_eq!(other.get(b"alpha").unwrap(), None);
    let s = c.stats();
    assert_eq!((s.inserts, s.updates, s.deletes, s.len), (3, 1, 1, 2));
    assert_eq!((s.hits, s.misses), (5, 2));
    assert!((s.hit_rate() - 5.0 / 7.0).abs() < 1e-9);
    c.clear().unwrap();
    assert_eq!(c.len(), 0);
    assert_eq!(c.get(b"").unwrap(), None);
    assert_eq!(c.stats().used_bytes, 0);
}

#[test]
fn segment_mode_is_0600() {
    use std::os::unix::fs::PermissionsExt;
    let c = cache(KvConfig::default());
    let meta = std::fs::metadata(format!("/dev/shm/venom.{}", c.name())).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
}

#[test]
fn bad_input_gets_typed_errors() {
    let c = cache(KvConfig {
        max_entries: 2,
        data_bytes: 1024,
        max_key_len: 8,
        max_value_len: 1000,
        ..KvConfig::default()
    });
    assert!(matches!(c.put(b"123456789", b"v"), Err(Error::KeyTooLarge { len: 9, max: 8 })));
    assert!(matches!(c.get(b"123456789"), Err(Error::KeyTooLarge { .. })));
    assert!(matches!(c.put(b"k", &[0; 1001]), Err(Error::ValueTooLarge { len: 1001, max: 1000 })));
    assert!(matches!(c.put_with_ttl(b"k", b"v", Duration::ZERO), Err(Error::InvalidConfig(_))));
    c.put(b"k", &[7; 100]).unwrap();
    let mut small = [0u8; 10];
    assert!(matches!(c.get_into(b"k", &mut small), Err(Error::BufferTooSmall { needed: 100, got: 10 })));
    c.put(b"k2", b"v").unwrap();
    assert!(matches!(c.put(b"k3", b"v"), Err(Error::CacheFull)), "entry table full under Reject");
    assert!(c.delete(b"k2").unwrap());
    assert!(matches!(c.put(b"k3", &[1; 1000]), Err(Error::CacheFull)), "data region full under Reject");
    assert_eq!(c.stats().rejects, 2);
    assert_eq!(c.get(b"k").unwrap().unwrap(), vec![7; 100], "a rejected put changes nothing");
    assert_eq!(c.stats().used_bytes, 128);

    let taken = KvCache::create(c.name(), KvConfig::default());
    assert!(
        matches!(taken, Err(Error::Core(venom_core::Error::AlreadyExists { .. }))),
        "a live cache is never re-initialised"
    );
    assert_eq!(c.get(b"k").unwrap().unwrap(), vec![7; 100]);
    let bad = KvConfig { max_entries: 0, ..KvConfig::default() };
    assert!(matches!(KvCache::create(&unique_name("kvt"), bad), Err(Error::InvalidConfig(_))));
    assert!(matches!(KvCache::open(&unique_name("kvt-missing")), Err(Error::Core(_))));
    let raw = venom_core::Segment::builder(&unique_name("kvt"), venom_core::SegmentKind::RAW).body_len(4096).create();
    let raw = raw.unwrap();
    assert!(matches!(KvCache::open(raw.name()), Err(Error::Core(_))), "wrong kind");
    raw.unlink().unwrap();
}

#[test]
fn geometry_validation_rejects_garbage() {
    use venom_collections::kv::KvLayout;
    assert!(KvLayout::from_body_bytes(&[], 100).is_err());
    assert!(KvLayout::from_body_bytes(&[0xAB; 48], 100).is_err());
    let c = cache(KvConfig::default());
    let l = *c.layout();
    let mut words = Vec::new();
    for w in [u64::from_le_bytes(*b"VENOMKV1"), 4096, 64, 64 << 10, (4 << 20) / 64, 0] {
        words.extend_from_slice(&u64::to_le_bytes(w));
    }
    assert_eq!(KvLayout::from_body_bytes(&words, l.body_len).unwrap(), l);
    assert!(KvLayout::from_body_bytes(&words, l.body_len + 64).is_err());
}

#[test]
fn growing_a_value_never_touches_its_neighbour() {
    // MemStream's `test.c` Test 2: grow a value in place over the next one.
    let c = cache(KvConfig { data_bytes: 1 << 16, ..KvConfig::default() });
    c.put(b"a", &[1; 10]).unwrap();
    c.put(b"b", &[2; 10]).unwrap();
    c.delete(b"a").unwrap();
    c.put(b"c", &[3; 10]).unwrap();
    c.put(b"c", &[4; 5000]).unwrap();
    c.put(b"a", &[5; 700]).unwrap();
    assert_eq!(c.get(b"b").unwrap().unwrap(), vec![2; 10]);
    assert_eq!(c.get(b"c").unwrap().unwrap(), vec![4; 5000]);
    assert_eq!(c.get(b"a").unwrap().unwrap(), vec![5; 700]);
}

#[test]
fn ttl_entries_expire_and_are_reclaimed() {
    let c = cache(KvConfig { max_entries: 4, default_ttl: Some(Duration::from_secs(3600)), ..KvConfig::default() });
    c.put_with_ttl(b"short", b"x", Duration::from_millis(250)).unwrap();
    c.put(b"long", b"y").unwrap();
    assert!(c.contains(b"short").unwrap());
    assert!(c.entries().all(|m| m.expires_at.is_some()));
    std::thread::sleep(Duration::from_millis(350));
    assert_eq!(c.get(b"short").unwrap(), None, "expired entries are invisible");
    assert!(!c.contains(b"short").unwrap());
    assert_eq!(c.entries().count(), 1);
    assert_eq!(c.purge_expired().unwrap(), 1);
    assert_eq!(c.stats().expirations, 1);
    assert_eq!(c.len(), 1);
    // A full cache reclaims expired entries before rejecting.
    for k in [b"1", b"2", b"3"] {
        c.put_with_ttl(k, b"z", Duration::from_millis(250)).unwrap();
    }
    std::thread::sleep(Duration::from_millis(350));
    c.put(b"fresh", b"f").unwrap();
    assert_eq!(c.stats().expirations, 4);
    assert_eq!(c.len(), 2);
    // Re-putting an expired key is an insert.
    c.put_with_ttl(b"again", b"1", Duration::from_millis(250)).unwrap();
    std::thread::sleep(Duration::from_millis(350));
    c.put(b"again", b"2").unwrap();
    assert_eq!(c.get(b"again").unwrap().unwrap(), b"2");
}

#[test]
fn clock_evicts_unreferenced_entries_first() {
    let n = 16;
    let c = cache(KvConfig { max_entries: n, eviction: Eviction::Clock, ..KvConfig::default() });
    for i in 0..n {
        c.put(format!("k{i}").as_bytes(), b"v").unwrap();
    }
    for i in 0..n / 2 {
        c.get(format!("k{i}").as_bytes()).unwrap().unwrap();
    }
    for i in 0..n / 2 {
        c.put(format!("new{i}").as_bytes(), b"v").unwrap();
    }
    for i in 0..n / 2 {
        assert!(c.contains(format!("k{i}").as_bytes()).unwrap(), "recently read k{i} survived");
        assert!(!c.contains(format!("k{}", i + n / 2).as_bytes()).unwrap(), "cold k{} evicted", i + n / 2);
        assert!(c.contains(format!("new{i}").as_bytes()).unwrap());
    }
    assert_eq!(c.stats().evictions, (n / 2) as u64);
    // Data-space pressure also evicts (values of 1 KiB in a 4 KiB region).
    let c = cache(KvConfig { data_bytes: 4096, max_value_len: 1024, eviction: Eviction::Clock, ..KvConfig::default() });
    for i in 0..10u8 {
        c.put(&[i], &[i; 1024]).unwrap();
    }
    assert_eq!(c.len(), 4);
    assert!(c.contains(&[9]).unwrap() && !c.contains(&[0]).unwrap());
}

#[test]
fn analytics_rank_by_count_and_recency() {
    let c = cache(KvConfig::default());
    for i in 0..10u8 {
        c.put(&[b'k', i], &[i]).unwrap();
    }
    for i in 0..10u8 {
        for _ in 0..i {
            c.get(&[b'k', i]).unwrap();
        }
    }
    let top = c.top_by_access_count(3);
    assert_eq!(top.iter().map(|m| m.key[1]).collect::<Vec<_>>(), vec![9, 8, 7]);
    assert_eq!(top[0].access_count, 9);
    std::thread::sleep(Duration::from_millis(15));
    c.get(&[b'k', 0]).unwrap();
    assert_eq!(c.top_by_recency(1)[0].key, vec![b'k', 0]);
    assert_eq!(c.entries().count(), 10);
    assert_eq!(c.top_by_access_count(100).len(), 10);
}

#[test]
fn churn_returns_accounting_to_start() {
    let cycles: usize = if std::env::var("VENOM_SOAK").is_ok() { 5_000_000 } else { 200_000 };
    let c = cache(KvConfig { max_entries: 512, data_bytes: 1 << 20, max_value_len: 16 << 10, ..KvConfig::default() });
    let s0 = c.stats();
    let mut model: HashMap<u32, usize> = HashMap::new();
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let block = |len: usize| if len == 0 { 0 } else { len.div_ceil(64).next_power_of_two() * 64 };
    let buf = vec![0xA5u8; 16 << 10];
    for i in 0..cycles {
        let r = next();
        let key = (r % 400) as u32;
        if r >> 60 < 10 {
            let len = ((r >> 20) as usize % 64) << ((r >> 30) % 9);
            match c.put(&key.to_le_bytes(), &buf[..len.min(16 << 10)]) {
                Ok(()) => {
                    model.insert(key, len.min(16 << 10));
                }
                // A rejected put leaves the old value (if any) in place.
                Err(Error::CacheFull) => {}
                Err(e) => panic!("{e}"),
            }
        } else {
            assert_eq!(c.delete(&key.to_le_bytes()).unwrap(), model.remove(&key).is_some());
        }
        if i % 10_000 == 0 {
            let s = c.stats();
            assert_eq!(s.len as usize, model.len());
            assert_eq!(s.value_bytes as usize, model.values().sum::<usize>());
            assert_eq!(s.used_bytes as usize, model.values().map(|&l| block(l)).sum::<usize>());
        }
    }
    for key in model.keys() {
        assert_eq!(c.get(&key.to_le_bytes()).unwrap().map(|v| v.len()), Some(model[key]));
        assert!(c.delete(&key.to_le_bytes()).unwrap());
    }
    let s = c.stats();
    assert_eq!((s.len, s.used_bytes, s.value_bytes), (0, 0, 0));
    assert_eq!((s.free_bytes, s.largest_free_block), (s0.free_bytes, s0.largest_free_block));
    assert_eq!(s.fragmentation, 0.0);
}

#[derive(Clone, Debug)]
enum Op {
    Put(u8, Vec<u8>),
    Get(u8),
    Delete(u8),
    Contains(u8),
    Clear,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..24, prop::collection::vec(any::<u8>(), 0..300)).prop_map(|(k, v)| Op::Put(k, v)),
        4 => (0u8..24).prop_map(Op::Get),
        2 => (0u8..24).prop_map(Op::Delete),
        1 => (0u8..24).prop_map(Op::Contains),
        1 => Just(Op::Clear),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn behaves_like_a_hashmap(ops in prop::collection::vec(op(), 1..200)) {
        let c = cache(KvConfig { max_entries: 32, data_bytes: 64 << 10, max_value_len: 1024, ..KvConfig::default() });
        let mut model: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
        for op in ops {
            match op {
                Op::Put(k, v) => {
                    let key = vec![b'k'; k as usize];
                    c.put(&key, &v).unwrap();
                    model.insert(key, v);
                }
                Op::Get(k) => {
                    let key = vec![b'k'; k as usize];
                    prop_assert_eq!(c.get(&key).unwrap(), model.get(&key).cloned());
                }
                Op::Delete(k) => {
                    let key = vec![b'k'; k as usize];
                    prop_assert_eq!(c.delete(&key).unwrap(), model.remove(&key).is_some());
                }
                Op::Contains(k) => {
                    let key = vec![b'k'; k as usize];
                    prop_assert_eq!(c.contains(&key).unwrap(), model.contains_key(&key));
                }
                Op::Clear => {
                    c.clear().unwrap();
                    model.clear();
                }
            }
            prop_assert_eq!(c.len(), model.len());
        }
        let mut keys: Vec<Vec<u8>> = c.entries().map(|m| m.key).collect();
        keys.sort();
        let mut want: Vec<Vec<u8>> = model.keys().cloned().collect();
        want.sort();
        prop_assert_eq!(keys, want);
    }
}

#[test]
fn threads_share_one_handle_without_torn_reads() {
    let c = std::sync::Arc::new(cache(KvConfig { max_entries: 64, data_bytes: 1 << 20, ..KvConfig::default() }));
    let value = |seq: u64| {
        let mut v = vec![seq as u8; 8 + (seq as usize * 131) % 5000];
        v[..8].copy_from_slice(&seq.to_le_bytes());
        v
    };
    for k in 0..8u8 {
        c.put(&[k], &value(0)).unwrap();
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (c, stop) = (c.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    for k in 0..8u8 {
                        let ok = c.get_with(&[k], |v| {
                            let seq = u64::from_le_bytes(v[..8].try_into().unwrap());
                            v[8..].iter().all(|&b| b == seq as u8) && v.len() == 8 + (seq as usize * 131) % 5000
                        });
                        assert!(ok.unwrap().unwrap(), "torn value");
                        n += 1;
                    }
                }
                n
            })
        })
        .collect();
    for seq in 1..3000u64 {
        c.put(&[(seq % 8) as u8], &value(seq)).unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let reads: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(reads > 0);
    assert_eq!(c.stats().updates, 2999);
}
