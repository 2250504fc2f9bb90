//! SeqRegion across real processes: torn-free reads, crash of the writer
//! mid-write, take-over, futex waits and dirty tracking.

use std::time::{Duration, Instant};

use venom_core::testkit::{self, spawn_child, unique_name};
use venom_core::{ChunkSnapshot, Error, RegionConfig, SeqReader, SeqWriter};

const WORD: usize = 8;

/// Every word of `buf` must hold the same counter value.
fn assert_uniform(buf: &[u8]) -> u64 {
    let first = u64::from_le_bytes(buf[..WORD].try_into().unwrap());
    for (i, w) in buf.chunks_exact(WORD).enumerate() {
        let v = u64::from_le_bytes(w.try_into().unwrap());
        assert_eq!(v, first, "torn read: word {i} is {v}, word 0 is {first}");
    }
    first
}

fn fill_counter(buf: &mut [u8], c: u64) {
    for w in buf.chunks_exact_mut(WORD) {
        w.copy_from_slice(&c.to_le_bytes());
    }
}

#[test]
fn child_uniform_reader() {
    let Some(name) = testkit::child_arg("reader") else { return };
    let reader = SeqReader::open(&name).unwrap();
    let mut buf = vec![0u8; reader.size()];
    let mut snap = ChunkSnapshot::default();
    let mut distinct = 0;
    let mut last = u64::MAX;
    let deadline = Instant::now() + Duration::from_secs(20);
    while distinct < 200 && Instant::now() < deadline {
        let n = reader.read(&mut buf).unwrap();
        assert_eq!(n, buf.len());
        let v = assert_uniform(&buf);
        reader.snapshot_all(&mut snap).unwrap();
        assert_uniform(&snap.data);
        let mut part = [0u8; 4096];
        reader.read_at(reader.size() / 2, &mut part).unwrap();
        assert_uniform(&part);
        if v != last {
            distinct += 1;
            last = v;
        }
    }
    assert!(distinct >= 200, "saw only {distinct} distinct writes");
}

#[test]
fn readers_in_other_processes_never_see_torn_writes() {
    for size in [64 * 1024, 1 << 20] {
        let name = unique_name("sr-torn");
        let mut writer = SeqWriter::create(&name, RegionConfig::new(size).chunk_size(16 * 1024)).unwrap();
        let mut data = vec![0u8; size];
        fill_counter(&mut data, 0);
        writer.write(&data).unwrap();
        let mut readers: Vec<_> =
            (0..2).map(|_| spawn_child("child_uniform_reader", "reader", &name).unwrap()).collect();
        let deadline = Instant::now() + Duration::from_secs(40);
        let mut c = 1;
        let mut statuses = vec![None; readers.len()];
        while statuses.iter().any(Option::is_none) && Instant::now() < deadline {
            fill_counter(&mut data, c);
            writer.write(&data).unwrap();
            c += 1;
            for (r, s) in readers.iter_mut().zip(statuses.iter_mut()) {
                if s.is_none() {
                    *s = r.try_wait().unwrap();
                }
            }
        }
        for (i, s) in statuses.into_iter().enumerate() {
            assert!(s.is_some_and(|s| s.success()), "reader {i} failed (size {size}): {s:?}");
        }
        writer.unlink().unwrap();
    }
}

#[test]
fn child_writer_dies_mid_write() {
    let Some(name) = testkit::child_arg("crasher") else { return };
    let mut w = SeqWriter::create(&name, RegionConfig::new(8192).chunk_size(1024)).unwrap();
    w.write(&[1u8; 8192]).unwrap();
    let _ = w.write_with(|r| {
        r.fill(0, 4096, 2)?;
        std::fs::write(format!("/tmp/{name}.mid-write"), b"").unwrap();
        std::thread::sleep(Duration::from_secs(60));
        Ok(())
    });
}

