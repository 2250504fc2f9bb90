//! SeqRegion read and write bandwidth against a plain memcpy of the same
//! size, measured in the same run.
//!
//! `cargo bench -p venom-benches --bench seq_region`
//!
//! Baselines copy over the same buffers, sizes and loop shape (one whole
//! copy per criterion iteration) as the venom rows they are compared with:
//! * `memcpy_read`: `copy_from_slice` from a shared-memory segment of the
//!   same size (its own `/dev/shm` mapping, touched by nobody else) into
//!   the same private `dst` buffer that `read` fills;
//! * `memcpy_write`: `copy_from_slice` from the same private `src` buffer
//!   that `write` copies, into that shared-memory segment;
//! * `read`: `SeqRegion::read_at` of the whole region into `dst`: seqlock
//!   window + byte-wise atomic copy + validation;
//! * `write`: `SeqWriter::write_at` of `src` over the whole region: seqlock
//!   window, copy, dirty-chunk marking and the futex notify barrier.
//!
//! Ratios: `read` / `memcpy_read` and `write` / `memcpy_write` (throughput).
//!
//! The region is created by this process and read through a second, separate
//! mapping of the same segment (as another process would see it).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use venom_core::{RegionConfig, Segment, SegmentKind, SeqReader, SeqWriter};

const SIZES: [(usize, &str); 4] = [(4 << 10, "4KiB"), (64 << 10, "64KiB"), (1 << 20, "1MiB"), (16 << 20, "16MiB")];

fn bandwidth(c: &mut Criterion) {
    let mut g = c.benchmark_group("seq_region");
    for (size, label) in SIZES {
        g.throughput(Throughput::Bytes(size as u64));
        let src = vec![0x5Au8; size];
        let mut dst = vec![0u8; size];
        let base = format!("bench-seq-base-{}-{label}", std::process::id());
        let shm = Segment::builder(&base, SegmentKind::RAW).body_len(size).create().expect("baseline segment");
        // SAFETY: the body is `size` bytes, mapped while `shm` lives; only
        // this thread touches this segment, so plain copies do not race.
        let shm_bytes = unsafe { std::slice::from_raw_parts_mut(shm.body_ptr(), size) };
        shm_bytes.fill(0x5A);
        g.bench_function(BenchmarkId::new("memcpy_read", label), |b| {
            b.iter(|| {
                dst.copy_from_slice(black_box(&*shm_bytes));
                black_box(&mut dst);
            })
        });
        g.bench_function(BenchmarkId::new("memcpy_write", label), |b| {
            b.iter(|| {
                shm_bytes.copy_from_slice(black_box(&src));
                black_box(&mut *shm_bytes);
            })
        });
        let name = format!("bench-seq-{}-{label}", std::process::id());
        let mut writer = SeqWriter::create(&name, RegionConfig::new(size)).expect("create region");
        writer.write(&src).expect("initial write");
        let reader = SeqReader::open(&name).expect("open region");
        g.bench_function(BenchmarkId::new("read", label), |b| {
            b.iter(|| black_box(reader.read_at(0, black_box(&mut dst)).expect("read")))
        });
        g.bench_function(BenchmarkId::new("write", label), |b| {
            b.iter(|| black_box(writer.write_at(0, black_box(&src)).expect("write")))
        });
        writer.unlink().expect("unlink");
        shm.unlink().expect("unlink baseline");
    }
    g.finish();
}

criterion_group!(benches, bandwidth);
criterion_main!(benches);
