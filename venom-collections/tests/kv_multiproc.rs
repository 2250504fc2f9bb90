//! Real processes: two writers and two readers share a cache; readers check
//! every value they see is untorn and never goes back in time; the parent
//! checks the final state against the model.

use std::time::{Duration, Instant};

use venom_collections::{KvCache, KvConfig};
use venom_core::testkit::{self, spawn_child, unique_name};

const WRITERS: u64 = 2;
const KEYS_PER_WRITER: u64 = 24;
const ROUNDS: u64 = 250;

fn key(writer: u64, k: u64) -> Vec<u8> {
    format!("w{writer}-key-{k:04}").into_bytes()
}

/// Value `seq` of key `id`: `[id, seq]` then a pattern derived from both;
/// sizes vary from 16 B to ~6 KiB so updates move between size classes.
fn value(id: u64, seq: u64) -> Vec<u8> {
    let len = 16 + ((seq * 7919 + id * 104_729) % 6000) as usize;
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&id.to_le_bytes());
    v.extend_from_slice(&seq.to_le_bytes());
    v.extend((16..len).map(|i| (i as u64 ^ id.wrapping_mul(31) ^ seq.wrapping_mul(131)) as u8));
    v
}

/// Checks a value read for key `id`; returns its seq.
fn check(id: u64, v: &[u8]) -> u64 {
    assert!(v.len() >= 16, "short value");
    let got_id = u64::from_le_bytes(v[..8].try_into().unwrap());
    let seq = u64::from_le_bytes(v[8..16].try_into().unwrap());
    assert_eq!(got_id, id, "value of another key");
    assert_eq!(v, value(id, seq).as_slice(), "torn value for key {id} seq {seq}");
    seq
}

#[test]
fn child_kv_writer() {
    let Some(arg) = testkit::child_arg("kv-writer") else { return };
    let (name, w) = arg.split_once(',').unwrap();
    let w: u64 = w.parse().unwrap();
    let c = KvCache::open(name).unwrap();
    for seq in 1..=ROUNDS {
        for k in 0..KEYS_PER_WRITER {
            let id = w * 1000 + k;
            if seq % 50 == 25 && k % 3 == 0 {
                assert!(c.delete(&key(w, k)).unwrap());
            }
            c.put(&key(w, k), &value(id, seq)).unwrap();
        }
    }
    c.put(format!("done-{w}").as_bytes(), b"1").unwrap();
}

#[test]
fn child_kv_reader() {
    let Some(name) = testkit::child_arg("kv-reader") else { return };
    let c = KvCache::open(&name).unwrap();
    let mut last = std::collections::HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut reads = 0u64;
    let mut buf = vec![0u8; 8192];
    let mut i = 0u64;
    loop {
        let done = (0..WRITERS).all(|w| c.contains(format!("done-{w}").as_bytes()).unwrap());
        for _ in 0..64 {
            i = i.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let (w, k) = ((i >> 33) % WRITERS, (i >> 40) % KEYS_PER_WRITER);
            let id = w * 1000 + k;
            let seq = if i & 1 == 0 {
                c.get(&key(w, k)).unwrap().map(|v| check(id, &v))
            } else {
                c.get_into(&key(w, k), &mut buf).unwrap().map(|n| check(id, &buf[..n]))
            };
            if let Some(seq) = seq {
                let prev = last.insert(id, seq).unwrap_or(0);
                assert!(seq >= prev, "key {id} went back from seq {prev} to {seq}");
                reads += 1;
            }
        }
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "writers did not finish");
    }
    assert!(reads > 0);
}

#[test]
fn readers_and_writers_match_the_model() {
    let name = unique_name("kvmp");
    let mut c =
        KvCache::create(&name, KvConfig { max_entries: 256, data_bytes: 2 << 20, ..KvConfig::default() }).unwrap();
    c.set_unlink_on_drop(true);
    let mut kids = Vec::new();
    for r in 0..2 {
        let _ = r;
        kids.push(spawn_child("child_kv_reader", "kv-reader", &name).unwrap());
    }
    for w in 0..WRITERS {
        kids.push(spawn_child("child_kv_writer", "kv-writer", &format!("{name},{w}")).unwrap());
    }
    for kid in &mut kids {
        assert!(kid.wait_timeout(Duration::from_secs(80)).unwrap().success());
    }
    for w in 0..WRITERS {
        for k in 0..KEYS_PER_WRITER {
            let id = w * 1000 + k;
            assert_eq!(c.get(&key(w, k)).unwrap().unwrap(), value(id, ROUNDS));
        }
    }
    let s = c.stats();
    let deletes = WRITERS * KEYS_PER_WRITER.div_ceil(3) * (ROUNDS / 50);
    assert_eq!(s.inserts, WRITERS * KEYS_PER_WRITER + deletes + WRITERS);
    assert_eq!(s.updates + s.inserts, WRITERS * KEYS_PER_WRITER * ROUNDS + WRITERS);
    assert_eq!(s.deletes, deletes);
    assert_eq!(s.len, WRITERS * (KEYS_PER_WRITER + 1));
    assert_eq!(s.recoveries, 0);
    assert!(s.hits > 0);
}