#[test]
fn writer_killed_mid_write_readers_error_and_new_writer_recovers() {
    let name = unique_name("sr-crash");
    let marker = format!("/tmp/{name}.mid-write");
    let mut child = spawn_child("child_writer_dies_mid_write", "crasher", &name).unwrap();
    assert!(testkit::wait_for(Duration::from_secs(20), || std::path::Path::new(&marker).exists()));
    let mut reader = SeqReader::open(&name).unwrap();
    reader.region_mut().set_read_timeout(Duration::from_millis(100));
    let mut buf = vec![0u8; 8192];
    // Writer alive but stuck mid-write: bounded wait, then Timeout.
    assert!(matches!(reader.read(&mut buf), Err(Error::Timeout(_))));
    assert!(matches!(SeqWriter::take_over(&name), Err(Error::WriterBusy { .. })));

    child.kill9();
    let t = Instant::now();
    let r = reader.read(&mut buf);
    assert!(matches!(r, Err(Error::WriterDead { .. })), "{r:?}");
    // Liveness bound, not a performance claim: the error comes after the spin budget, long
    // before any timeout (generous margin for a loaded machine).
    assert!(t.elapsed() < Duration::from_secs(5), "reader took {:?} to notice", t.elapsed());
    assert!(matches!(
        reader.wait_for_change(reader.version(), Duration::from_millis(10)),
        Err(Error::WriterDead { .. })
    ));

    let epoch = reader.writer_epoch();
    let mut w = SeqWriter::take_over(&name).unwrap();
    assert_eq!(reader.writer_epoch(), epoch + 1);
    // Torn until the whole region is rewritten...
    assert!(matches!(reader.read(&mut buf), Err(Error::Torn)));
    w.write_at(0, &[3u8; 100]).unwrap();
    assert!(matches!(reader.read_at(0, &mut buf[..10]), Err(Error::Torn)));
    // ... and readable again afterwards.
    w.write(&[4u8; 8192]).unwrap();
    assert_eq!(reader.read(&mut buf).unwrap(), 8192);
    assert!(buf.iter().all(|&b| b == 4));
    // The taker is now the owner: create on the name is refused.
    let again = SeqWriter::create(&name, RegionConfig::new(64));
    assert!(matches!(again, Err(Error::AlreadyExists { .. })), "{again:?}");
    w.unlink().unwrap();
    let _ = std::fs::remove_file(marker);
}

#[test]
fn child_waiter() {
    let Some(name) = testkit::child_arg("waiter") else { return };
    let r = SeqReader::open(&name).unwrap();
    let v0 = r.version();
    std::fs::write(format!("/tmp/{name}.waiting"), b"").unwrap();
    let v = r.wait_for_change(v0, Duration::from_secs(10)).unwrap();
    assert!(v > v0);
    let mut b = [0u8; 5];
    r.read_at(0, &mut b).unwrap();
    assert_eq!(&b, b"ready");
}

#[test]
fn wait_for_change_wakes_another_process_and_times_out() {
    let name = unique_name("sr-wait");
    let mut w = SeqWriter::create(&name, RegionConfig::new(4096)).unwrap();
    let t = Instant::now();
    assert!(matches!(w.wait_for_change(w.version(), Duration::from_millis(50)), Err(Error::Timeout(_))));
    assert!(t.elapsed() >= Duration::from_millis(50));
    let mut child = spawn_child("child_waiter", "waiter", &name).unwrap();
    let marker = format!("/tmp/{name}.waiting");
    // The child has read its starting version; any write from now on must wake it.
    assert!(testkit::wait_for(Duration::from_secs(20), || std::path::Path::new(&marker).exists()));
    w.write(b"ready").unwrap();
    assert!(child.wait_timeout(Duration::from_secs(15)).unwrap().success());
    w.unlink().unwrap();
    let _ = std::fs::remove_file(marker);
}

#[test]
fn dirty_chunks_report_exactly_what_changed() {
    let name = unique_name("sr-dirty");
    let mut w = SeqWriter::create(&name, RegionConfig::new(10_000).chunk_size(1024)).unwrap();
    assert_eq!(w.chunk_count(), 10);
    let mut snap = ChunkSnapshot::default();
    w.snapshot_since(0, &mut snap).unwrap();
    assert!(snap.chunks.is_empty());
    let v1 = w.write_at(1000, &[7; 100]).unwrap(); // chunks 0 and 1
    let v2 = w.write_at(9990, &[8; 10]).unwrap(); // chunk 9 (short: 784 bytes)
    w.snapshot_since(0, &mut snap).unwrap();
    assert_eq!(snap.version, v2);
    let idx: Vec<_> = snap.chunks.iter().map(|c| (c.index, c.version)).collect();
    assert_eq!(idx, vec![(0, v1), (1, v1), (9, v2)]);
    assert_eq!(snap.chunks[2].len, 10_000 - 9 * 1024);
    assert_eq!(&snap.bytes(&snap.chunks[2])[snap.chunks[2].len - 10..], &[8; 10]);
    w.snapshot_since(v1, &mut snap).unwrap();
    assert_eq!(snap.chunks.iter().map(|c| c.index).collect::<Vec<_>>(), vec![9]);
    w.snapshot_since(v2, &mut snap).unwrap();
    assert!(snap.chunks.is_empty());
    let (_, v) = w
        .write_with(|r| {
            r.write_at(5000, &[1; 2])?;
            r.store(3000, &0xABCDu64)
        })
        .unwrap();
    w.snapshot_since(v2, &mut snap).unwrap();
    assert_eq!(snap.chunks.iter().map(|c| (c.index, c.version)).collect::<Vec<_>>(), vec![(2, v), (4, v)]);
    let mut chunk = vec![0u8; 1024];
    assert_eq!(w.read_chunk(2, &mut chunk).unwrap(), (v, v));
    w.snapshot_all(&mut snap).unwrap();
    assert_eq!(snap.chunks.len(), 10);
    assert_eq!(snap.data.len(), 10_000);
    w.unlink().unwrap();
}

