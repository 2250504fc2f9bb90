//! Extreme arguments never panic in venom-net's public API: publisher and
//! mirror tuning at 0 / `usize::MAX` / `Duration::MAX`, subscriptions with
//! offsets near `u64::MAX`, region accesses past the end. Each gets a typed
//! error or a sane result.

mod common;

use std::time::{Duration, Instant};

use common::*;
use proptest::prelude::*;
use venom_net::proto::frame::Frame;
use venom_net::*;

/// `Mirror::wait_until(Duration::MAX, ..)` used to compute `Instant::now()
/// + timeout` up front and panic; it now waits as long as it takes.
#[test]
fn mirror_wait_accepts_duration_max() {
    runtime().block_on(async {
        let dev = Dev::new();
        let region = MemRegion::new(4096, 1024);
        region.write_at(0, &[1; 16]);
        let p = publish(&region, dev.server(), PublisherConfig::default()).await;
        let local = MemRegion::new(4096, 1024);
        let m =
            std::sync::Arc::new(mirror(p.local_addr().unwrap(), Subscription::whole(), dev.client(), &local, false));
        let m2 = m.clone();
        // Blocking call: off the tokio workers.
        let first = tokio::task::spawn_blocking(move || m2.wait_until(Duration::MAX, |_, _| true)).await.unwrap();
        assert!(first.is_ok(), "{first:?}");
        assert!(m.wait_until(Duration::ZERO, |_, _| false).is_err(), "ZERO tries once");
        drop(m);
        p.close().await;
    });
}

fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(0),
        Just(1),
        Just(2),
        Just(700),
        Just(1 << 20),
        Just(usize::MAX / 2),
        Just(usize::MAX),
        0usize..5000
    ]
}

fn offset() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0), Just(1), Just(u64::MAX), Just(u64::MAX - 1), Just(u64::MAX / 2), Just(1 << 63), 0u64..20_000]
}

fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::from_nanos(1)),
        Just(Duration::from_millis(5)),
        Just(Duration::MAX)
    ]
}

fn subscription() -> impl Strategy<Value = Subscription> {
    prop_oneof![
        Just(Subscription::whole()),
        (offset(), offset(), offset()).prop_map(|(s, l, d)| Subscription::range(s, l, d)),
        (offset(), offset(), offset(), offset(), offset())
            .prop_map(|(b, d0, d1, r0, r1)| { Subscription::slice(b, Dtype::F64, &[d0, d1], &[r0..r1, 0..d1], 0) }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Compiling and mapping subscriptions with offsets near `u64::MAX`.
    #[test]
    fn subscription_extremes(sub in subscription(), region in offset(), virt in offset(), len in offset()) {
        if let Ok(c) = sub.compile(region) {
            prop_assert!(c.total_len() <= region);
            let _ = c.dst_end();
            let _ = c.map_virtual(virt, len, |_, _, _| {});
        }
    }

    /// Region reads and waits at the extremes.
    #[test]
    fn mem_region_extremes(off in size(), len in 0usize..3000, t in duration(), since in any::<u64>()) {
        let mut r = MemRegion::new(2048, 256);
        let mut buf = vec![0u8; len];
        let fits = off.checked_add(len).is_some_and(|e| e <= 2048);
        prop_assert_eq!(RegionSink::read_at(&r, off, &mut buf).is_ok(), fits);
        prop_assert_eq!(r.apply(&[(off, &buf)]).is_ok(), fits);
        let v = RegionSource::version(&r);
        // A version other than the current one returns at once, even with MAX.
        let since = if since == v { v.wrapping_add(2) } else { since };
        prop_assert_eq!(RegionSource::wait_for_change(&r, since, t).unwrap(), v);
        prop_assert!(RegionSource::wait_for_change(&r, v, Duration::ZERO).is_err());
    }

    /// A publisher and a mirror with extreme tuning exchange frames for a
    /// bounded number of ticks without panicking.
    #[test]
    fn session_config_extremes(
        max_in_flight in size(), max_updates in size(), frame_payload in size(), merge_gap in size(),
        max_mirrors in size(), hash_budget in size(), ack in prop_oneof![Just(None), duration().prop_map(Some)],
        hash_interval in duration(), resync in duration(), check_hash in any::<bool>(),
        sub in prop_oneof![Just(Subscription::whole()), (0u64..3000, 0u64..3000).prop_map(|(s, l)| Subscription::range(s, l, 0))],
        far in prop_oneof![Just(Duration::ZERO), Just(Duration::from_secs(1 << 40)), Just(Duration::MAX)],
    ) {
        let cfg = PublisherConfig {
            max_in_flight, max_in_flight_updates: max_updates, ack_timeout: ack, frame_payload, merge_gap,
            hash_interval, hash_budget_chunks: hash_budget, max_mirrors, ..Default::default()
        };
        let region = MemRegion::new(4096, 512);
        let mut local = MemRegion::new(4096, 512);
        let mut enc = RegionEncoder::from_region(7, &region, cfg.encoder(0)).unwrap();
        let mut publ = PublisherSession::new(7, 1, 0, cfg);
        let mut mirror = MirrorSession::new(MirrorConfig { check_hash, resync_retry: resync, ..Default::default() }, sub);
        mirror.connect();
        let t0 = Instant::now();
        for step in 0..40u64 {
            region.write_at((step as usize * 97) % 4000, &[step as u8; 64]);
            // A clock far in the future, where representable.
            let mono = if step == 39 { t0.checked_add(far).unwrap_or(t0) } else { t0 + Duration::from_millis(step) };
            let now = Now { mono, wall_ns: step * 1_000_000 };
            enc.step(&region, now.wall_ns).unwrap();
            publ.handle_timeout(now.mono);
            mirror.handle_timeout(now.mono);
            let mut to_mirror = Vec::new();
            for _ in 0..8 {
                let mut f = Vec::new();
                match publ.poll_transmit(&enc, now, &mut f) {
                    Ok(true) => to_mirror.push(f),
                    Ok(false) | Err(_) => break,
                }
            }
            let mut to_pub = Vec::new();
            let mut f = Vec::new();
            while mirror.poll_transmit(&mut f) {
                to_pub.push(std::mem::take(&mut f));
            }
            for f in to_mirror {
                if let Ok((frame, n)) = Frame::decode(&f) {
                    let _ = mirror.handle_frame(&frame, &mut local, n, now);
                }
            }
            for f in to_pub {
                if let Ok((frame, n)) = Frame::decode(&f) {
                    let _ = publ.handle_frame(&frame, &enc, n);
                }
            }
            let _ = publ.stats(now.mono, step);
        }
    }
}
