//! A segment file truncated while another process has it mapped: the reader
//! gets `Error::Truncated` instead of dying by SIGBUS, for every kind in
//! venom-core (region, channel, command queue). Faults outside venom's
//! mappings still kill the process as before.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::Duration;

use venom_core::channel::{ChannelConfig, DaemonChannel, ShellChannel};
use venom_core::{
    CmdQueue, Deadline, Error, QueueConfig, RegionConfig, Segment, SegmentKind, SeqReader, SeqWriter, testkit,
};

const SEC: Duration = Duration::from_secs(1);

/// Runs `op` until it reports `Truncated` (the child then exits 0); any
/// other error, or no error within 20 s, fails the child. Signals `ready`
/// after 50 successful operations, so the parent truncates a reader that is
/// busy reading valid data.
fn read_until_truncated(ready: &Path, mut op: impl FnMut() -> Result<(), Error>) {
    for _ in 0..50 {
        match op() {
            Ok(()) | Err(Error::Timeout(_)) => {}
            Err(e) => panic!("before the truncation: {e}"),
        }
    }
    std::fs::write(ready, b"").unwrap();
    let deadline = Deadline::after(20 * SEC);
    let mut ops = 0u64;
    while !deadline.is_past() {
        ops += 1;
        match op() {
            Err(Error::Truncated { .. }) => {
                eprintln!("reader: truncation reported after {ops} operations");
                // Every later operation keeps saying so.
                assert!(matches!(op(), Err(Error::Truncated { .. })));
                return;
            }
            Ok(()) | Err(Error::Timeout(_)) => {}
            Err(e) => panic!("unexpected error before the truncation was reported: {e}"),
        }
    }
    panic!("the truncation was never reported");
}

#[test]
fn child_region_reader() {
    let Some(name) = testkit::child_arg("region-reader") else { return };
    let r = SeqReader::open(&name).unwrap();
    let mut buf = vec![0u8; r.size()];
    read_until_truncated(&testkit::marker_path(&name, "ready"), || r.read_at(0, &mut buf).map(drop));
}

#[test]
fn region_truncated_under_reader() {
    for (what, len) in testkit::shrinks() {
        let name = testkit::unique_name(&format!("trunc-region-{what}"));
        let mut w = SeqWriter::create(&name, RegionConfig::new(1 << 20)).unwrap();
        w.write_at(0, &[7u8; 4096]).unwrap();
        let mut kid = testkit::spawn_child("child_region_reader", "region-reader", &name).unwrap();
        testkit::truncate_under(&name, &mut kid, len);
        // The writer's own mapping is damaged too: its next write touches the
        // lost pages (a fault the handler repairs) and reports it.
        let mut lost = false;
        for off in (0..w.size()).step_by(4096) {
            if let Err(Error::Truncated { .. }) = w.write_at(off, &[1]) {
                lost = true;
                break;
            }
        }
        assert!(lost, "writer never noticed the truncation");
        w.unlink().unwrap();
    }
}

#[test]
fn child_shell_reader() {
    let Some(name) = testkit::child_arg("shell-reader") else { return };
    let mut shell = ShellChannel::connect(&name).unwrap();
    shell.set_timeout(SEC);
    let mut data = vec![0u8; 1 << 20];
    let mut resp = [0u8; 64];
    read_until_truncated(&testkit::marker_path(&name, "ready"), || {
        shell.read_data(&mut data)?;
        shell.request(b"ping", &mut resp).map(drop)
    });
}

#[test]
fn channel_truncated_under_client() {
    for (what, len) in testkit::shrinks() {
        let name = testkit::unique_name(&format!("trunc-chan-{what}"));
        let cfg = ChannelConfig { data_size: 1 << 20, ..Default::default() };
        let mut daemon = DaemonChannel::create(&name, cfg).unwrap();
        daemon.write_data(&vec![3u8; 1 << 20]).unwrap();
        let stop = daemon.stop_handle();
        let server = std::thread::spawn(move || daemon.run(|_, cmd| cmd.to_vec()));
        let mut kid = testkit::spawn_child("child_shell_reader", "shell-reader", &name).unwrap();
        testkit::truncate_under(&name, &mut kid, len);
        stop.stop();
        // The daemon either stops normally or reports the truncation itself.
        match server.join().unwrap() {
            Ok(()) | Err(Error::Truncated { .. }) => {}
            Err(e) => panic!("daemon: {e}"),
        }
        let _ = Segment::unlink_name(&name); // the daemon may have unlinked it on drop
    }
}

