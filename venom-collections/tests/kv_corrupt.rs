//! A cache whose shared state is overwritten with garbage must never panic
//! or access memory out of bounds: operations return values or typed errors,
//! and once a writer recovers (here: the lock word names a dead process) the
//! cache is consistent again.

use std::sync::atomic::{AtomicU64, Ordering};

use venom_collections::{Error, KvCache, KvConfig};
use venom_core::testkit::unique_name;
use venom_core::{ProcessId, Segment, SegmentKind};

/// Offset of the writer-lock owner word in the cache body (after the
/// 128-byte geometry block).
const LOCK_OWNER: usize = 128;
/// Geometry + lock line: left intact.
const KEEP: usize = 256;

fn dead_owner() -> u64 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    ProcessId { pid, start_time: 1 }.pack()
}

fn word(seg: &Segment, off: usize) -> &AtomicU64 {
    assert!(off + 8 <= seg.body_len() && off % 8 == 0);
    // SAFETY: in bounds and 8-aligned (checked above); accessed atomically.
    unsafe { &*(seg.body_ptr().add(off) as *const AtomicU64) }
}

fn ok_or_typed<T>(r: Result<T, Error>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(Error::Corrupt(_) | Error::CacheFull | Error::Timeout(_)) => None,
        Err(e) => panic!("unexpected error kind: {e}"),
    }
}

#[test]
fn garbage_state_gives_typed_errors_and_recovers() {
    let rounds = if std::env::var("VENOM_SOAK").is_ok() { 2000 } else { 12u64 };
    for round in 0..rounds {
        let cfg = KvConfig {
            max_entries: 64,
            data_bytes: 256 << 10,
            max_key_len: 16,
            max_value_len: 4096,
            ..KvConfig::default()
        };
        let mut cache = KvCache::create(&unique_name("kvcorrupt"), cfg).unwrap();
        cache.set_unlink_on_drop(true);
        for i in 0..40u32 {
            cache.put(&i.to_le_bytes(), &vec![i as u8; (i as usize * 97) % 3000]).unwrap();
        }
        let seg = Segment::open(cache.name(), SegmentKind::KV_CACHE).unwrap();
        let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ round.wrapping_mul(0xD1B5_4A32_D192_ED03);
        let words = (seg.body_len() - KEEP) / 8;
        // Round 0..3 corrupt lightly, later rounds heavily.
        let hits = if round < 4 { 50 } else { words / 3 };
        for _ in 0..hits {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let off = KEEP + (x as usize % words) * 8;
            let v = match x >> 61 {
                0 => 0,
                1 => u64::MAX,
                2 => x & 0xFFFF_FFFF,
                3 => (1 << 40) | (x & 0xFF_FFFF_FFFF), // a "live" block word
                _ => x.rotate_left(17),
            };
            word(&seg, off).store(v, Ordering::Relaxed);
        }
        word(&seg, LOCK_OWNER).store(dead_owner(), Ordering::Release);

        // Readers first: they meet garbage, time out at worst, recover.
        for i in 0..40u32 {
            let _ = ok_or_typed(cache.get(&i.to_le_bytes()));
            let _ = ok_or_typed(cache.contains(&i.to_le_bytes()));
        }
        let _ = cache.stats();
        let _ = cache.entries().count();
        let _ = cache.top_by_access_count(5);
        // Writers: recovery has rebuilt everything from what validated.
        for i in 100..110u32 {
            ok_or_typed(cache.put(&i.to_le_bytes(), &[7; 100]));
        }
        for i in 0..40u32 {
            let _ = ok_or_typed(cache.delete(&i.to_le_bytes()));
        }
        assert_eq!(word(&seg, LOCK_OWNER).load(Ordering::Acquire), 0, "dead owner's lock was taken over");
        // After recovery the cache is consistent: every listed entry reads
        // back, and deleting them all returns the accounting to zero.
        cache.put(b"fresh", b"value").unwrap();
        assert_eq!(cache.get(b"fresh").unwrap().unwrap(), b"value");
        for m in cache.entries().collect::<Vec<_>>() {
            assert_eq!(cache.get(&m.key).unwrap().map(|v| v.len()), Some(m.value_len));
            assert!(cache.delete(&m.key).unwrap());
        }
        let s = cache.stats();
        assert_eq!((s.len, s.used_bytes, s.value_bytes), (0, 0, 0), "round {round}");
    }
}

proptest::proptest! {
    /// What the `kv_open` fuzz target checks, on random input.
    #[test]
    fn geometry_validation_accepts_only_consistent_layouts(
        words in proptest::collection::vec(0u64..1 << 20, 6),
        magic in proptest::bool::weighted(0.9),
        extra in 0usize..256,
    ) {
        use venom_collections::kv::KvLayout;
        let mut bytes = Vec::new();
        let mut w = words.clone();
        if magic {
            w[0] = u64::from_le_bytes(*b"VENOMKV1");
        }
        w[5] %= 3;
        for x in &w {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        // The exact body length when the geometry is valid, else anything.
        let body_len = KvLayout::new(w[1], w[2], w[3], w[4], w[5]).map_or(extra, |l| l.body_len);
        if let Ok(l) = KvLayout::from_body_bytes(&bytes, body_len) {
            proptest::prop_assert_eq!(l.body_len, body_len);
            proptest::prop_assert!(l.index_off < l.entries_off && l.entries_off <= l.tree_off && l.tree_off < l.data_off);
            proptest::prop_assert_eq!(l.data_off + l.data_granules * 64, l.body_len);
            proptest::prop_assert!(l.index_slots.is_power_of_two() && l.index_slots >= 2 * l.max_entries);
        }
        proptest::prop_assert!(KvLayout::from_body_bytes(&bytes[..bytes.len() - 1], body_len).is_err());
    }
}
