//! Corrupt object segments: opening and using them returns values or typed
//! errors, never a panic, an out-of-bounds access or a hang.

use std::time::Duration;

use proptest::prelude::*;
use venom_collections::{ObjectKind, ObjectSegment};
use venom_core::{Segment, SegmentKind, testkit};

const ENTRIES: u64 = 4;
const BODY: usize = 8192;

/// A body with a valid header, `entries` READY directory entries built from
/// `fields`, and `data` as the data area.
fn body(fields: &[[u64; 7]], data: &[u64]) -> Vec<u64> {
    let mut w = vec![0u64; BODY / 8];
    let data_off = 256 + ENTRIES * 128;
    w[0] = u64::from_le_bytes(*b"VNMCOLL1");
    w[1] = 1;
    w[2] = ENTRIES;
    w[3] = data_off;
    w[4] = BODY as u64 - data_off;
    for (i, f) in fields.iter().enumerate() {
        let e = 32 + i * 16;
        w[e] = 1; // owner
        w[e + 1] = 2; // READY
        w[e + 2] = u64::from_le_bytes(*b"obj\0\0\0\0\0") + ((i as u64) << 24);
        w[e + 8..e + 15].copy_from_slice(f);
    }
    let start = data_off as usize / 8;
    for (d, s) in w[start..].iter_mut().zip(data) {
        *d = *s;
    }
    w
}

fn exercise(words: &[u64]) {
    let name = testkit::unique_name("coll-corrupt");
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
    let seg = Segment::builder(&name, SegmentKind::COLLECTIONS)
        .body_len(BODY)
        .create_with(|s| {
            // SAFETY: the body is BODY bytes and nobody else maps it yet.
            unsafe { venom_core::atomic_copy::store(s.body_ptr(), &bytes) };
            Ok(())
        })
        .unwrap();
    if let Ok(objs) = ObjectSegment::open(&name) {
        for o in objs.objects() {
            let n = o.name.as_str();
            match o.kind {
                ObjectKind::Queue => {
                    if let Ok(q) = objs.open_queue::<u64>(n) {
                        let _ = q.try_push(1);
                        let _ = q.try_pop();
                        let _ = (q.len(), q.recover());
                    }
                }
                ObjectKind::Stack => {
                    if let Ok(s) = objs.open_stack::<u64>(n) {
                        let _ = s.push(1);
                        let _ = (s.pop(), s.pop(), s.len());
                    }
                }
                ObjectKind::HashMap => {
                    if let Ok(mut m) = objs.open_hash_map::<u64, u64>(n) {
                        m.set_stall_timeout(Duration::from_millis(5));
                        let _ = m.insert(3, 4);
                        let _ = (m.get(&3), m.remove(&3), m.iter().count());
                    }
                }
                ObjectKind::Bitset => {
                    if let Ok(b) = objs.open_bitset(n) {
                        let _ = (b.set(5), b.test(b.len().saturating_sub(1)), b.count_ones());
                        let _ = b.iter_ones().take(100).count();
                    }
                }
                ObjectKind::Array => {
                    if let Ok(a) = objs.open_array::<u64>(n) {
                        let _ = (a.store(0, 1), a.load(a.len().saturating_sub(1)), a.fetch_add(0, 1));
                    }
                }
                _ => {}
            }
        }
    }
    seg.unlink().unwrap();
}

/// The bytes a well-formed object of `kind` and `cap` occupies (u64 elements).
fn bytes(kind: u64, cap: u64) -> u64 {
    match kind {
        1 => (48 + cap * 3) * 8,
        2 => (48 + cap * 2) * 8,
        3 => (32 + cap.div_ceil(8) + cap * 2) * 8,
        4 => (cap.div_ceil(64) * 8).max(8),
        _ => (cap * 8).max(8),
    }
}

/// Directory fields [kind, elem, aux, fingerprint, capacity, offset, len]:
/// mostly consistent (so attaching succeeds and the structure code runs on
/// garbage contents), sometimes arbitrary.
fn field() -> impl Strategy<Value = [u64; 7]> {
    (1u64..6, 1u64..5, 0u64..8, any::<[u64; 7]>(), any::<u8>()).prop_map(|(kind, cap_log, slot, raw, mode)| {
        let cap = 1u64 << cap_log;
        let fp = match kind {
            3 => venom_collections::type_fingerprint::<(u64, u64)>(),
            4 => venom_collections::type_fingerprint::<venom_collections::Bitset>(),
            _ => venom_collections::type_fingerprint::<u64>(),
        };
        let mut f = [kind, 8 | 8 << 32, if kind == 3 { 8 } else { 0 }, fp, cap, slot * 512, bytes(kind, cap)];
        // Corrupt one field in most cases, several in some.
        for (i, x) in f.iter_mut().enumerate() {
            if mode % 8 == i as u8 || (mode > 200 && raw[i] % 2 == 0) {
                *x = raw[i];
            }
        }
        f
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn corrupt_directory_and_objects_are_survivable(
        fields in prop::collection::vec(field(), 0..=4),
        data in prop::collection::vec(prop_oneof![0u64..8, any::<u64>()], 0..256),
    ) {
        exercise(&body(&fields, &data));
    }
}

#[test]
fn garbage_bodies_are_rejected() {
    let mut w = body(&[], &[]);
    w[0] = 0;
    exercise(&w);
    let mut w = body(&[], &[]);
    w[2] = 1 << 40;
    exercise(&w);
}
