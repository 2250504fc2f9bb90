//! Catalog validation (typed errors for every bad input), a proptest of the
//! decoder, typed views, and a by-name mirror on loopback.

use proptest::prelude::*;
use std::sync::Arc;
use std::time::Duration;
use venom_core::{RegionConfig, SeqReader, SeqWriter, testkit};
use venom_net::io::Publisher;
use venom_net::named::NamedMirror;
use venom_net::proto::catalog::{ArrayInfo, CATALOG_BYTES, Catalog, Pick};
use venom_net::tls::{ClientTls, Identity, ServerTls};
use venom_net::typed::{Array, write_step};
use venom_net::{Dtype, Error, MirrorConfig};

fn info(name: &str, offset: u64, dtype: Dtype, shape: &[u64]) -> ArrayInfo {
    ArrayInfo { name: name.into(), offset, dtype, shape: shape.to_vec() }
}

const C: u64 = CATALOG_BYTES as u64;

#[test]
fn catalog_rejects_bad_entries_with_typed_errors() {
    let ok = Catalog::new(vec![info("a", C, Dtype::F64, &[4])], C + 32).unwrap();
    assert_eq!(ok.get("a").unwrap().byte_len(), Some(32));
    assert!(matches!(ok.get("zz"), Err(Error::NoSuchArray(_))));
    // Past the end, inside the catalog prefix, offset overflow, size overflow.
    let e = Catalog::new(vec![info("a", C, Dtype::F64, &[5])], C + 32).unwrap_err();
    assert!(matches!(e, Error::CatalogOutOfBounds { len: 40, .. }), "{e}");
    assert!(matches!(Catalog::new(vec![info("a", 0, Dtype::U8, &[4])], C + 32), Err(Error::CatalogOutOfBounds { .. })));
    let e = Catalog::new(vec![info("a", u64::MAX - 3, Dtype::U8, &[8])], u64::MAX).unwrap_err();
    assert!(matches!(e, Error::CatalogOutOfBounds { .. }), "{e}");
    let e = Catalog::new(vec![info("a", C, Dtype::F64, &[u64::MAX, 2])], u64::MAX).unwrap_err();
    assert!(matches!(e, Error::CatalogMalformed(_)), "{e}");
    // Shape sanity and names.
    assert!(matches!(Catalog::new(vec![info("a", C, Dtype::U8, &[])], C + 8), Err(Error::CatalogMalformed(_))));
    assert!(matches!(Catalog::new(vec![info("a", C, Dtype::U8, &[0])], C + 8), Err(Error::CatalogMalformed(_))));
    assert!(matches!(Catalog::new(vec![info("a", C, Dtype::U8, &[1; 9])], C + 8), Err(Error::CatalogMalformed(_))));
    assert!(matches!(Catalog::new(vec![info("", C, Dtype::U8, &[1])], C + 8), Err(Error::CatalogMalformed(_))));
    assert!(matches!(Catalog::new(vec![info("a/b", C, Dtype::U8, &[1])], C + 8), Err(Error::CatalogMalformed(_))));
    // Duplicates and overlaps.
    let dup = vec![info("a", C, Dtype::U8, &[4]), info("a", C + 8, Dtype::U8, &[4])];
    assert!(matches!(Catalog::new(dup, C + 64), Err(Error::CatalogDuplicate(n)) if n == "a"));
    let overlap = vec![info("a", C, Dtype::U32, &[4]), info("b", C + 8, Dtype::U8, &[4])];
    assert!(matches!(Catalog::new(overlap, C + 64), Err(Error::CatalogOverlap(..))));
    // The builder reports the same errors.
    let e = Catalog::builder().array("x", Dtype::U8, &[1]).array("x", Dtype::U8, &[1]).build().unwrap_err();
    assert!(matches!(e, Error::CatalogDuplicate(_)));
    // Catalog entries that do not fit in the 4 KiB prefix.
    let mut b = Catalog::builder();
    for i in 0..64 {
        b = b.array(&format!("{i:0>60}"), Dtype::U8, &[1, 1, 1, 1, 1, 1, 1, 1]);
    }
    assert!(matches!(b.build(), Err(Error::CatalogMalformed(_))));
}