#[test]
fn child_queue_consumer() {
    let Some(name) = testkit::child_arg("queue-consumer") else { return };
    let q = CmdQueue::open(&name).unwrap();
    let mut c = q.consumer().unwrap();
    let mut buf = Vec::new();
    read_until_truncated(&testkit::marker_path(&name, "ready"), || {
        c.pop(&mut buf, Duration::from_millis(10)).map(drop)
    });
}

#[test]
fn cmd_queue_truncated_under_consumer() {
    // Not `half`: a truncation is only seen when the process touches a lost
    // page, and this consumer only touches lane 0's slot lines and overflow
    // area, which sit in the first half of the segment. Keeping one page
    // (the header) cuts into them.
    let shrinks: [(&str, testkit::Shrink); 2] = [("zero", |_| 0), ("page", |_| 4096)];
    for (what, len) in shrinks {
        let name = testkit::unique_name(&format!("trunc-cmdq-{what}"));
        let q = CmdQueue::create(&name, QueueConfig::default()).unwrap();
        let mut p = q.producer().unwrap();
        let mut kid = testkit::spawn_child("child_queue_consumer", "queue-consumer", &name).unwrap();
        let ready = testkit::marker_path(&name, "ready");
        assert!(testkit::wait_for(10 * SEC, || ready.exists()));
        // Keep the consumer busy reading the whole ring.
        for _ in 0..1000 {
            let _ = p.try_push(&[5u8; 64]);
        }
        testkit::truncate_under(&name, &mut kid, len);
        q.unlink().unwrap();
    }
}

#[test]
fn child_genuine_fault() {
    let Some(what) = testkit::child_arg("genuine-fault") else { return };
    testkit::disable_core_dumps();
    let (what, prior) = what.split_once(',').unwrap_or((what.as_str(), "none"));
    install_prior_handler(prior);
    // Install venom's handler by mapping a segment.
    let name = testkit::unique_name("trunc-genuine");
    let seg = Segment::builder(&name, SegmentKind::RAW).body_len(4096).create().unwrap();
    seg.unlink().unwrap();
    assert!(seg.is_truncation_protected());
    match what {
        "sigbus" => {
            // A shared file mapping of our own, not venom's, shrunk under us.
            let path = std::env::temp_dir().join(format!("venom-genuine-{}", std::process::id()));
            let f = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
            f.set_len(4096).unwrap();
            let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
            // SAFETY: a fresh shared mapping of a 4 KiB file we own.
            let p = unsafe { libc::mmap(core::ptr::null_mut(), 4096, libc::PROT_READ, libc::MAP_SHARED, fd, 0) };
            assert_ne!(p, libc::MAP_FAILED);
            f.set_len(0).unwrap();
            let _ = std::fs::remove_file(&path);
            // SAFETY: deliberately faults (SIGBUS): the file is now empty.
            let v = unsafe { core::ptr::read_volatile(p as *const u8) };
            eprintln!("survived a genuine SIGBUS (read {v})");
        }
        "sigsegv" => {
            // SAFETY: deliberately faults (SIGSEGV): nothing is mapped at 8.
            let v = unsafe { core::ptr::read_volatile(8 as *const u8) };
            eprintln!("survived a genuine SIGSEGV (read {v})");
        }
        "own-truncation" => {
            // With an application handler installed first, venom still
            // handles faults in its own mappings itself.
            let rname = testkit::unique_name("trunc-own");
            let w = SeqWriter::create(&rname, RegionConfig::new(1 << 16)).unwrap();
            testkit::truncate_segment(&rname, 0).unwrap();
            let mut buf = vec![0u8; 1 << 16];
            assert!(matches!(w.read_at(0, &mut buf), Err(Error::Truncated { .. })));
            w.unlink().unwrap();
        }
        other => panic!("unknown fault {other}"),
    }
    std::process::exit(0);
}

extern "C" fn prior_siginfo(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(42) };
}

extern "C" fn prior_plain(_: libc::c_int) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(43) };
}

/// Installs a SIGBUS disposition before venom's own handler exists.
fn install_prior_handler(prior: &str) {
    let (handler, flags) = match prior {
        "none" => return,
        "siginfo" => (prior_siginfo as *const () as usize, libc::SA_SIGINFO),
        "plain" => (prior_plain as *const () as usize, 0),
        "ignore" => (libc::SIG_IGN, 0),
        other => panic!("unknown prior handler {other}"),
    };
    // SAFETY: a valid sigaction for SIGBUS, set before any venom mapping.
    unsafe {
        let mut sa: libc::sigaction = core::mem::zeroed();
        sa.sa_sigaction = handler;
        sa.sa_flags = flags;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGBUS, &sa, core::ptr::null_mut()), 0);
    }
}

