//! ObjectSegment: create/open, directory, attach checks, space limits.

use std::time::Duration;

use venom_collections::{Error, ObjectKind, ObjectSegment};
use venom_core::testkit;

fn seg(size: usize) -> (ObjectSegment, String) {
    let name = testkit::unique_name("coll-seg");
    (ObjectSegment::create(&name, size).unwrap(), name)
}

#[test]
fn create_open_and_list() {
    let (s, name) = seg(1 << 20);
    let q = s.queue::<u64>("tasks", 100).unwrap();
    assert_eq!(q.capacity(), 128);
    s.hash_map::<u32, [u8; 16]>("cache", 64).unwrap();
    s.bitset("flags", 1000).unwrap();
    s.array::<f32>("weights", 10).unwrap();
    s.stack::<u16>("undo", 5).unwrap();
    let other = ObjectSegment::open(&name).unwrap();
    let mut list = other.objects();
    list.sort_by(|a, b| a.name.cmp(&b.name));
    let summary: Vec<_> = list.iter().map(|o| (o.name.as_str(), o.kind, o.capacity)).collect();
    assert_eq!(
        summary,
        vec![
            ("cache", ObjectKind::HashMap, 64),
            ("flags", ObjectKind::Bitset, 1000),
            ("tasks", ObjectKind::Queue, 128),
            ("undo", ObjectKind::Stack, 5),
            ("weights", ObjectKind::Array, 10),
        ]
    );
    assert!(list.iter().all(|o| o.bytes > 0 && o.bytes % 8 == 0));
    assert!(other.used_bytes() >= list.iter().map(|o| o.bytes).sum::<u64>());
    // Attach from the second handle sees the first handle's data.
    q.try_push(9).unwrap();
    assert_eq!(other.queue::<u64>("tasks", 128).unwrap().try_pop(), Some(9));
    assert_eq!(other.open_queue::<u64>("tasks").unwrap().capacity(), 128);
    s.unlink().unwrap();
}

#[test]
fn attach_mismatches_are_typed_errors() {
    let (s, _name) = seg(1 << 20);
    s.queue::<u64>("q", 16).unwrap();
    s.hash_map::<u64, u64>("m", 16).unwrap();
    // Wrong type, same size: caught by the fingerprint.
    assert!(matches!(s.queue::<f64>("q", 16), Err(Error::LayoutMismatch { field: "type fingerprint", .. })));
    // Wrong size.
    assert!(matches!(s.queue::<u32>("q", 16), Err(Error::LayoutMismatch { field: "element size", .. })));
    // Wrong capacity.
    assert!(matches!(
        s.queue::<u64>("q", 32),
        Err(Error::LayoutMismatch { field: "capacity", expected: 32, found: 16, .. })
    ));
    // Wrong kind.
    assert!(matches!(s.stack::<u64>("q", 16), Err(Error::KindMismatch { expected: "stack", found: "queue", .. })));
    assert!(matches!(s.bitset("m", 16), Err(Error::KindMismatch { .. })));
    // Map value type differs.
    assert!(matches!(s.hash_map::<u64, u32>("m", 16), Err(Error::LayoutMismatch { .. })));
    assert!(matches!(s.hash_map::<u64, i64>("m", 16), Err(Error::LayoutMismatch { .. })));
    // Not there.
    assert!(matches!(s.open_array::<u8>("nope"), Err(Error::ObjectNotFound(_))));
    s.unlink().unwrap();
}

#[test]
fn bad_names_and_sizes() {
    let (s, _name) = seg(1 << 16);
    assert!(matches!(s.queue::<u8>("", 4), Err(Error::InvalidObjectName { .. })));
    assert!(matches!(s.queue::<u8>(&"x".repeat(49), 4), Err(Error::InvalidObjectName { .. })));
    assert!(matches!(s.queue::<u8>("a\0b", 4), Err(Error::InvalidObjectName { .. })));
    assert!(s.queue::<u8>(&"x".repeat(48), 4).is_ok());
    // Out of space is typed, and the segment remains usable afterwards.
    assert!(matches!(s.array::<u64>("huge", 1 << 20), Err(Error::OutOfSpace { .. })));
    assert!(matches!(s.queue::<u64>("huger", usize::MAX), Err(Error::InvalidConfig(_))));
    assert!(s.array::<u64>("small", 16).is_ok());
    assert!(matches!(ObjectSegment::create(&testkit::unique_name("coll-tiny"), 100), Err(Error::InvalidConfig(_))));
    s.unlink().unwrap();
}

#[test]
fn directory_full_is_typed() {
    let name = testkit::unique_name("coll-dir");
    let s = ObjectSegment::create_with(&name, 1 << 16, 4, 0o600).unwrap();
    for i in 0..4 {
        s.bitset(&format!("b{i}"), 64).unwrap();
    }
    assert!(matches!(s.bitset("b4", 64), Err(Error::DirectoryFull(4))));
    assert!(s.bitset("b2", 64).is_ok());
    s.unlink().unwrap();
}

