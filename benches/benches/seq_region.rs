//! SeqRegion read and write bandwidth against a plain memcpy of the same
//! size, measured in the same run.
//!
//! `cargo bench -p venom-benches --bench seq_region`
//!
//! * `memcpy`: `copy_from_slice` between two private buffers (the limit).
//! * `read`: `SeqRegion::read_at` of the whole region into a private buffer:
//!   seqlock window + byte-wise atomic copy + validation.
//! * `write`: `SeqWriter::write_at` of the whole region: seqlock window,
//!   copy, dirty-chunk marking and the futex notify check.
//!
//! The region is created by this process and read through a second, separate
//! mapping of the same segment (as another process would see it).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use venom_core::{RegionConfig, SeqReader, SeqWriter};

const SIZES: [(usize, &str); 4] = [(4 << 10, "4KiB"), (64 << 10, "64KiB"), (1 << 20, "1MiB"), (16 << 20, "16MiB")];

fn bandwidth(c: &mut Criterion) {
    let mut g = c.benchmark_group("seq_region");
    for (size, label) in SIZES {
        g.throughput(Throughput::Bytes(size as u64));
        let src = vec![0x5Au8; size];
        let mut dst = vec![0u8; size];
        g.bench_function(BenchmarkId::new("memcpy", label), |b| {
            b.iter(|| {
                dst.copy_from_slice(black_box(&src));
                black_box(&mut dst);
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
    }
    g.finish();
}

criterion_group!(benches, bandwidth);
criterion_main!(benches);