#[test]
fn catalog_decoder_rejects_corrupt_bytes() {
    let cat = Catalog::builder().array("prices", Dtype::F64, &[16]).array("grid", Dtype::U8, &[8, 8]).build().unwrap();
    let bytes = cat.encode().unwrap();
    assert_eq!(bytes.len(), CATALOG_BYTES);
    assert_eq!(Catalog::decode(&bytes).unwrap(), cat);
    assert!(matches!(Catalog::decode(&[0; 64]), Err(Error::CatalogMalformed(_)))); // no magic
    assert!(matches!(Catalog::decode(&bytes[..20]), Err(Error::CatalogMalformed(_)))); // truncated
    let mut b = bytes.clone();
    b[8..16].copy_from_slice(&10u64.to_le_bytes()); // declared region too small
    assert!(matches!(Catalog::decode(&b), Err(Error::CatalogOutOfBounds { .. })));
    let mut b = bytes.clone();
    b[16..18].copy_from_slice(&65u16.to_le_bytes()); // too many arrays
    assert!(matches!(Catalog::decode(&b), Err(Error::CatalogMalformed(_))));
    let mut b = bytes.clone();
    b[18 + 1 + 6] = 42; // dtype of "prices"
    assert!(matches!(Catalog::decode(&b), Err(Error::CatalogMalformed(_))));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Arbitrary bytes after a valid magic never panic and never yield an
    /// entry outside the declared region.
    #[test]
    fn decoder_never_panics(body in proptest::collection::vec(any::<u8>(), 0..600), size in any::<u64>()) {
        let mut b = b"VNCATLG1".to_vec();
        b.extend_from_slice(&size.to_le_bytes());
        b.extend_from_slice(&body);
        if let Ok(cat) = Catalog::decode(&b) {
            for a in cat.arrays() {
                prop_assert!(a.offset >= C && a.offset + a.byte_len().unwrap() <= cat.region_size());
            }
        }
    }

    /// Valid catalogs survive an encode/decode round trip.
    #[test]
    fn roundtrip(shapes in proptest::collection::vec(proptest::collection::vec(1u64..20, 1..4), 1..10)) {
        let mut b = Catalog::builder();
        for (i, s) in shapes.iter().enumerate() {
            b = b.array(&format!("arr{i}"), Dtype::I64, s);
        }
        let cat = b.build().unwrap();
        prop_assert_eq!(Catalog::decode(&cat.encode().unwrap()).unwrap(), cat);
    }
}

#[test]
fn typed_views_check_dtype_and_indices() {
    let cat = Catalog::builder().array("prices", Dtype::F64, &[4]).array("grid", Dtype::I32, &[3, 5]).build().unwrap();
    let name = testkit::unique_name("typed");
    let mut w = SeqWriter::create(&name, RegionConfig::new(cat.region_size() as usize)).unwrap();
    cat.write_to(&mut w).unwrap();
    let cat = Catalog::read_from(&w).unwrap();
    assert!(matches!(Array::<f32>::from_catalog(&cat, "prices"), Err(Error::DtypeMismatch { .. })));
    let prices = Array::<f64>::from_catalog(&cat, "prices").unwrap();
    let grid = Array::<i32>::from_catalog(&cat, "grid").unwrap();
    let (_, v) = write_step(&mut w, |s| {
        s.write_all(&prices, &[1.0, 2.0, 3.0, 4.0])?;
        s.write_row(&grid, 2, &[-1, -2, -3, -4, -5])?;
        s.set(&grid, &[0, 4], 9)
    })
    .unwrap();
    assert_eq!(w.version(), v);
    let r = SeqReader::open(&name).unwrap();
    let g = grid.view(&r);
    assert_eq!(g.get(&[0, 4]).unwrap(), 9);
    assert_eq!(g.get(&[2, 0]).unwrap(), -1);
    assert!(matches!(g.get(&[3, 0]), Err(Error::BadIndex { .. })));
    assert!(matches!(g.get(&[0]), Err(Error::BadIndex { .. })));
    let mut row = [0i32; 4];
    assert!(matches!(g.copy_row(1, &mut row), Err(Error::BadIndex { .. })));
    let mut all = Vec::new();
    prices.view(&r).read_all(&mut all).unwrap();
    assert_eq!(all, [1.0, 2.0, 3.0, 4.0]);
    // A step that fails part-way reports the error.
    assert!(write_step(&mut w, |s| s.set(&grid, &[9, 9], 1)).is_err());
    w.unlink().unwrap();
}

