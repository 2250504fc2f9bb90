//! HashMap across real processes: concurrent inserts/removes checked against
//! a model, same-key races, and SIGKILL of a writer.

use std::collections::HashMap as StdMap;
use std::time::Duration;

use venom_collections::{Error, ObjectSegment};
use venom_core::testkit;

const OPS: u64 = 4000;
const SHARED_KEYS: std::ops::Range<u64> = 10_000..10_200;

/// xorshift64*: the same sequence in parent and child.
fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed | 1;
    move || {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// The ops of worker `id` on its own keys (k % 2 == id), applied to `apply`.
fn script(id: u64, mut apply: impl FnMut(bool, u64, u64)) {
    let mut next = rng(0xC0FFEE + id);
    for i in 0..OPS {
        let k = (next() % 256) * 2 + id;
        apply(next() % 3 != 0, k, i);
    }
}

fn model(id: u64) -> StdMap<u64, u64> {
    let mut m = StdMap::new();
    script(id, |ins, k, v| {
        if ins {
            m.insert(k, v);
        } else {
            m.remove(&k);
        }
    });
    m
}

#[test]
fn child_map_worker() {
    let Some(arg) = testkit::child_arg("map-worker") else { return };
    let (name, id) = arg.split_once(':').unwrap();
    let id: u64 = id.parse().unwrap();
    let s = ObjectSegment::open(name).unwrap();
    let m = s.open_hash_map::<u64, u64>("m").unwrap();
    let mut local = StdMap::new();
    script(id, |ins, k, v| {
        if ins {
            assert_eq!(m.insert(k, v).unwrap(), local.insert(k, v));
        } else {
            assert_eq!(m.remove(&k).unwrap(), local.remove(&k));
        }
        // Both workers race on the shared keys too.
        let sk = SHARED_KEYS.start + v % (SHARED_KEYS.end - SHARED_KEYS.start);
        m.insert(sk, id).unwrap();
    });
}

#[test]
fn two_processes_insert_and_remove_match_the_model() {
    let name = testkit::unique_name("coll-mmp");
    let s = ObjectSegment::create(&name, 1 << 20).unwrap();
    let m = s.hash_map::<u64, u64>("m", 1024).unwrap();
    let mut kids: Vec<_> = (0..2)
        .map(|id| testkit::spawn_child("child_map_worker", "map-worker", &format!("{name}:{id}")).unwrap())
        .collect();
    for k in &mut kids {
        assert!(k.wait_timeout(Duration::from_secs(60)).unwrap().success());
    }
    let mut expected = model(0);
    expected.extend(model(1));
    let mut got: StdMap<u64, u64> = StdMap::new();
    for (k, v) in m.iter() {
        if SHARED_KEYS.contains(&k) {
            assert!(v < 2, "shared key {k} has value {v}");
            assert!(got.insert(k, v).is_none(), "shared key {k} twice");
            continue;
        }
        assert!(got.insert(k, v).is_none(), "key {k} twice");
        assert_eq!(expected.get(&k), Some(&v), "key {k}");
    }
    let own = got.keys().filter(|k| !SHARED_KEYS.contains(k)).count();
    assert_eq!(own, expected.len());
    assert_eq!(got.len() - own, (SHARED_KEYS.end - SHARED_KEYS.start) as usize);
    assert_eq!(m.len(), got.len());
    for (k, v) in &expected {
        assert_eq!(m.get(k).unwrap(), Some(*v));
    }
    s.unlink().unwrap();
}

#[test]
fn same_key_from_many_threads_never_duplicates() {
    let name = testkit::unique_name("coll-mdup");
    let s = ObjectSegment::create(&name, 1 << 20).unwrap();
    let m = s.hash_map::<u64, u64>("m", 256).unwrap();
    for round in 0..20u64 {
        std::thread::scope(|sc| {
            for t in 0..4 {
                let m = &m;
                sc.spawn(move || {
                    for k in 0..16 {
                        m.insert(k, t).unwrap();
                        if (k + round) % 5 == 0 {
                            m.remove(&k).unwrap();
                        }
                    }
                });
            }
        });
        let mut keys: Vec<u64> = m.iter().map(|(k, _)| k).collect();
        let n = keys.len();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), n, "duplicate keys in round {round}");
        assert_eq!(m.len(), n);
    }
    s.unlink().unwrap();
}

#[test]
fn churn_reuses_tombstones() {
    let name = testkit::unique_name("coll-mchurn");
    let s = ObjectSegment::create(&name, 1 << 20).unwrap();
    let m = s.hash_map::<u64, u64>("m", 64).unwrap();
    for k in 0..100_000u64 {
        assert_eq!(m.insert(k, k).unwrap(), None);
        if k >= 40 {
            assert_eq!(m.remove(&(k - 40)).unwrap(), Some(k - 40));
        }
    }
    assert_eq!(m.len(), 40);
    // A full map reports a typed error.
    for k in 0..24u64 {
        m.insert(1 << 40 | k, 0).unwrap();
    }
    assert!(matches!(m.insert(7 << 50, 0), Err(Error::Full(64))));
    s.unlink().unwrap();
}

#[test]
fn child_map_hammer() {
    let Some(name) = testkit::child_arg("map-hammer") else { return };
    let s = ObjectSegment::open(&name).unwrap();
    let m = s.open_hash_map::<u64, [u64; 4]>("m").unwrap();
    let mut next = rng(std::process::id() as u64);
    loop {
        let k = next() % 48;
        let v = next();
        if v % 4 == 0 {
            m.remove(&k).unwrap();
        } else {
            m.insert(k, [v; 4]).unwrap();
        }
    }
}

#[test]
fn sigkill_writer_never_hangs_others_or_tears_values() {
    let name = testkit::unique_name("coll-mkill");
    let s = ObjectSegment::create(&name, 1 << 20).unwrap();
    let mut m = s.hash_map::<u64, [u64; 4]>("m", 128).unwrap();
    m.set_stall_timeout(Duration::from_secs(5));
    for round in 0..4u64 {
        let mut child = testkit::spawn_child("child_map_hammer", "map-hammer", &name).unwrap();
        std::thread::sleep(Duration::from_millis(30 + round * 25));
        child.kill9();
        // Every key is usable; values are never torn; keys never duplicated.
        for k in 0..48u64 {
            if let Some(v) = m.get(&k).unwrap() {
                assert!(v.iter().all(|&x| x == v[0]), "torn value {v:?}");
            }
            m.insert(k, [round; 4]).unwrap();
            assert_eq!(m.get(&k).unwrap(), Some([round; 4]));
        }
        let mut keys: Vec<u64> = m.iter().map(|(k, _)| k).collect();
        keys.sort();
        assert_eq!(keys, (0..48).collect::<Vec<_>>());
    }
    s.unlink().unwrap();
}
