//! `venom_core::inspect::classify` on arbitrary header bytes and file
//! lengths: always a status, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use venom_core::inspect::{Status, classify};

fuzz_target!(|data: &[u8]| {
    let (len, bytes) = match data.split_first_chunk::<8>() {
        Some((l, rest)) => (u64::from_le_bytes(*l), rest),
        None => (data.len() as u64, data),
    };
    if let Status::Stray(r) | Status::Corrupt(r) = classify(bytes, len) {
        assert!(!r.is_empty());
    }
});
