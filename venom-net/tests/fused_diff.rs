//! The encoder's fused step (diff inside the region's read window, written
//! straight into frames) against the copy-then-diff path, on real
//! `SeqRegion`s: same frames, same runs, same shadow; torn windows lose
//! nothing; a concurrent writer thread never gets a torn page through.

use proptest::prelude::*;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;
use venom_core::testkit::unique_name;
use venom_core::{DirtyVisitor, RegionConfig, SeqReader, SeqWriter};
use venom_net::proto::encoder::FUSED_WINDOWS;
use venom_net::{EncoderConfig, RegionEncoder, RegionSource, Result, Snapshot};

fn xorshift(mut x: u64) -> impl FnMut() -> u64 {
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

/// The shadow's bytes.
fn shadow(enc: &RegionEncoder) -> Vec<u8> {
    let mut v = vec![0u8; enc.size()];
    enc.view().read(0, &mut v).unwrap();
    v
}

fn region_bytes(r: &SeqReader) -> Vec<u8> {
    let mut v = vec![0u8; r.size()];
    r.read_at(0, &mut v).unwrap();
    v
}

/// Applies the encoder's newest delta to `mirror` (which must be at its base).
fn apply_newest(enc: &RegionEncoder, mirror: &mut [u8], at: &mut u64) {
    let d = enc.backlog().newest().unwrap();
    assert_eq!(d.base_seq, *at, "deltas form a chain");
    for r in d.runs() {
        mirror[r.src as usize..][..r.len as usize].copy_from_slice(d.bytes(r));
    }
    *at = d.seq;
}

/// One fused step through the public two halves; panics if it fell back.
fn fused_step(enc: &mut RegionEncoder, region: &dyn RegionSource) {
    let mut wire = enc.take_spare_wire();
    let p = enc.diff_region(region, 7, &mut wire).unwrap().expect("no concurrent writer: the first window validates");
    assert!(enc.commit(p));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Fused and copy-then-diff steps give byte-identical frames, the
    /// same runs and the same shadow, for every chunk size, frame budget
    /// and merge gap, with sparse, dense, unchanged and whole-region writes.
    #[test]
    fn fused_equals_copy_then_diff(
        size in 5_000usize..400_000,
        chunk in prop_oneof![Just(1024usize), Just(4096), Just(64 << 10)],
        payload in prop_oneof![Just(1000usize), Just(4096), Just(512 << 10)],
        gap in prop_oneof![Just(0usize), Just(5), Just(16), Just(40), Just(usize::MAX)],
        seed in 1u64..u64::MAX,
        kinds in proptest::collection::vec(0u8..5, 1..7),
    ) {
        let name = unique_name("fused-eq");
        let mut w = SeqWriter::create(&name, RegionConfig::new(size).chunk_size(chunk)).unwrap();
        let r = SeqReader::open(&name).unwrap();
        let mut next = xorshift(seed);
        let init: Vec<u8> = (0..size).map(|_| next() as u8).collect();
        w.write_at(0, &init).unwrap();
        let cfg = EncoderConfig { frame_payload: payload, merge_gap: gap, ..Default::default() };
        let mut fused = RegionEncoder::from_region(1, &r, cfg.clone()).unwrap();
        let mut copied = RegionEncoder::from_region(1, &r, cfg).unwrap();
        for kind in kinds {
            match kind {
                0 => for _ in 0..50 {
                    let at = (next() % (size as u64 - 8)) as usize;
                    w.write_at(at, &next().to_le_bytes()[..1 + (next() % 7) as usize]).unwrap();
                },
                1 => {
                    let len = 1 + (next() % (size as u64 / 2)) as usize;
                    let at = (next() % (size - len) as u64) as usize;
                    let data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                    w.write_at(at, &data).unwrap();
                }
                2 => {
                    let at = (next() % (size as u64 - 100)) as usize;
                    let same = region_bytes(&r)[at..at + 100].to_vec();
                    w.write_at(at, &same).unwrap();
                }
                3 => {
                    let data: Vec<u8> = (0..size).map(|_| next() as u8).collect();
                    w.write_at(0, &data).unwrap();
                }
                _ => for k in 0..(size / 4096).min(100) {
                    let at = k * 4096 + (next() % 2048) as usize;
                    let len = (next() % 2048) as usize + 1;
                    let data: Vec<u8> = (0..len.min(size - at)).map(|_| next() as u8).collect();
                    w.write_at(at, &data).unwrap();
                },
            }
            fused_step(&mut fused, &r);
            let mut snap = Snapshot::default();
            r.snapshot_since(copied.version(), &mut snap).unwrap();
            copied.ingest_snapshot(&mut snap, 7);
            prop_assert_eq!(fused.version(), copied.version());
            let (a, b) = (fused.backlog().newest().unwrap(), copied.backlog().newest().unwrap());
            prop_assert!(!a.is_gathered());
            prop_assert_eq!(a.frames().collect::<Vec<_>>(), b.frames().collect::<Vec<_>>());
            prop_assert_eq!(a.runs().len(), b.runs().len());
            for (ra, rb) in a.runs().iter().zip(b.runs()) {
                prop_assert_eq!((ra.src, ra.len), (rb.src, rb.len));
                prop_assert_eq!(a.bytes(ra), b.bytes(rb));
            }
            let now = region_bytes(&r);
            prop_assert_eq!(blake3::hash(&shadow(&fused)), blake3::hash(&now));
            prop_assert_eq!(blake3::hash(&shadow(&copied)), blake3::hash(&now));
        }
        w.unlink().unwrap();
    }
}

/// A source whose reads are torn by writes made from inside the window:
/// each of the next `tears` windows writes once (at its first block)
/// through a second handle.
struct Tearing {
    reader: SeqReader,
    writer: Mutex<SeqWriter>,
    tears: AtomicU32,
    at: AtomicU32,
}

struct Inject<'a> {
    src: &'a Tearing,
    inner: &'a mut dyn DirtyVisitor,
    /// The window has not written yet.
    armed: bool,
}

