//! Drives a publisher session (check_hash on, after a valid hello) with
//! arbitrary mirror frames (acks, resyncs, chunk repairs, ...) interleaved
//! with its own sends: it must never panic, and must answer bad input with
//! a typed error.
#![no_main]
use libfuzzer_sys::fuzz_target;
use venom_net::proto::frame::{Frame, Hello, Resume};
use venom_net::proto::encoder::RegionEncoder;
use venom_net::{MemRegion, Now, Part, PublisherConfig, PublisherSession, Subscription};

fuzz_target!(|data: &[u8]| {
    let region = MemRegion::new(64 << 10, 1024);
    region.write_at(100, b"fuzz");
    let cfg = PublisherConfig { frame_payload: 4096, backlog_bytes: 64 << 10, ..Default::default() };
    let mut enc = RegionEncoder::from_region(1, &region, cfg.encoder(0)).unwrap();
    let mut p = PublisherSession::new(1, 0, 0, cfg);
    let sub = Subscription::range(0, 20_000, 0).with(Part::Range { src: 30_000, len: 30_000, dst: 20_000 });
    // A resume point from the input: a position in the chain, or anywhere.
    let resume = data.first().map(|&b| Resume { epoch: 1, seq: b as u64 });
    let hello = Frame::Hello(Hello { mirror_id: 1, region_id: 0, check_hash: true, subscription: sub, resume });
    p.handle_frame(&hello, &enc, 0).unwrap();
    let now = Now::system();
    let mut rest = data;
    let mut out = Vec::new();
    while !rest.is_empty() {
        for _ in 0..4 {
            out.clear();
            if !p.poll_transmit(&enc, now, &mut out).unwrap() {
                break;
            }
        }
        match Frame::decode(rest) {
            Ok((f, n)) => {
                if p.handle_frame(&f, &enc, n).is_err() {
                    break; // the shell would disconnect here
                }
                rest = &rest[n..];
            }
            Err(_) => break,
        }
        region.write_at(rest.len() % 60_000, &[rest.len() as u8; 16]);
        enc.step(&region, 0).unwrap();
    }
});