#[test]
fn named_mirror_subscribes_by_name_and_slice() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let cat = Catalog::builder()
            .array("prices", Dtype::F64, &[8])
            .array("grid", Dtype::U16, &[32, 32])
            .array("unused", Dtype::U8, &[1 << 16])
            .build()
            .unwrap();
        let name = testkit::unique_name("named-pub");
        let mut w = SeqWriter::create(&name, RegionConfig::new(cat.region_size() as usize)).unwrap();
        cat.write_to(&mut w).unwrap();
        let prices = Array::<f64>::from_catalog(&cat, "prices").unwrap();
        let grid = Array::<u16>::from_catalog(&cat, "grid").unwrap();
        let cells: Vec<u16> = (0..1024).collect();
        write_step(&mut w, |s| {
            s.write_all(&prices, &[1.5; 8])?;
            s.write_all(&grid, &cells)
        })
        .unwrap();
        let id = Identity::self_signed(&["localhost"]).unwrap();
        let src = Arc::new(SeqReader::open(&name).unwrap());
        let p = Publisher::bind("127.0.0.1:0".parse().unwrap(), src, ServerTls::new(&id).unwrap(), Default::default())
            .await
            .unwrap();
        let tls = ClientTls::pinned(id.cert().clone()).unwrap();
        let local = testkit::unique_name("named-mirror");
        let picks = [Pick::all("prices"), Pick::slice("grid", &[10..12, 4..8])];
        let m = NamedMirror::connect(
            p.local_addr().unwrap(),
            "localhost",
            tls.clone(),
            &picks,
            &local,
            MirrorConfig::default(),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        // The local region carries its own catalog: another local process finds arrays by name.
        let r = SeqReader::open(&local).unwrap();
        let local_cat = Catalog::read_from(&r).unwrap();
        assert_eq!(local_cat.get("grid").unwrap().shape, vec![2, 4]);
        assert!(matches!(local_cat.get("unused"), Err(Error::NoSuchArray(_))));
        let g = m.array::<u16>("grid").unwrap();
        assert_eq!(g.get(&[1, 3]).unwrap(), 11 * 32 + 7);
        assert_eq!(m.array::<f64>("prices").unwrap().get(&[7]).unwrap(), 1.5);
        // Later steps arrive too.
        write_step(&mut w, |s| s.set(&grid, &[11, 7], 4242)).unwrap();
        let v = w.version();
        m.mirror().wait_until(Duration::from_secs(10), |_, a| a.seq >= v).unwrap();
        assert_eq!(g.get(&[1, 3]).unwrap(), 4242);
        // Unknown names and bad slices are typed errors.
        let bad = [Pick::slice("grid", &[10..40, 0..4])];
        let e = NamedMirror::connect(
            p.local_addr().unwrap(),
            "localhost",
            tls.clone(),
            &bad,
            "x",
            Default::default(),
            Duration::from_secs(10),
        )
        .await;
        assert!(matches!(e, Err(Error::BadIndex { .. })));
        let e = NamedMirror::connect(
            p.local_addr().unwrap(),
            "localhost",
            tls,
            &[Pick::all("nope")],
            "x",
            Default::default(),
            Duration::from_secs(10),
        )
        .await;
        assert!(matches!(e, Err(Error::NoSuchArray(_))));
        m.close().await;
        p.close().await;
        w.unlink().unwrap();
    });
}

#[test]
fn a_catalog_pointing_past_the_real_region_is_refused() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        // The catalog claims a 1 MiB array in a region of 8 KiB.
        let lie = Catalog::new(vec![info("big", C, Dtype::U8, &[1 << 20])], C + (1 << 20)).unwrap();
        let name = testkit::unique_name("named-lie");
        let mut w = SeqWriter::create(&name, RegionConfig::new(2 * CATALOG_BYTES)).unwrap();
        w.write_at(0, &lie.encode().unwrap()).unwrap();
        assert!(matches!(Catalog::read_from(&w), Err(Error::CatalogMalformed(_)))); // local check
        let id = Identity::self_signed(&["localhost"]).unwrap();
        let src = Arc::new(SeqReader::open(&name).unwrap());
        let p = Publisher::bind("127.0.0.1:0".parse().unwrap(), src, ServerTls::new(&id).unwrap(), Default::default())
            .await
            .unwrap();
        let tls = ClientTls::pinned(id.cert().clone()).unwrap();
        let local = testkit::unique_name("named-lie-mirror");
        let r = NamedMirror::connect(
            p.local_addr().unwrap(),
            "localhost",
            tls,
            &[Pick::all("big")],
            &local,
            MirrorConfig::default(),
            Duration::from_secs(20),
        )
        .await;
        match r {
            // The publisher checks the subscription against its real size and closes the
            // connection (a protocol error), so the mirror sees the connection end.
            Err(Error::Protocol(msg)) => eprintln!("refused: {msg}"),
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("a lying catalog was accepted"),
        }
        assert!(SeqReader::open(&local).is_err(), "the local region was not cleaned up");
        p.close().await;
        w.unlink().unwrap();
    });
}