impl DirtyVisitor for Inject<'_> {
    fn begin(&mut self, version: u64, dirty: usize) {
        self.armed = true;
        self.inner.begin(version, dirty);
    }
    fn block(&mut self, offset: usize, bytes: &[u8]) {
        if std::mem::take(&mut self.armed) && self.src.tears.load(Ordering::Relaxed) > 0 {
            self.src.tears.fetch_sub(1, Ordering::Relaxed);
            let at = self.src.at.fetch_add(4099, Ordering::Relaxed) as usize % (self.src.reader.size() - 8);
            let mut w = self.src.writer.lock().unwrap();
            let v = w.version();
            w.write_at(at, &v.to_le_bytes()).unwrap();
        }
        self.inner.block(offset, bytes);
    }
}

impl RegionSource for Tearing {
    fn size(&self) -> usize {
        self.reader.size()
    }
    fn chunk_size(&self) -> usize {
        self.reader.chunk_size()
    }
    fn version(&self) -> u64 {
        self.reader.version()
    }
    fn snapshot_since(&self, since: u64, snap: &mut Snapshot) -> Result<()> {
        RegionSource::snapshot_since(&self.reader, since, snap)
    }
    fn snapshot_all(&self, snap: &mut Snapshot) -> Result<()> {
        RegionSource::snapshot_all(&self.reader, snap)
    }
    fn visit_since(&self, since: u64, windows: u32, visitor: &mut dyn DirtyVisitor) -> Result<Option<u64>> {
        RegionSource::visit_since(&self.reader, since, windows, &mut Inject { src: self, inner: visitor, armed: false })
    }
    fn wait_for_change(&self, since: u64, timeout: Duration) -> Result<u64> {
        RegionSource::wait_for_change(&self.reader, since, timeout)
    }
}

