//! Extreme arguments never panic: timeouts of `Duration::MAX`/`ZERO`, sizes
//! and offsets of 0 and near `usize::MAX`, absurd configurations. Each gets a
//! typed error or a sane (saturating) meaning. Regression tests for the
//! panics reported in issue 13 come first, then a proptest over the API.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use venom_core::channel::{ChannelConfig, DaemonChannel, ShellChannel};
use venom_core::{
    CmdQueue, Deadline, Error, QueueConfig, RegionConfig, Segment, SegmentKind, SeqReader, SeqWriter, testkit,
};

/// Issue 13: `wait_for_change(v, Duration::MAX)` panicked with "overflow
/// when adding duration to instant". It now waits (saturating) until the
/// change.
#[test]
fn wait_for_change_duration_max() {
    let name = testkit::unique_name("xarg-wfc");
    let mut w = SeqWriter::create(&name, RegionConfig::new(64)).unwrap();
    let r = SeqReader::open(&name).unwrap();
    let v = r.version();
    // Already changed: returns at once.
    assert_eq!(r.wait_for_change(v.wrapping_add(2), Duration::MAX).unwrap(), v);
    let done = Arc::new(AtomicBool::new(false));
    let d2 = done.clone();
    let writer = std::thread::spawn(move || {
        let deadline = Deadline::after(Duration::from_secs(10));
        while !d2.load(Ordering::SeqCst) && !deadline.is_past() {
            w.write(&[1]).unwrap();
            std::thread::sleep(Duration::from_millis(1));
        }
        w
    });
    let got = r.wait_for_change(v, Duration::MAX).unwrap();
    assert_ne!(got, v);
    done.store(true, Ordering::SeqCst);
    writer.join().unwrap().unlink().unwrap();
}

/// Issue 13: `Segment::builder(..).init_timeout(Duration::MAX).open()`
/// panicked the same way.
#[test]
fn init_timeout_duration_max() {
    let name = testkit::unique_name("xarg-init");
    let seg = Segment::builder(&name, SegmentKind::RAW).body_len(64).init_timeout(Duration::MAX).create().unwrap();
    let opened = Segment::builder(&name, SegmentKind::RAW).init_timeout(Duration::MAX).open().unwrap();
    assert_eq!(opened.body_len(), 64);
    let again = Segment::builder(&name, SegmentKind::RAW).init_timeout(Duration::MAX).create();
    assert!(matches!(again, Err(Error::AlreadyExists { .. })));
    seg.unlink().unwrap();
    let gone = Segment::builder(&name, SegmentKind::RAW).init_timeout(Duration::MAX).open();
    assert!(matches!(gone, Err(Error::NotFound(_))));
}

/// Every other wait with a caller-chosen timeout: `Duration::MAX` where it
/// returns promptly, `ZERO` as "try once".
#[test]
fn other_waits_accept_duration_max() {
    let name = testkit::unique_name("xarg-chan");
    let mut daemon = DaemonChannel::create(&name, ChannelConfig::default()).unwrap();
    assert!(matches!(daemon.recv_command(Duration::ZERO), Err(Error::Timeout(_))));
    let stop = daemon.stop_handle();
    let server = std::thread::spawn(move || daemon.run(|_, cmd| cmd.to_vec()));
    let mut shell = ShellChannel::connect(&name).unwrap();
    shell.set_timeout(Duration::MAX);
    let mut buf = [0u8; 8];
    assert_eq!(shell.request_timeout(b"hi", &mut buf, Duration::MAX).unwrap(), 2);
    assert_eq!(shell.request(b"hey", &mut buf).unwrap(), 3);
    shell.reconnect().unwrap();
    stop.stop();
    server.join().unwrap().unwrap();

    let qname = testkit::unique_name("xarg-q");
    let q = CmdQueue::create(&qname, QueueConfig::default()).unwrap();
    let mut p = q.producer().unwrap();
    let mut c = q.consumer().unwrap();
    p.push(b"x", Duration::MAX).unwrap();
    let mut out = Vec::new();
    c.pop(&mut out, Duration::MAX).unwrap();
    assert!(matches!(c.pop(&mut out, Duration::ZERO), Err(Error::Timeout(_))));
    q.unlink().unwrap();

    assert!(!Deadline::after(Duration::MAX).is_past());
    assert!(testkit::wait_for(Duration::MAX, || true));
}

fn any_size() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(0),
        Just(1),
        Just(7),
        Just(64),
        Just(4096),
        Just(1 << 47),
        Just(usize::MAX / 2),
        Just(usize::MAX - 1),
        Just(usize::MAX),
        0usize..70_000,
    ]
}

/// Sizes for configurations: tiny, or too large to be accepted at all (so a
/// test never creates a huge segment).
fn config_size() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(0),
        Just(1),
        Just(2),
        Just(3),
        Just(64),
        Just(1 << 47),
        Just(usize::MAX / 2),
        Just(usize::MAX),
        0usize..200
    ]
}

fn any_duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::from_nanos(1)),
        Just(Duration::from_millis(1)),
        Just(Duration::from_secs(u64::MAX)),
        Just(Duration::MAX),
    ]
}

