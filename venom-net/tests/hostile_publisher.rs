//! A hostile publisher scripted with raw quinn against a real `io::Mirror`:
//! the mirror backs off, gives up after `max_faults`, and the CPU it spends
//! on the attack stays bounded (measured with getrusage(RUSAGE_THREAD) on
//! the mirror's own runtime thread).

mod common;
use common::*;
use std::time::{Duration, Instant};
use venom_net::io::{Mirror, bind_endpoint};
use venom_net::proto::frame::{Frame, FrameType, HashFrame, Welcome, encode_single_update};
use venom_net::*;

/// Subscribed bytes the hostile publisher "snapshots" every time (1 MiB:
/// a real memcpy + rehash per resync on the mirror).
const SIZE: usize = 1 << 20;

#[derive(Clone, Copy)]
enum Attack {
    /// Answer the hello and every resync with a snapshot and a digest that never matches.
    BadDigests,
    /// Answer the hello with a snapshot, then send a malformed frame.
    Garbage,
}

/// Serves every connection with `attack` until the endpoint is dropped.
fn spawn_hostile(rt: &tokio::runtime::Runtime, dev: &Dev, attack: Attack) -> (std::net::SocketAddr, quinn::Endpoint) {
    let _enter = rt.enter();
    let ep = bind_endpoint(loopback(), Some(&dev.server())).unwrap();
    let addr = ep.local_addr().unwrap();
    let server = ep.clone();
    rt.spawn(async move {
        while let Some(inc) = server.accept().await {
            tokio::spawn(async move {
                let Ok(conn) = inc.await else { return };
                let Ok((mut send, mut recv)) = conn.accept_bi().await else { return };
                let mut buf = Vec::new();
                let mut seq = 2u64;
                loop {
                    // Decode whatever complete frames arrived.
                    let mut answer = 0usize;
                    loop {
                        match Frame::decode(&buf) {
                            Ok((f, n)) => {
                                if matches!(f.kind(), FrameType::Hello | FrameType::Resync) {
                                    answer += 1;
                                }
                                if f.kind() == FrameType::Hello {
                                    let mut w = Vec::new();
                                    let wf = Welcome {
                                        epoch: 1,
                                        owner_id: 0,
                                        region_id: 0,
                                        chunk_size: 4096,
                                        region_size: SIZE as u64,
                                    };
                                    Frame::Welcome(wf).encode(&mut w);
                                    if send.write_all(&w).await.is_err() {
                                        return;
                                    }
                                }
                                buf.drain(..n);
                            }
                            Err(Error::Truncated { .. }) => break,
                            Err(_) => return,
                        }
                    }
                    for _ in 0..answer {
                        seq += 2;
                        let mut out = encode_single_update(1, seq, 0, true, &[(0, &vec![seq as u8; SIZE])]);
                        match attack {
                            Attack::BadDigests => {
                                let h = HashFrame { region_id: 0, epoch: 1, seq, scheme: 1, digest: [0xEE; 32] };
                                Frame::Hash(h).encode(&mut out);
                            }
                            Attack::Garbage => out.extend_from_slice(b"XXgarbage"),
                        }
                        if send.write_all(&out).await.is_err() {
                            return;
                        }
                    }
                    match recv.read_chunk(64 << 10, true).await {
                        Ok(Some(c)) => buf.extend_from_slice(&c.bytes),
                        _ => return,
                    }
                }
            });
        }
    });
    (addr, ep)
}