/// A torn window leaves the shadow untouched and loses no change: one
/// torn window is retried in place, [`FUSED_WINDOWS`] torn windows give up
/// (shadow unchanged) and `step` falls back to copying; every delta
/// applied in order reproduces the region (blake3).
#[test]
fn torn_windows_lose_no_change() {
    let name = unique_name("fused-tear");
    let mut w = SeqWriter::create(&name, RegionConfig::new(256 << 10)).unwrap();
    w.write_at(0, &[9; 256 << 10]).unwrap();
    let src = Tearing {
        reader: SeqReader::open(&name).unwrap(),
        writer: Mutex::new(w),
        tears: AtomicU32::new(0),
        at: AtomicU32::new(100),
    };
    let mut enc = RegionEncoder::from_region(1, &src, EncoderConfig::default()).unwrap();
    let mut mirror = region_bytes(&src.reader);
    let mut at = enc.version();
    let mut next = xorshift(77);
    for round in 0..12u32 {
        {
            let mut w = src.writer.lock().unwrap();
            for _ in 0..20 {
                let off = (next() % (250 << 10)) as usize;
                w.write_at(off, &[round as u8; 3000]).unwrap();
            }
        }
        let tears = round % 4; // 0, 1 (retried), 2 and 3 (fall back)
        src.tears.store(tears, Ordering::Relaxed);
        let before = blake3::hash(&shadow(&enc));
        let mut wire = enc.take_spare_wire();
        let pending = enc.diff_region(&src, 7, &mut wire).unwrap();
        if tears >= FUSED_WINDOWS {
            assert!(pending.is_none(), "round {round}: every window torn");
            assert_eq!(blake3::hash(&shadow(&enc)), before, "a torn window never touches the shadow");
            src.tears.store(0, Ordering::Relaxed);
            assert!(enc.step(&src, 7).unwrap(), "the copy fallback");
        } else {
            assert!(enc.commit(pending.expect("retried within the budget")));
        }
        apply_newest(&enc, &mut mirror, &mut at);
        assert_eq!(at, src.reader.version(), "round {round}: the torn window's write is in the delta");
        let now = blake3::hash(&region_bytes(&src.reader));
        assert_eq!(blake3::hash(&mirror), now, "round {round}");
        assert_eq!(blake3::hash(&shadow(&enc)), now, "round {round}");
    }
    src.writer.lock().unwrap().unlink().unwrap();
}

/// A real writer thread writes whole pages of one byte value while the
/// encoder steps (fused windows torn, retried, or fallen back): every
/// delta applied to a mirror leaves only uniform pages (no torn read got
/// through), and once the writer stops the mirror equals the region.
#[test]
fn concurrent_writer_thread() {
    let name = unique_name("fused-race");
    let size = 2 << 20;
    let mut w = SeqWriter::create(&name, RegionConfig::new(size)).unwrap();
    let r = SeqReader::open(&name).unwrap();
    let mut enc =
        RegionEncoder::from_region(1, &r, EncoderConfig { backlog_bytes: 64 << 20, ..Default::default() }).unwrap();
    let mut mirror = region_bytes(&r);
    let mut at = enc.version();
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut next = xorshift(5);
            for _ in 0..20_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let pages = 1 + (next() % 16) as usize;
                let first = (next() as usize) % (size / 4096 - pages);
                w.write_at(first * 4096, &vec![next() as u8; pages * 4096]).unwrap();
            }
        });
        for _ in 0..300 {
            if enc.step(&r, 7).unwrap() {
                apply_newest(&enc, &mut mirror, &mut at);
                for (k, page) in mirror.chunks(4096).enumerate() {
                    assert!(page.iter().all(|&b| b == page[0]), "page {k} torn at seq {at}");
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    enc.step(&r, 7).unwrap();
    if enc.version() != at {
        apply_newest(&enc, &mut mirror, &mut at);
    }
    assert_eq!(blake3::hash(&mirror), blake3::hash(&region_bytes(&r)));
    assert_eq!(blake3::hash(&shadow(&enc)), blake3::hash(&mirror));
    w.unlink().unwrap();
}
