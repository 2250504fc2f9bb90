//! Deriving a peer identity from certificate bytes: a `PeerId` or a typed
//! error for any input, never a panic. (The TLS layer verifies certificates
//! first; this guards the identity extraction behind it.)
#![no_main]
use libfuzzer_sys::fuzz_target;
use venom_net::proto::policy::PeerId;

fuzz_target!(|data: &[u8]| {
    if let Ok(id) = PeerId::from_der(data) {
        assert!(id.limit_key().is_some());
    }
});