#[test]
fn bad_ranges_and_configs_are_typed_errors() {
    let name = unique_name("sr-bad");
    assert!(matches!(SeqWriter::create(&name, RegionConfig::new(0)), Err(Error::InvalidConfig(_))));
    assert!(matches!(SeqWriter::create(&name, RegionConfig::new(64).chunk_size(100)), Err(Error::InvalidConfig(_))));
    let mut w = SeqWriter::create(&name, RegionConfig::new(100)).unwrap();
    assert!(matches!(w.write(&[0; 101]), Err(Error::OutOfBounds { .. })));
    assert!(matches!(w.write_at(usize::MAX, &[0; 2]), Err(Error::OutOfBounds { .. })));
    w.write(&[1; 50]).unwrap();
    let mut small = [0u8; 10];
    assert!(matches!(w.read(&mut small), Err(Error::BufferTooSmall { needed: 50, got: 10 })));
    assert!(matches!(w.read_at(95, &mut small), Err(Error::OutOfBounds { .. })));
    assert!(matches!(w.read_chunk(5, &mut small), Err(Error::OutOfBounds { .. })));
    let r = SeqReader::open(&name).unwrap();
    assert!(matches!(SeqWriter::take_over(&name), Err(Error::WriterBusy { .. })));
    drop(w);
    // The writer released its role on drop: a new one may claim it.
    let w2 = SeqWriter::take_over(&name).unwrap();
    assert_eq!(r.writer().map(|p| p.pid), Some(std::process::id()));
    w2.unlink().unwrap();
}

#[test]
fn dirty_pages_inside_big_chunks() {
    let name = unique_name("sr-pages");
    // 4 chunks of 64 KiB, 16 pages of 4 KiB each; the region ends mid-page.
    let size = 4 * 65536 - 100;
    let mut w = SeqWriter::create(&name, RegionConfig::new(size).chunk_size(65536)).unwrap();
    assert_eq!(w.page_size(), 4096);
    let v0 = w.version();
    let (_, v1) = w
        .write_with(|r| {
            r.write_at(10, &[1; 4])?; // page 0
            r.write_at(4096 * 3 - 1, &[2; 2])?; // pages 2 and 3
            r.write_at(65536 + 4096 * 5, &[3; 4096])?; // page 21 exactly
            r.write_at(size - 1, &[4])
        })
        .unwrap();
    let mut snap = ChunkSnapshot::default();
    w.snapshot_since(v0, &mut snap).unwrap();
    let spans: Vec<_> = snap.chunks.iter().map(|c| (c.index, c.offset, c.len, c.version)).collect();
    assert_eq!(
        spans,
        vec![
            (0, 0, 4096, v1),
            (0, 2 * 4096, 2 * 4096, v1),
            (1, 65536 + 5 * 4096, 4096, v1),
            (3, size - (4096 - 100), 4096 - 100, v1), // the short last page
        ]
    );
    assert_eq!(snap.data.len(), 4096 * 4 + 4096 - 100);
    assert_eq!(&snap.bytes(&snap.chunks[1])[4095..4097], &[2, 2]);
    assert!(snap.bytes(&snap.chunks[2]).iter().all(|&b| b == 3));
    // Only the page written after v1 comes back; the chunk alone would be 64 KiB.
    let v2 = w.write_at(65536 + 100, &[5; 8]).unwrap();
    w.snapshot_since(v1, &mut snap).unwrap();
    assert_eq!(
        snap.chunks.iter().map(|c| (c.index, c.offset, c.len, c.version)).collect::<Vec<_>>(),
        vec![(1, 65536, 4096, v2)]
    );
    // Every byte of the region, reassembled from the deltas, equals a plain read.
    let mut full = vec![0u8; size];
    w.read_at(0, &mut full).unwrap();
    let mut rebuilt = vec![0u8; size];
    w.snapshot_since(0, &mut snap).unwrap();
    for c in &snap.chunks {
        rebuilt[c.offset..c.offset + c.len].copy_from_slice(snap.bytes(c));
    }
    assert_eq!(rebuilt, full);
    // Pre-faulting (best effort: the kernel may not support it) changes no byte.
    let _ = w.prefault();
    w.read_at(0, &mut rebuilt).unwrap();
    assert_eq!(rebuilt, full);
    w.unlink().unwrap();
}

#[test]
fn a_version_1_region_is_a_typed_version_error() {
    use std::os::unix::fs::FileExt;
    let name = unique_name("sr-v1");
    let w = SeqWriter::create(&name, RegionConfig::new(4096)).unwrap();
    // A version-1 block had zero padding where the layout version now lives
    // (header 128 bytes, then the region control block: the word at 72).
    let os = venom_core::SegmentName::new(&name).unwrap().os_id();
    let f = std::fs::OpenOptions::new().write(true).open(format!("/dev/shm/{os}")).unwrap();
    f.write_all_at(&[0u8; 8], 128 + 72).unwrap();
    match SeqReader::open(&name) {
        Err(Error::VersionMismatch { expected: 2, found: 1, .. }) => {}
        other => panic!("expected a version mismatch, got {other:?}"),
    }
    w.unlink().unwrap();
}
