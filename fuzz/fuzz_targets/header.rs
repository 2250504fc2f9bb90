//! Segment header validation must return Ok or a typed error for any bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(fields) = venom_core::header::validate_header_bytes(data, None) {
        // Anything accepted must be internally consistent.
        assert_eq!(fields.total_len as usize, data.len());
        assert!(fields.total_len >= venom_core::header::HEADER_LEN as u64);
    }
});