/// CPU time (user + system) of the calling thread.
fn thread_cpu() -> Duration {
    // SAFETY: getrusage only writes the zeroed struct we pass; RUSAGE_THREAD
    // is valid on Linux.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_THREAD, &mut ru), 0);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Runs a mirror against `addr` on its own current-thread runtime (so the
/// thread's CPU time is the mirror's: session, quinn driver, hashing) until
/// it fails, then `linger` longer. Returns (mirror, mirror CPU, wall time,
/// error from `updates()`).
fn run_mirror(
    addr: std::net::SocketAddr,
    dev: &Dev,
    cfg: MirrorConfig,
    linger: Duration,
) -> (Mirror, Duration, Duration, Error) {
    let tls = dev.client();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let local = MemRegion::new(SIZE, 4096);
        let cpu0 = thread_cpu();
        let t0 = Instant::now();
        let (m, err) = rt.block_on(async {
            let m = Mirror::connect(addr, "localhost", Subscription::whole(), tls, Box::new(local), cfg).unwrap();
            let mut updates = m.updates();
            let err = tokio::time::timeout(Duration::from_secs(20), async {
                loop {
                    if let Err(e) = updates.next().await {
                        return e;
                    }
                }
            })
            .await
            .expect("the mirror did not give up within 20 s");
            tokio::time::sleep(linger).await; // nothing may happen any more
            (m, err)
        });
        (m, thread_cpu() - cpu0, t0.elapsed(), err)
    })
    .join()
    .unwrap()
}

#[test]
fn digest_mismatch_loop_backs_off_caps_and_bounds_cpu() {
    let rt = runtime();
    let dev = Dev::new();
    let (addr, _ep) = spawn_hostile(&rt, &dev, Attack::BadDigests);
    let cfg = MirrorConfig {
        check_hash: true,
        resync_retry: Duration::from_millis(100), // the first mismatch asks for a repair: ignored here
        resync_backoff_min: Duration::from_millis(20),
        resync_backoff_max: Duration::from_secs(1),
        max_faults: 6,
        ..Default::default()
    };
    let (m, cpu, wall, err) = run_mirror(addr, &dev, cfg, Duration::from_millis(300));
    let st = m.stats();
    assert!(matches!(err, Error::MirrorFailed(MirrorFailure::DigestMismatches(6))), "{err:?}");
    assert_eq!(st.failure, Some(MirrorFailure::DigestMismatches(6)), "{st:?}");
    assert_eq!(st.hash_mismatches, 6);
    assert_eq!(st.repairs_requested, 1, "a chunk repair first, then snapshots: {st:?}");
    assert_eq!(st.resyncs_requested, 5, "one resync per mismatch but the last: {st:?}");
    assert_eq!(st.connections, 1, "a failed mirror does not reconnect");
    assert!(matches!(m.wait_for_update(Duration::from_secs(1)), Err(Error::MirrorFailed(_))));
    // Backoff 20 ms doubling, jittered to >= 50 %: the five resyncs take >= 10+20+40+80 ms.
    assert!(wall >= Duration::from_millis(150 + 300), "wall {wall:?}");
    // The documented bound: at most half a core over the attack window (the
    // whole loop is max_faults snapshots of 1 MiB, a few ms of CPU).
    let share = cpu.as_secs_f64() / wall.as_secs_f64();
    eprintln!("hostile digests: mirror cpu {cpu:?} over {wall:?} ({:.1} % of a core)", share * 100.0);
    assert!(share < 0.5, "mirror spent {:.0} % of a core", share * 100.0);
}

#[test]
fn garbage_after_snapshots_backs_off_and_caps_reconnects() {
    let rt = runtime();
    let dev = Dev::new();
    let (addr, _ep) = spawn_hostile(&rt, &dev, Attack::Garbage);
    let cfg = MirrorConfig { max_faults: 4, ..Default::default() };
    let (m, cpu, wall, err) = run_mirror(addr, &dev, cfg, Duration::from_millis(300));
    let st = m.stats();
    assert!(matches!(err, Error::MirrorFailed(MirrorFailure::ProtocolViolations(4))), "{err:?}");
    assert_eq!(st.connections, 4, "{st:?}");
    assert!(m.last_error().is_some_and(|e| e.contains("mirror failed")));
    // Reconnect backoff 20 ms doubling (jittered >= 50 %): >= 10+20+40 ms before the 4th connection.
    assert!(wall >= Duration::from_millis(70 + 300), "wall {wall:?}");
    let share = cpu.as_secs_f64() / wall.as_secs_f64();
    eprintln!("hostile garbage: mirror cpu {cpu:?} over {wall:?} ({:.1} % of a core)", share * 100.0);
    assert!(share < 0.5, "mirror spent {:.0} % of a core", share * 100.0);
}