/// venom's SIGBUS handler chains anything outside its mappings: a genuine
/// fault still kills the process by the same signal as without venom, and a
/// handler installed before venom's still runs (SA_SIGINFO or plain); an
/// ignored SIGBUS cannot hide a real fault, as without venom.
#[test]
fn unrelated_faults_behave_as_before() {
    let cases = [
        ("sigbus", Err(libc::SIGBUS)),
        ("sigsegv", Err(libc::SIGSEGV)),
        ("sigbus,siginfo", Ok(42)),
        ("sigbus,plain", Ok(43)),
        ("sigbus,ignore", Err(libc::SIGBUS)),
        ("own-truncation,siginfo", Ok(0)),
    ];
    for (what, expect) in cases {
        let mut kid = testkit::spawn_child("child_genuine_fault", "genuine-fault", what).unwrap();
        let status = kid.wait_timeout(30 * SEC).unwrap();
        match expect {
            Err(sig) => assert_eq!(status.signal(), Some(sig), "{what}: {status:?}"),
            Ok(code) => assert_eq!(status.code(), Some(code), "{what}: {status:?}"),
        }
    }
}

/// In-process: a truncated mapping reports `Truncated` on every read path
/// and unregisters on drop.
#[test]
fn in_process_truncation_is_reported() {
    let before = venom_core::truncation::registered_mappings();
    let name = testkit::unique_name("trunc-inproc");
    let mut w = SeqWriter::create(&name, RegionConfig::new(64 << 10)).unwrap();
    w.write_at(0, &[9u8; 64 << 10]).unwrap();
    let r = SeqReader::open(&name).unwrap();
    testkit::truncate_segment(&name, 0).unwrap();
    let mut buf = vec![0u8; 64 << 10];
    assert!(matches!(r.read_at(0, &mut buf), Err(Error::Truncated { .. })));
    assert!(matches!(r.read_pod::<u64>(0), Err(Error::Truncated { .. })));
    assert!(matches!(r.wait_for_change(0, Duration::ZERO), Err(Error::Truncated { .. })));
    assert!(matches!(r.segment().check_mapped(), Err(Error::Truncated { .. })));
    // The writer's mapping is separate and still intact until it touches it.
    let _ = w.write(&[1]);
    assert!(matches!(w.write(&[1]), Err(Error::Truncated { .. })));
    w.unlink().unwrap();
    drop((r, w));
    assert!(venom_core::truncation::registered_mappings() <= before.max(1) + 8);
}

#[test]
fn child_blocked_waiter() {
    let Some(name) = testkit::child_arg("blocked-waiter") else { return };
    let r = SeqReader::open(&name).unwrap();
    let v = r.version();
    std::fs::write(testkit::marker_path(&name, "ready"), b"").unwrap();
    // Blocks "forever": only the truncation can end it.
    match r.wait_for_change(v, Duration::MAX) {
        Err(Error::Truncated { .. }) => {}
        other => panic!("expected Truncated, got {other:?}"),
    }
}

/// A reader asleep in `wait_for_change(_, Duration::MAX)` is woken by the
/// truncation (within the futex slice) and told why.
#[test]
fn blocked_waiter_learns_of_truncation() {
    let name = testkit::unique_name("trunc-blocked");
    let w = SeqWriter::create(&name, RegionConfig::new(4096)).unwrap();
    let mut kid = testkit::spawn_child("child_blocked_waiter", "blocked-waiter", &name).unwrap();
    testkit::truncate_under(&name, &mut kid, |_| 0);
    w.unlink().unwrap();
}

#[test]
fn child_blocked_consumer() {
    let Some(name) = testkit::child_arg("blocked-consumer") else { return };
    let q = CmdQueue::open(&name).unwrap();
    let mut c = q.consumer().unwrap();
    std::fs::write(testkit::marker_path(&name, "ready"), b"").unwrap();
    let mut buf = Vec::new();
    match c.pop(&mut buf, Duration::MAX) {
        Err(Error::Truncated { .. }) => {}
        other => panic!("expected Truncated, got {other:?}"),
    }
}

/// A command-queue consumer parked in `pop(_, Duration::MAX)` notices at its
/// next liveness check.
#[test]
fn blocked_consumer_learns_of_truncation() {
    let name = testkit::unique_name("trunc-blocked-cq");
    let q = CmdQueue::create(&name, QueueConfig::default()).unwrap();
    let mut kid = testkit::spawn_child("child_blocked_consumer", "blocked-consumer", &name).unwrap();
    testkit::truncate_under(&name, &mut kid, |_| 0);
    q.unlink().unwrap();
}
