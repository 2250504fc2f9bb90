//! An object segment with a valid header and arbitrary directory and data
//! (or, if the first byte is odd, arbitrary bytes throughout): opening it,
//! listing its directory and using every listed object must return values or
//! typed errors — no panic, no out-of-bounds access, no hang (waits are
//! bounded).
#![no_main]
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use venom_collections::{ObjectKind, ObjectSegment};
use venom_core::{Segment, SegmentKind};

fuzz_target!(|data: &[u8]| {
    let name = format!("fuzz-dir-{}", std::process::id());
    let _ = Segment::unlink_name(&name);
    const ENTRIES: u64 = 4;
    let body_len = 8192usize;
    let data_off = 256 + ENTRIES * 128;
    let mut body = vec![0u8; body_len];
    if data.first().is_some_and(|b| b & 1 == 1) {
        let n = data.len().min(body_len);
        body[..n].copy_from_slice(&data[..n]);
    } else {
        let header = [u64::from_le_bytes(*b"VNMCOLL1"), 1, ENTRIES, data_off, body_len as u64 - data_off];
        for (i, w) in header.iter().enumerate() {
            body[i * 8..i * 8 + 8].copy_from_slice(&w.to_ne_bytes());
        }
        let n = data.len().min(body_len - 256);
        body[256..256 + n].copy_from_slice(&data[..n]);
    }
    let Ok(seg) = Segment::builder(&name, SegmentKind::COLLECTIONS).body_len(body_len).create_with(|s| {
        // SAFETY: the body is body_len bytes and not yet shared.
        unsafe { venom_core::atomic_copy::store(s.body_ptr(), &body) };
        Ok(())
    }) else {
        return;
    };
    if let Ok(objs) = ObjectSegment::open(&name) {
        for o in objs.objects() {
            let n = o.name.as_str();
            match o.kind {
                ObjectKind::Queue => {
                    if let Ok(q) = objs.open_queue::<u64>(n) {
                        let _ = (q.try_push(1), q.try_pop(), q.len(), q.recover());
                    }
                }
                ObjectKind::Stack => {
                    if let Ok(s) = objs.open_stack::<u64>(n) {
                        let _ = (s.push(1), s.pop(), s.len());
                    }
                }
                ObjectKind::HashMap => {
                    if let Ok(mut m) = objs.open_hash_map::<u64, u64>(n) {
                        m.set_stall_timeout(Duration::from_millis(1));
                        let _ = (m.insert(3, 4), m.get(&3), m.remove(&3), m.iter().count());
                    }
                }
                ObjectKind::Bitset => {
                    if let Ok(b) = objs.open_bitset(n) {
                        let _ = (b.set(5), b.count_ones(), b.iter_ones().take(64).count());
                    }
                }
                ObjectKind::Array => {
                    if let Ok(a) = objs.open_array::<u64>(n) {
                        let _ = (a.store(0, 1), a.load(0), a.fetch_add(0, 1));
                    }
                }
                _ => {}
            }
        }
    }
    let _ = seg.unlink();
});