fn quick_duration() -> impl Strategy<Value = Duration> {
    prop_oneof![Just(Duration::ZERO), Just(Duration::from_nanos(1)), Just(Duration::from_millis(1))]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn segment_builder_extremes(body in any_size(), t in any_duration(), mode in any::<u32>()) {
        let name = testkit::unique_name("xarg-seg");
        match Segment::builder(&name, SegmentKind::RAW).body_len(body).mode(mode).init_timeout(t).create() {
            Ok(seg) => {
                prop_assert_eq!(seg.body_len(), body);
                let o = Segment::builder(&name, SegmentKind::RAW).init_timeout(t).open().unwrap();
                prop_assert_eq!(o.body_len(), body);
                seg.unlink().unwrap();
            }
            Err(Error::InvalidConfig(_)) => prop_assert!(body > venom_core::MAX_SEGMENT_LEN / 2),
            Err(e) => prop_assert!(false, "unexpected {e}"),
        }
    }

    #[test]
    fn region_extremes(
        size in prop_oneof![Just(0usize), Just(1), Just(7), Just(64), Just(4096), Just(65_537), Just(1 << 41), Just(usize::MAX)],
        chunk in prop_oneof![Just(0usize), Just(1), Just(63), Just(64), Just(4096), Just(1 << 20), Just(1 << 63), Just(usize::MAX)],
        offset in any_size(),
        len in prop_oneof![Just(0usize), Just(1), Just(8), 0usize..5000],
        index in any_size(),
        since in prop_oneof![Just(0u64), Just(1), Just(u64::MAX), any::<u64>()],
        t in any_duration(),
        wait in quick_duration(),
    ) {
        let name = testkit::unique_name("xarg-region");
        let mut w = match SeqWriter::create(&name, RegionConfig::new(size).chunk_size(chunk)) {
            Ok(w) => w,
            Err(Error::InvalidConfig(_)) => return Ok(()),
            Err(e) => return Err(TestCaseError::fail(format!("unexpected {e}"))),
        };
        let mut r = SeqReader::open(&name).unwrap();
        r.region_mut().set_read_timeout(t);
        let mut buf = vec![0u8; len];
        let fits = offset.checked_add(len).is_some_and(|e| e <= w.size());
        match r.read_at(offset, &mut buf) {
            Ok(_) => prop_assert!(fits),
            Err(Error::OutOfBounds { .. }) => prop_assert!(!fits),
            Err(e) => prop_assert!(false, "read_at: {e}"),
        }
        match w.write_at(offset, &buf) {
            Ok(_) => prop_assert!(fits),
            Err(Error::OutOfBounds { .. }) => prop_assert!(!fits),
            Err(e) => prop_assert!(false, "write_at: {e}"),
        }
        let _ = r.read_pod::<u64>(offset);
        let _ = r.read_chunk(index, &mut buf);
        let _ = w.write_with(|x| { x.fill(offset, len, 1)?; x.store(offset, &1u64) });
        let v = r.version();
        // `since` differs from the version: returns at once even with MAX.
        let since = if since == v { v.wrapping_add(2) } else { since };
        prop_assert_eq!(r.wait_for_change(since, t).unwrap(), v);
        prop_assert!(matches!(r.wait_for_change(v, wait), Err(Error::Timeout(_))));
        let mut snap = venom_core::ChunkSnapshot::default();
        r.snapshot_since(since, &mut snap).unwrap();
        w.unlink().unwrap();
    }

    #[test]
    fn queue_and_channel_config_extremes(
        a in config_size(), b in config_size(), c in config_size(), d in config_size(), e in config_size(),
        t in quick_duration(),
    ) {
        let qcfg = QueueConfig { lanes: a, depth: b, max_msg_size: c, ..QueueConfig::default() };
        let _ = CmdQueue::layout_len(&qcfg);
        let name = testkit::unique_name("xarg-cq");
        if let Ok(q) = CmdQueue::create(&name, qcfg) {
            let mut p = q.producer().unwrap();
            let mut cons = q.consumer().unwrap();
            let msg = vec![0u8; d.min(4096)];
            let _ = p.push(&msg, t);
            let mut out = Vec::new();
            let _ = cons.pop(&mut out, t);
            q.unlink().unwrap();
        }
        let ccfg = ChannelConfig { data_size: a, cmd_slots: b, max_clients: c, max_msg_size: d, chunk_size: e, ..ChannelConfig::default() };
        let name = testkit::unique_name("xarg-ch");
        if let Ok(mut daemon) = DaemonChannel::create(&name, ccfg) {
            let _ = daemon.recv_command(t);
            if let Ok(mut shell) = ShellChannel::connect(&name) {
                let mut buf = vec![0u8; 64];
                let _ = shell.send_command(&[0u8; 8]);
                let _ = shell.recv_response_timeout(&mut buf, t);
                let _ = shell.read_data(&mut buf);
            }
            let _ = daemon.write_data(&vec![0u8; a.min(4096)]);
        }
        let _ = Segment::unlink_name(&name);
    }
}
