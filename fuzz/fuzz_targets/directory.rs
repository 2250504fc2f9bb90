//! An object segment with arbitrary body bytes: opening it, listing its
//! directory and using every listed object must return values or typed
//! errors — no panic, no out-of-bounds access, no hang (waits are bounded).
#![no_main]
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use venom_collections::{ObjectKind, ObjectSegment};
use venom_core::{Segment, SegmentKind};

fuzz_target!(|data: &[u8]| {
    let name = format!("fuzz-dir-{}", std::process::id());
    let _ = Segment::unlink_name(&name);
    let body_len = data.len().max(256).min(1 << 20);
    let Ok(seg) = Segment::builder(&name, SegmentKind::COLLECTIONS).body_len(body_len).create_with(|s| {
        let n = data.len().min(body_len);
        // SAFETY: the body is body_len >= n bytes and not yet shared.
        unsafe { venom_core::atomic_copy::store(s.body_ptr(), &data[..n]) };
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
