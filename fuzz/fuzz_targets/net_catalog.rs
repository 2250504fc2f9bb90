//! Fuzzes the region catalog decoder: arbitrary bytes must give a validated
//! catalog or a typed error, never a panic, and a decoded catalog must
//! survive an encode/decode round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use venom_net::proto::catalog::{CATALOG_BYTES, Catalog};

fuzz_target!(|data: &[u8]| {
    let mut bytes = b"VNCATLG1".to_vec(); // also explore past the magic check
    bytes.extend_from_slice(data);
    for input in [data, &bytes[..]] {
        if let Ok(cat) = Catalog::decode(input) {
            for a in cat.arrays() {
                let end = a.offset + a.byte_len().expect("validated size");
                assert!(a.offset >= CATALOG_BYTES as u64 && end <= cat.region_size());
            }
            let again = Catalog::decode(&cat.encode().expect("decoded catalogs fit")).expect("round trip");
            assert_eq!(again, cat);
        }
    }
});
