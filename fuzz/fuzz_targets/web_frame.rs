//! Arbitrary bytes as a browser-view frame: decoding against a view of
//! (first byte x 64) bytes and applying it must give a value or a typed
//! error, never a panic, an out-of-bounds write or a large allocation.
#![no_main]
use libfuzzer_sys::fuzz_target;
use venom_net::web::frame::WebFrame;

fuzz_target!(|data: &[u8]| {
    let Some((&len, frame)) = data.split_first() else { return };
    let mut view = vec![0u8; len as usize * 64];
    if let Ok(f) = WebFrame::decode(frame, view.len()) {
        f.apply(&mut view).expect("a decoded frame fits its view");
    }
});
