//! Policy text and hellos from a hostile peer: parsing returns a policy or a
//! typed error; a decoded hello is authorized (or refused with a typed
//! error) through the publisher session's hello path, never a panic; an
//! authorized subscription lies inside a policy that grants it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use venom_net::proto::frame::Frame;
use venom_net::proto::policy::{PeerId, Policy};
use venom_net::proto::encoder::RegionEncoder;
use venom_net::{Error, MemRegion, PublisherConfig, PublisherSession};

fuzz_target!(|data: &[u8]| {
    // `policy text \0 hello frame`
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let text = String::from_utf8_lossy(&data[..split]);
    let policy = match Policy::parse(&text) {
        Ok(p) => p,
        Err(Error::PolicySyntax { .. }) => Policy::default(),
        Err(e) => panic!("untyped policy error {e:?}"),
    };
    let frame = &data[(split + 1).min(data.len())..];
    let Ok((Frame::Hello(hello), _)) = Frame::decode(frame) else { return };
    let region = MemRegion::new(64 << 10, 4096);
    let cfg = PublisherConfig { policy: Arc::new(policy.clone()), ..Default::default() };
    let enc = RegionEncoder::from_region(1, &region, cfg.encoder(0)).unwrap();
    for peer in [PeerId::Anonymous, PeerId::named("m"), PeerId::Certificate { name: None, spki: [0xab; 32] }] {
        let mut s = PublisherSession::new(1, 0, 0, cfg.clone());
        s.set_peer(peer.clone());
        let r = s.handle_frame(&Frame::Hello(hello.clone()), &enc, frame.len());
        if let (0, Ok(sub)) = (hello.region_id, hello.subscription.compile(64 << 10)) {
            let allowed = policy.authorize(&peer, &sub).is_ok();
            assert_eq!(allowed, !matches!(r, Err(Error::Unauthorized(_))), "session and policy disagree");
            if allowed {
                assert!(policy.admits(&peer));
            }
        }
    }
});
