//! Segment lifecycle, permissions, reclaim and corruption handling, with
//! real processes where liveness matters.

use std::io::{Seek, SeekFrom, Write};
use std::time::Duration;

use venom_core::header::{HEADER_LEN, MAGIC};
use venom_core::testkit::{self, spawn_child, unique_name};
use venom_core::{Error, Segment, SegmentKind};

fn shm_path(name: &str) -> String {
    format!("/dev/shm/venom.{name}")
}

fn fill_body(seg: &Segment, byte: u8) {
    // SAFETY: body_ptr is valid for body_len bytes; no other process writes.
    unsafe { venom_core::atomic_copy::fill(seg.body_ptr(), byte, seg.body_len()) };
}

fn body_bytes(seg: &Segment) -> Vec<u8> {
    let mut v = vec![0; seg.body_len()];
    // SAFETY: as above.
    unsafe { venom_core::atomic_copy::load(seg.body_ptr(), &mut v) };
    v
}

#[test]
fn create_open_unlink_and_modes() {
    let name = unique_name("seg-basic");
    let seg = Segment::builder(&name, SegmentKind::RAW).body_len(8192).create().unwrap();
    assert_eq!(seg.mode(), Some(0o600), "default mode must be 0600");
    let other = Segment::open(&name, SegmentKind::RAW).unwrap();
    assert_eq!(other.body_len(), 8192);
    assert_eq!(other.generation(), 0);
    assert!(matches!(Segment::open(&name, SegmentKind::CHANNEL), Err(Error::WrongKind { .. })));
    seg.unlink().unwrap();
    assert!(matches!(Segment::open(&name, SegmentKind::RAW), Err(Error::NotFound(_))));

    let name = unique_name("seg-mode");
    let seg = Segment::builder(&name, SegmentKind::RAW).body_len(64).mode(0o640).create().unwrap();
    assert_eq!(seg.mode(), Some(0o640));
    seg.unlink().unwrap();
}

#[test]
fn bad_names_are_typed_errors() {
    for bad in ["", "a/b", "../x", ".x", "sp ace", &"n".repeat(300)] {
        assert!(matches!(Segment::builder(bad, SegmentKind::RAW).create(), Err(Error::InvalidName { .. })), "{bad:?}");
        assert!(matches!(Segment::open(bad, SegmentKind::RAW), Err(Error::InvalidName { .. })));
    }
}

#[test]
fn create_over_live_segment_is_refused_and_untouched() {
    let name = unique_name("seg-live");
    let seg = Segment::builder(&name, SegmentKind::RAW).body_len(4096).create().unwrap();
    fill_body(&seg, 0x5A);
    let again = Segment::builder(&name, SegmentKind::RAW).body_len(16).create();
    assert!(matches!(again, Err(Error::AlreadyExists { .. })), "{again:?}");
    assert!(body_bytes(&seg).iter().all(|&b| b == 0x5A), "contents were touched");
    seg.unlink().unwrap();
}

#[test]
fn child_create_and_exit() {
    let Some(name) = testkit::child_arg("creator") else { return };
    let seg = Segment::builder(&name, SegmentKind::RAW).body_len(4096).create().unwrap();
    fill_body(&seg, 0x11);
    if std::env::var("HANG").is_ok() {
        std::thread::sleep(Duration::from_secs(60));
    }
    // Exit without unlinking: a leaked segment, as after a crash.
    std::mem::forget(seg);
}

#[test]
fn leaked_segment_of_dead_creator_is_reclaimed() {
    let name = unique_name("seg-leak");
    let mut child = spawn_child("child_create_and_exit", "creator", &name).unwrap();
    assert!(child.wait_timeout(Duration::from_secs(20)).unwrap().success());
    assert!(Segment::exists(&name));
    let seg = Segment::builder(&name, SegmentKind::RAW).body_len(1024).create().unwrap();
    assert_eq!(seg.generation(), 1, "reclaimed segment gets the next generation");
    assert_eq!(seg.body_len(), 1024);
    assert!(body_bytes(&seg).iter().all(|&b| b == 0));
    seg.unlink().unwrap();
}

#[test]
fn segment_of_sigkilled_creator_is_reclaimed() {
    let name = unique_name("seg-kill");
    // Safe to share the env var: only this child reads it.
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["child_create_and_exit", "--exact", "--nocapture", "-q"])
        .env("VENOM_TEST_ROLE", "creator")
        .env("VENOM_TEST_ARG", &name)
        .env("HANG", "1")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(testkit::wait_for(Duration::from_secs(20), || Segment::open(&name, SegmentKind::RAW).is_ok()));
    // While the creator lives, create is refused.
    assert!(matches!(Segment::builder(&name, SegmentKind::RAW).create(), Err(Error::AlreadyExists { .. })));
    child.kill().unwrap();
    child.wait().unwrap();
    let seg = Segment::builder(&name, SegmentKind::RAW).body_len(64).create().unwrap();
    assert_eq!(seg.generation(), 1);
    seg.unlink().unwrap();
}

#[test]
fn concurrent_creators_exactly_one_wins() {
    let name = unique_name("seg-race");
    let results: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> =
            (0..8).map(|_| s.spawn(|| Segment::builder(&name, SegmentKind::RAW).body_len(256).create())).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let wins = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1, "{results:?}");
    assert!(results.iter().all(|r| r.is_ok() || matches!(r, Err(Error::AlreadyExists { .. }))));
    Segment::unlink_name(&name).unwrap();
}