#[test]
fn wrong_segment_kind_and_missing_segment() {
    let name = testkit::unique_name("coll-kind");
    let raw = venom_core::Segment::builder(&name, venom_core::SegmentKind::RAW).body_len(4096).create().unwrap();
    assert!(matches!(ObjectSegment::open(&name), Err(Error::Core(venom_core::Error::WrongKind { .. }))));
    raw.unlink().unwrap();
    // A COLLECTIONS segment whose body is garbage (not created by us).
    let fake =
        venom_core::Segment::builder(&name, venom_core::SegmentKind::COLLECTIONS).body_len(4096).create().unwrap();
    assert!(matches!(ObjectSegment::open(&name), Err(Error::Corrupt(_))));
    fake.unlink().unwrap();
    assert!(matches!(ObjectSegment::open(&name), Err(Error::Core(venom_core::Error::NotFound(_)))));
}

#[test]
fn concurrent_creation_from_threads_yields_one_object() {
    let (s, _name) = seg(1 << 20);
    std::thread::scope(|sc| {
        for t in 0..4u64 {
            let s = &s;
            sc.spawn(move || {
                for i in 0..20 {
                    let q = s.queue::<u64>(&format!("q{i}"), 8).unwrap();
                    q.push(t, Duration::from_secs(5)).unwrap();
                }
            });
        }
    });
    let objects = s.objects();
    assert_eq!(objects.len(), 20);
    for i in 0..20 {
        assert_eq!(s.queue::<u64>(&format!("q{i}"), 8).unwrap().len(), 4);
    }
    s.unlink().unwrap();
}

#[test]
fn child_creator() {
    let Some(arg) = testkit::child_arg("creator") else { return };
    let s = ObjectSegment::open(&arg).unwrap();
    for i in 0..16 {
        let m = s.hash_map::<u64, u64>(&format!("m{i}"), 16).unwrap();
        m.insert(std::process::id() as u64, 1).unwrap();
    }
}

#[test]
fn concurrent_creation_from_processes_yields_one_object() {
    let (s, name) = seg(1 << 20);
    let mut kids: Vec<_> = (0..2).map(|_| testkit::spawn_child("child_creator", "creator", &name).unwrap()).collect();
    for i in 0..16 {
        s.hash_map::<u64, u64>(&format!("m{i}"), 16).unwrap().insert(0, 1).unwrap();
    }
    for k in &mut kids {
        assert!(k.wait_timeout(Duration::from_secs(30)).unwrap().success());
    }
    assert_eq!(s.objects().len(), 16);
    for i in 0..16 {
        assert_eq!(s.hash_map::<u64, u64>(&format!("m{i}"), 16).unwrap().len(), 3);
    }
    s.unlink().unwrap();
}

#[test]
fn segment_mode_is_0600() {
    let (s, name) = seg(1 << 16);
    let raw = venom_core::Segment::open(&name, venom_core::SegmentKind::COLLECTIONS).unwrap();
    assert_eq!(raw.mode(), Some(0o600));
    s.unlink().unwrap();
}

#[test]
fn child_object_creator_loop() {
    let Some(name) = testkit::child_arg("creator-loop") else { return };
    let s = ObjectSegment::open(&name).unwrap();
    for i in 0.. {
        s.bitset(&format!("b{}", i % 40), 64).unwrap();
        s.queue::<u64>(&format!("q{}", i % 40), 4).unwrap().try_push(i).ok();
    }
}

#[test]
fn sigkill_during_object_creation_never_blocks_others() {
    let name = testkit::unique_name("coll-dkill");
    let s = ObjectSegment::create_with(&name, 4 << 20, 256, 0o600).unwrap();
    let mut child = testkit::spawn_child("child_object_creator_loop", "creator-loop", &name).unwrap();
    assert!(testkit::wait_for(Duration::from_secs(10), || s.objects().len() >= 10));
    child.kill9();
    // Every name resolves (attach or create) promptly, and each exists once.
    for i in 0..40 {
        s.bitset(&format!("b{i}"), 64).unwrap();
        s.queue::<u64>(&format!("q{i}"), 4).unwrap();
    }
    let mut names: Vec<String> = s.objects().into_iter().map(|o| o.name).collect();
    names.sort();
    let n = names.len();
    names.dedup();
    assert_eq!((n, names.len()), (80, 80));
    s.unlink().unwrap();
}

#[test]
fn objects_report_item_counts() {
    let name = testkit::unique_name("coll-items");
    let s = ObjectSegment::create(&name, 1 << 20).unwrap();
    let q = s.queue::<u64>("q", 8).unwrap();
    for i in 0..3 {
        q.push(i, Duration::from_millis(100)).unwrap();
    }
    let st = s.stack::<u32>("s", 8).unwrap();
    st.push(1).unwrap();
    st.push(2).unwrap();
    s.hash_map::<u64, u64>("m", 16).unwrap().insert(5, 6).unwrap();
    let b = s.bitset("b", 1000).unwrap();
    b.set(3).unwrap();
    b.set(999).unwrap();
    s.array::<f64>("a", 10).unwrap();
    let items = |n: &str| s.objects().into_iter().find(|o| o.name == n).and_then(|o| o.items);
    assert_eq!(["q", "s", "m", "b", "a"].map(items), [Some(3), Some(2), Some(1), Some(2), Some(10)]);
    // Listing is read-only: the queue still holds its three items.
    assert_eq!(q.len(), 3);
    s.unlink().unwrap();
}
