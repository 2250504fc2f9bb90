//! Drives the mirror state machine with arbitrary frames after a welcome:
//! it must never panic and never write outside its subscription.
#![no_main]
use libfuzzer_sys::fuzz_target;
use venom_net::proto::frame::{Frame, Welcome};
use venom_net::{MemRegion, MirrorConfig, MirrorSession, Now, Part, Subscription};

const LOCAL: usize = 4096;

fuzz_target!(|data: &[u8]| {
    // Subscribed local bytes: 100..300 and 1000..1064 (written with 0xFF-free data is not
    // guaranteed, so we check that bytes OUTSIDE these ranges stay zero).
    let sub = Subscription::range(0, 200, 100).with(Part::Range { src: 500, len: 64, dst: 1000 });
    let mut local = MemRegion::new(LOCAL, 256);
    let mut m = MirrorSession::new(MirrorConfig { check_hash: true, ..Default::default() }, sub);
    m.connect();
    let now = Now::system();
    let w = Frame::Welcome(Welcome { epoch: 1, owner_id: 0, region_id: 0, chunk_size: 256, region_size: 2048 });
    m.handle_frame(&w, &mut local, 0, now).unwrap();
    let mut rest = data;
    while !rest.is_empty() {
        match Frame::decode(rest) {
            Ok((f, n)) => {
                if m.handle_frame(&f, &mut local, n, now).is_err() {
                    break; // the shell would disconnect here
                }
                rest = &rest[n..];
            }
            Err(_) => break,
        }
        // What the I/O shell does between frames: digest work and timers.
        if m.poll_verify(&local, 4, now.mono).is_err() {
            break;
        }
        m.handle_timeout(now.mono + std::time::Duration::from_secs(10));
        let mut out = Vec::new();
        while m.poll_transmit(&mut out) {}
    }
    let bytes = local.to_vec();
    for (i, b) in bytes.iter().enumerate() {
        if !(100..300).contains(&i) && !(1000..1064).contains(&i) {
            assert_eq!(*b, 0, "write outside the subscription at {i}");
        }
    }
});