/// Writes `bytes` at `offset` of the raw object behind `name`.
fn poke(name: &str, offset: u64, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new().write(true).open(shm_path(name)).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(bytes).unwrap();
}

fn corrupted(name_prefix: &str, damage: impl FnOnce(&str)) -> Result<Segment, Error> {
    let name = unique_name(name_prefix);
    let seg = Segment::builder(&name, SegmentKind::RAW).body_len(4096).create().unwrap();
    damage(&name);
    let r = Segment::builder(&name, SegmentKind::RAW).init_timeout(Duration::from_millis(50)).open();
    seg.unlink().unwrap();
    r
}

#[test]
fn corrupt_headers_are_typed_errors() {
    type Damage = Box<dyn FnOnce(&str)>;
    let cases: Vec<(&str, Damage)> = vec![
        ("magic", Box::new(|n| poke(n, 0, &(MAGIC ^ 1).to_le_bytes()))),
        ("version", Box::new(|n| poke(n, 8, &99u32.to_le_bytes()))),
        ("absurd-len", Box::new(|n| poke(n, 16, &u64::MAX.to_le_bytes()))),
        ("short-len", Box::new(|n| poke(n, 16, &7u64.to_le_bytes()))),
        ("body-offset", Box::new(|n| poke(n, 24, &(1u64 << 50).to_le_bytes()))),
        ("state", Box::new(|n| poke(n, 36, &77u32.to_le_bytes()))),
        (
            "truncated",
            Box::new(|n| std::fs::OpenOptions::new().write(true).open(shm_path(n)).unwrap().set_len(200).unwrap()),
        ),
        ("tiny", Box::new(|n| std::fs::OpenOptions::new().write(true).open(shm_path(n)).unwrap().set_len(10).unwrap())),
        ("checksum", Box::new(|n| poke(n, 48, &5u64.to_le_bytes()))),
    ];
    for (what, damage) in cases {
        let r = corrupted(&format!("seg-bad-{what}"), damage);
        assert!(
            matches!(r, Err(Error::Corrupt { .. } | Error::VersionMismatch { .. } | Error::InitTimeout(_))),
            "{what}: {r:?}"
        );
    }
}

#[test]
fn foreign_and_half_initialised_objects() {
    // A foreign object under our prefix: typed error on open, and create
    // refuses to guess (the user unlinks it explicitly).
    let name = unique_name("seg-foreign");
    std::fs::write(shm_path(&name), vec![0xEEu8; 4096]).unwrap();
    assert!(matches!(Segment::open(&name, SegmentKind::RAW), Err(Error::Corrupt { .. })));
    let r = Segment::builder(&name, SegmentKind::RAW).body_len(64).create();
    match &r {
        Err(e @ Error::StrayFile { path, .. }) => {
            assert_eq!(path, &shm_path(&name));
            assert!(e.to_string().contains(&format!("venom rm {name}")), "{e}");
        }
        other => panic!("expected StrayFile, got {other:?}"),
    }
    assert_eq!(std::fs::read(shm_path(&name)).unwrap(), vec![0xEEu8; 4096], "the stray file was touched");
    Segment::unlink_name(&name).unwrap();

    // A foreign file shorter than a header, and one with a zero magic but a
    // READY state no creator writes before its magic: stray too, kept.
    for bytes in [vec![1u8; 10], [vec![0u8; 36], 2u32.to_le_bytes().to_vec(), vec![0u8; 88]].concat()] {
        let name = unique_name("seg-foreign");
        std::fs::write(shm_path(&name), &bytes).unwrap();
        let r = Segment::builder(&name, SegmentKind::RAW).body_len(64).create();
        assert!(matches!(r, Err(Error::StrayFile { .. })), "{r:?}");
        assert_eq!(std::fs::read(shm_path(&name)).unwrap(), bytes);
        Segment::unlink_name(&name).unwrap();
    }

    // Zero-filled (creator crashed right after shm_open + ftruncate): open
    // waits for the init timeout; create reclaims it after the same wait.
    let name = unique_name("seg-half");
    std::fs::write(shm_path(&name), vec![0u8; HEADER_LEN + 64]).unwrap();
    let t = std::time::Instant::now();
    let r = Segment::builder(&name, SegmentKind::RAW).init_timeout(Duration::from_millis(100)).open();
    assert!(matches!(r, Err(Error::InitTimeout(_))), "{r:?}");
    assert!(t.elapsed() >= Duration::from_millis(100));
    let seg = Segment::builder(&name, SegmentKind::RAW)
        .body_len(64)
        .init_timeout(Duration::from_millis(100))
        .create()
        .unwrap();
    seg.unlink().unwrap();

    // Empty object (creator died before ftruncate).
    let name = unique_name("seg-empty");
    std::fs::write(shm_path(&name), b"").unwrap();
    let r = Segment::builder(&name, SegmentKind::RAW).init_timeout(Duration::from_millis(50)).open();
    assert!(matches!(r, Err(Error::Corrupt { .. })), "{r:?}");
    let seg = Segment::builder(&name, SegmentKind::RAW).init_timeout(Duration::from_millis(50)).create().unwrap();
    seg.unlink().unwrap();
}
