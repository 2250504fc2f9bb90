//! `venom_core::inspect` against real objects: it reads without writing,
//! classifies every state, and `remove` decides under the reclaim lock.

use std::time::Duration;

use venom_core::header::HEADER_LEN;
use venom_core::inspect::{self, Status};
use venom_core::testkit::{self, spawn_child, unique_name};
use venom_core::{Error, RegionConfig, Segment, SegmentKind, SeqWriter};

fn shm_path(name: &str) -> String {
    format!("/dev/shm/venom.{name}")
}

#[test]
fn inspection_writes_nothing() {
    let name = unique_name("insp-ro");
    let mut w = SeqWriter::create(&name, RegionConfig::new(4096)).unwrap();
    w.write(b"payload").unwrap();
    let before = std::fs::read(shm_path(&name)).unwrap();
    let meta = std::fs::metadata(shm_path(&name)).unwrap();
    for _ in 0..3 {
        let info = inspect::inspect(&name).unwrap();
        assert_eq!(info.status, Status::Ready);
        assert_eq!(info.kind(), Some(SegmentKind::SEQ_REGION));
        assert!(info.is_live() && !info.is_stale());
        assert_eq!(info.owner_pid(), Some(std::process::id()));
        assert!(inspect::list().unwrap().iter().any(|i| i.name == name));
        assert_eq!(inspect::read_bytes(&name, 0, 8).unwrap(), b"VENOMSEG");
    }
    assert_eq!(std::fs::read(shm_path(&name)).unwrap(), before, "inspection changed the segment");
    let after = std::fs::metadata(shm_path(&name)).unwrap();
    assert_eq!(meta.modified().unwrap(), after.modified().unwrap());
    w.unlink().unwrap();
}

#[test]
fn remove_refuses_a_live_segment_unless_forced() {
    let name = unique_name("insp-live");
    let seg = Segment::builder(&name, SegmentKind::RAW).body_len(64).create().unwrap();
    let r = inspect::remove(&name, false);
    assert!(matches!(r, Err(Error::InUse { pid, .. }) if pid == std::process::id()), "{r:?}");
    assert!(Segment::exists(&name));
    let removed = inspect::remove(&name, true).unwrap();
    assert!(removed.forced);
    assert!(!Segment::exists(&name));
    drop(seg);
}

#[test]
fn child_hold() {
    let Some(name) = testkit::child_arg("holder") else { return };
    let _seg = Segment::builder(&name, SegmentKind::RAW).body_len(64).create().unwrap();
    std::fs::write(format!("{}.ready", std::env::temp_dir().join(&name).display()), b"").unwrap();
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn dead_uninitialised_stray_and_corrupt_states() {
    // Dead owner: SIGKILLed child.
    let dead = unique_name("insp-dead");
    let marker = format!("{}.ready", std::env::temp_dir().join(&dead).display());
    let mut child = spawn_child("child_hold", "holder", &dead).unwrap();
    assert!(testkit::wait_for(Duration::from_secs(20), || std::path::Path::new(&marker).exists()));
    assert!(inspect::inspect(&dead).unwrap().is_live());
    child.kill9();
    let info = inspect::inspect(&dead).unwrap();
    assert_eq!((info.status.clone(), info.is_live(), info.is_stale()), (Status::Ready, false, true));
    let _ = std::fs::remove_file(&marker);

    // Zero-filled: uninitialised, not stale while young.
    let zero = unique_name("insp-zero");
    std::fs::write(shm_path(&zero), vec![0u8; HEADER_LEN + 64]).unwrap();
    let info = inspect::inspect(&zero).unwrap();
    assert_eq!(info.status, Status::Uninitialised);
    assert!(!info.is_stale());

    // Stray and corrupt are reported with a reason and never swept.
    let stray = unique_name("insp-stray");
    std::fs::write(shm_path(&stray), b"hello").unwrap();
    assert!(matches!(inspect::inspect(&stray).unwrap().status, Status::Stray(_)));
    let corrupt = unique_name("insp-corrupt");
    std::mem::forget(Segment::builder(&corrupt, SegmentKind::RAW).body_len(64).create().unwrap());
    std::fs::OpenOptions::new().write(true).open(shm_path(&corrupt)).unwrap().set_len(HEADER_LEN as u64 + 8).unwrap();
    let info = inspect::inspect(&corrupt).unwrap();
    assert!(matches!(&info.status, Status::Corrupt(r) if r.contains("mapping has")), "{:?}", info.status);

    let prefix = "insp-";
    let swept: Vec<String> = inspect::sweep_stale(prefix)
        .unwrap()
        .into_iter()
        .map(|r| r.info.name)
        .filter(|n| [&dead, &zero, &stray, &corrupt].contains(&n))
        .collect();
    assert_eq!(swept, [dead]);
    for n in [&zero, &stray, &corrupt] {
        assert!(Segment::exists(n), "{n} was swept");
        inspect::remove(n, false).unwrap();
        assert!(!Segment::exists(n));
    }
}

#[test]
fn symlinks_and_fifos_are_reported_not_followed() {
    let link = unique_name("insp-link");
    std::os::unix::fs::symlink("/proc/self/status", shm_path(&link)).unwrap();
    let info = inspect::inspect(&link).unwrap();
    assert!(matches!(info.status, Status::Unreadable(_)), "{:?}", info.status);
    assert!(!info.is_live() && !info.is_stale());
    inspect::remove(&link, false).unwrap();
    assert!(std::fs::symlink_metadata(shm_path(&link)).is_err(), "the link is gone");
    assert!(std::path::Path::new("/proc/self/status").exists(), "its target is untouched");

    let fifo = unique_name("insp-fifo");
    let path = std::ffi::CString::new(shm_path(&fifo)).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    // Would block forever if inspection opened it blocking.
    let info = inspect::inspect(&fifo).unwrap();
    assert!(matches!(&info.status, Status::Stray(r) if r.contains("regular")), "{:?}", info.status);
    inspect::remove(&fifo, false).unwrap();
}
