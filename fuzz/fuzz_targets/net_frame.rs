//! The venom-net frame decoder must return Ok or a typed error for any bytes,
//! and whatever it accepts must re-encode to the same frame.
#![no_main]
use libfuzzer_sys::fuzz_target;
use venom_net::proto::frame::Frame;

fuzz_target!(|data: &[u8]| {
    if let Ok((frame, n)) = Frame::decode(data) {
        assert!(n <= data.len());
        let mut again = Vec::new();
        frame.encode(&mut again);
        let (g, m) = Frame::decode(&again).expect("re-encoded frame decodes");
        assert_eq!(m, again.len());
        assert_eq!(g, frame);
    }
});
