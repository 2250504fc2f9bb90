//! Property tests of the frame decoder and the subscription compiler (short;
//! the cargo-fuzz targets in `fuzz/` go deeper).

use proptest::prelude::*;
use venom_net::proto::frame::{Ack, Frame, Hello, Resume, Resync, encode_single_update};
use venom_net::{Dtype, Part, Subscription};

fn any_part() -> impl Strategy<Value = Part> {
    prop_oneof![
        any::<u16>().prop_map(|d| Part::Whole { dst: d as u64 }),
        (0u64..5000, 0u64..3000, 0u64..9000).prop_map(|(src, len, dst)| Part::Range { src, len, dst }),
        (0u64..64, prop::collection::vec((1u64..9, 0u64..9, 0u64..9), 1..4), 0u64..100).prop_map(
            |(base, dims, dst)| {
                let shape: Vec<u64> = dims.iter().map(|d| d.0).collect();
                let ranges = dims.iter().map(|&(n, a, b)| (a % n)..(b % n + 1).max(a % n + 1)).collect();
                Part::Slice { base, dtype: Dtype::F32, shape, ranges, dst }
            }
        ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Ok((_, n)) = Frame::decode(&bytes) {
            prop_assert!(n <= bytes.len());
        }
    }

    #[test]
    fn mutated_frames_never_panic(seq in any::<u64>(), at in any::<prop::sample::Index>(), byte in any::<u8>(),
                                  data in prop::collection::vec(any::<u8>(), 1..64)) {
        let mut f = encode_single_update(1, seq, 0, true, &[(3, &data), (100, &data)]);
        let i = at.index(f.len());
        f[i] = byte;
        let _ = Frame::decode(&f);
        f.truncate(i);
        prop_assert!(Frame::decode(&f).is_err());
    }

    #[test]
    fn control_frames_round_trip(a in any::<(u32, u64, u64)>(), reason in any::<u8>(), check in any::<bool>(),
                                 parts in prop::collection::vec(any_part(), 1..5)) {
        let frames = vec![
            Frame::Ack(Ack { region_id: a.0, epoch: a.1, seq: a.2 }),
            Frame::Resync(Resync { region_id: a.0, epoch: a.1, last_seq: a.2, reason }),
            Frame::Repair(venom_net::proto::frame::RepairFrame { region_id: a.0, epoch: a.1, seq: a.2, chunks: vec![0, 7, u32::MAX] }),
            Frame::Hash(venom_net::proto::frame::HashFrame { region_id: a.0, epoch: a.1, seq: a.2, scheme: reason, digest: [reason; 32] }),
            Frame::Hello(Hello { mirror_id: a.1, region_id: a.0, check_hash: check, subscription: Subscription { parts }, resume: check.then_some(Resume { epoch: a.1, seq: a.2 }) }),
        ];
        for f in frames {
            let mut v = Vec::new();
            f.encode(&mut v);
            let (g, n) = Frame::decode(&v).unwrap();
            prop_assert_eq!(n, v.len());
            prop_assert_eq!(g, f);
        }
    }

    #[test]
    fn update_round_trip(runs in prop::collection::vec((any::<u32>(), prop::collection::vec(any::<u8>(), 1..32)), 0..8)) {
        let runs: Vec<(u64, &[u8])> = runs.iter().map(|(v, d)| (*v as u64, d.as_slice())).collect();
        let f = encode_single_update(3, 10, 8, false, &runs);
        let (g, _) = Frame::decode(&f).unwrap();
        let Frame::Update(u) = g else { panic!("not an update") };
        prop_assert_eq!(u.runs().collect::<Vec<_>>(), runs);
    }

    #[test]
    fn compiled_subscriptions_stay_in_bounds(parts in prop::collection::vec(any_part(), 1..4), size in 1u64..10_000) {
        if let Ok(c) = (Subscription { parts }).compile(size) {
            let mut total = 0;
            for r in c.runs() {
                prop_assert!(r.len > 0 && r.src + r.len <= size);
                prop_assert_eq!(r.virt, total);
                total += r.len;
            }
            prop_assert_eq!(total, c.total_len());
            // map_virtual: in range maps inside some run's destination; out of range fails.
            prop_assert!(c.map_virtual(total, 1, |_, _, _| ()).is_err());
            let mut mapped = 0;
            c.map_virtual(0, total, |dst, n, skip| { assert!(dst + n <= c.dst_end()); assert_eq!(skip, mapped); mapped += n; }).unwrap();
            prop_assert_eq!(mapped, total);
        }
    }
}

#[test]
fn slice_of_a_grid_compiles_to_rows() {
    // rows 10..20 x cols 0..64 of a 256x256 f64 grid, packed at local offset 8.
    let sub = Subscription::slice(0, Dtype::F64, &[256, 256], &[10..20, 0..64], 8);
    let c = sub.compile(256 * 256 * 8).unwrap();
    assert_eq!(c.runs().len(), 10);
    for (i, r) in c.runs().iter().enumerate() {
        assert_eq!(r.src, (10 + i as u64) * 256 * 8);
        assert_eq!(r.len, 64 * 8);
        assert_eq!(r.dst, 8 + i as u64 * 64 * 8);
    }
    // Full trailing dimensions merge into one run; 3-D slice.
    let c = Subscription::slice(0, Dtype::U8, &[4, 8, 16], &[1..3, 0..8, 0..16], 0).compile(4 * 8 * 16).unwrap();
    assert_eq!(c.runs().len(), 1);
    let c = Subscription::slice(0, Dtype::U8, &[4, 8, 16], &[1..3, 2..4, 5..9], 0).compile(4 * 8 * 16).unwrap();
    assert_eq!(c.runs().len(), 4);
    assert_eq!(c.runs()[1].src, 128 + 3 * 16 + 5);
    // Errors.
    assert!(Subscription::slice(0, Dtype::F64, &[256, 256], &[10..20, 0..64], 0).compile(1000).is_err());
    assert!(Subscription::range(0, 10, 0).with(Part::Range { src: 5, len: 10, dst: 100 }).compile(100).is_err());
    assert!(Subscription::range(0, 10, 0).with(Part::Range { src: 50, len: 10, dst: 5 }).compile(100).is_err());
    assert!(Subscription::range(u64::MAX, 10, 0).compile(100).is_err());
    assert!(Subscription::default().compile(100).is_err());
}

#[test]
fn update_frames_re_encode_identically() {
    let f = encode_single_update(3, 10, 8, true, &[(0, b"abc"), (7, b"de")]);
    let (g, _) = Frame::decode(&f).unwrap();
    let mut v = Vec::new();
    g.encode(&mut v);
    assert_eq!(v, f);
}

#[test]
fn repair_frames_are_capped_and_ordered() {
    use venom_net::proto::frame::{MAX_REPAIR_CHUNKS, RepairFrame};
    let enc = |chunks: Vec<u32>| {
        let mut v = Vec::new();
        Frame::Repair(RepairFrame { region_id: 0, epoch: 1, seq: 2, chunks }).encode(&mut v);
        v
    };
    assert!(Frame::decode(&enc((0..MAX_REPAIR_CHUNKS as u32).collect())).is_ok());
    assert!(matches!(
        Frame::decode(&enc((0..=MAX_REPAIR_CHUNKS as u32).collect())),
        Err(venom_net::Error::Malformed(_))
    ));
    assert!(matches!(Frame::decode(&enc(vec![3, 3])), Err(venom_net::Error::Malformed(_))));
    // A count larger than the bytes present is refused before allocating.
    let mut v = enc(vec![1]);
    v[8 + 20..8 + 24].copy_from_slice(&1000u32.to_le_bytes());
    assert!(matches!(Frame::decode(&v), Err(venom_net::Error::Malformed(_))));
}
