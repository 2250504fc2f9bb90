//! C programs built against `venom.h` + `libvenom.a`, run as separate
//! processes against Rust peers on the same segments.

mod c_programs;

use std::time::Duration;

use c_programs::{build, finish, spawn, unique, wait_for_line};
use venom_collections::{KvCache, KvConfig};
use venom_core::{ChannelConfig, DaemonChannel, Error, RegionConfig, SeqWriter, ShellChannel};

const LIMIT: Duration = Duration::from_secs(60);

/// C shell ↔ Rust daemon: the C client reads the published data and gets
/// the Rust handler's replies.
#[test]
fn c_shell_talks_to_rust_daemon() {
    let exe = build("shell_client");
    let name = unique("c-shell");
    let mut daemon = DaemonChannel::create(&name, ChannelConfig::default()).unwrap();
    daemon.write_data(b"hello from Rust").unwrap();
    let stop = daemon.stop_handle();
    let server = std::thread::spawn(move || {
        let mut pings = 0;
        daemon
            .run(|_, cmd| {
                if cmd == b"big" {
                    return vec![b'x'; 1000];
                }
                let text = std::str::from_utf8(cmd).unwrap();
                pings += 1;
                text.replace("ping", "pong").into_bytes()
            })
            .unwrap();
        pings
    });
    let out = finish(spawn(&exe, &[&name, "200"]), LIMIT);
    stop.stop();
    // 200 synchronous requests + 5 pipelined ones.
    assert_eq!(server.join().unwrap(), 205);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("data: hello from Rust"), "{stdout}");
    assert!(stdout.contains("requests: 200"), "{stdout}");
}

/// Rust shell ↔ C daemon: the Rust client reads the C daemon's data and
/// gets its replies, then tells it to quit.
#[test]
fn rust_shell_talks_to_c_daemon() {
    let exe = build("daemon");
    let name = unique("c-daemon");
    let mut child = spawn(&exe, &[&name]);
    wait_for_line(&mut child, "READY");
    let mut shell = ShellChannel::connect(&name).unwrap();
    let mut buf = [0u8; 600];
    let n = shell.read_data(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello from C");
    // The two parts were published as one version, after the greeting.
    let mut a = [0u8; 6];
    let mut b = [0u8; 6];
    let va = shell.data().read_at(100, &mut a).unwrap();
    let vb = shell.data().read_at(200, &mut b).unwrap();
    assert_eq!((&a, &b, va), (b"part-a", b"part-b", vb));
    assert_eq!(va, shell.data().version());
    for i in 0..100 {
        let cmd = format!("cmd {i}");
        let n = shell.request_timeout(cmd.as_bytes(), &mut buf, Duration::from_secs(10)).unwrap();
        assert_eq!(&buf[..n], format!("C:{cmd}").as_bytes());
    }
    // Pipelined requests are answered in order too.
    let ids: Vec<u64> = (0..5).map(|i| shell.send_command(format!("p{i}").as_bytes()).unwrap()).collect();
    for (i, id) in ids.into_iter().enumerate() {
        let (got, n) = shell.recv_response(&mut buf).unwrap();
        assert_eq!(got, id);
        assert_eq!(&buf[..n], format!("C:p{i}").as_bytes());
    }
    // A command over the C daemon's 512-byte limit is refused on our side.
    assert!(matches!(shell.request(&[0u8; 513], &mut buf), Err(Error::MessageTooLarge { .. })));
    let n = shell.request(b"quit", &mut buf).unwrap();
    assert_eq!(&buf[..n], b"bye");
    let out = finish(child, LIMIT);
    assert!(String::from_utf8_lossy(&out.stdout).contains("served 105"));
}

/// C KvCache and region reader ↔ Rust writer: values and versions match in
/// both directions.
#[test]
fn c_reader_sees_rust_writer() {
    let exe = build("reader");
    let kv_name = unique("c-kv");
    let region_name = unique("c-region");
    let mut kv = KvCache::create(&kv_name, KvConfig::default()).unwrap();
    kv.set_unlink_on_drop(true);
    let keys = 50;
    for i in 0..keys {
        kv.put(format!("key-{i}").as_bytes(), format!("value-{i}-from-rust").as_bytes()).unwrap();
    }
    kv.put(b"big", &[7u8; 3000]).unwrap();
    let mut region = SeqWriter::create(&region_name, RegionConfig::new(4096).chunk_size(1024)).unwrap();
    region.write(b"tick 0").unwrap();
    region.write_at(1024, &0xC0FFEEu32.to_ne_bytes()).unwrap();

    let mut child = spawn(&exe, &[&kv_name, &region_name, &keys.to_string()]);
    // The reader saw "tick 0" and now waits for the next version.
    let line = wait_for_line(&mut child, "WAITING");
    let seen: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert_eq!(seen, region.version());
    region.write(b"tick 1").unwrap();
    let out = finish(child, LIMIT);
    region.unlink().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("region: tick 1"), "{stdout}");

    assert_eq!(kv.get(b"from-c").unwrap().as_deref(), Some(&b"hi rust"[..]));
    assert_eq!(kv.get(b"key-0").unwrap(), None);
    assert!(kv.stats().hits >= keys as u64);
}

/// Bad arguments of every kind give the documented status codes.
#[test]
fn c_bad_arguments_get_error_codes() {
    let exe = build("bad_args");
    let out = finish(spawn(&exe, &[&unique("bad")]), LIMIT);
    assert!(String::from_utf8_lossy(&out.stdout).contains("all bad-argument checks passed"));
}

/// The documented thread-safety holds: shared kv / region reader handles
/// under a concurrent writer, and a cross-thread daemon stop.
#[test]
fn c_threads_share_the_thread_safe_handles() {
    let exe = build("threads");
    let out = finish(spawn(&exe, &[&unique("threads")]), LIMIT);
    assert!(String::from_utf8_lossy(&out.stdout).contains("threads ok"));
}

/// The examples/c programs build, talk to each other, and the daemon stops
/// cleanly on SIGTERM (`venom_daemon_stop` from a signal handler).
#[test]
fn example_c_client_and_daemon_interoperate() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/c");
    let daemon_exe = c_programs::build_c(&dir.join("daemon.c"), "example_daemon", 2);
    // The client links libvenom.so the README's way (`-lvenom`, plus an rpath).
    let client_exe = c_programs::build_c_with(&dir.join("client.c"), "example_client", 2, c_programs::Link::Dynamic);
    let name = unique("example");
    let mut daemon = spawn(&daemon_exe, &[&name]);
    wait_for_line(&mut daemon, "serving");
    let out = finish(spawn(&client_exe, &[&name, "100"]), LIMIT);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("data: hello from a C daemon"), "{stdout}");
    assert!(stdout.contains("last reply: echo: ping"), "{stdout}");
    assert!(stdout.contains("latency_ns median="), "{stdout}");
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(daemon.id() as libc::pid_t, libc::SIGTERM) }, 0);
    let out = finish(daemon, LIMIT);
    assert!(String::from_utf8_lossy(&out.stdout).contains("stopped after 100 commands"));
}

/// A C daemon killed with SIGKILL: the Rust shell gets `DaemonGone` within
/// its timeout, a new C daemon reclaims the name, and the shell reconnects.
#[test]
fn rust_shell_survives_a_killed_c_daemon() {
    let exe = build("daemon");
    let name = unique("c-daemon-kill");
    let mut first = spawn(&exe, &[&name]);
    wait_for_line(&mut first, "READY");
    let mut shell = ShellChannel::connect(&name).unwrap();
    let mut buf = [0u8; 600];
    let n = shell.request_timeout(b"one", &mut buf, Duration::from_secs(10)).unwrap();
    assert_eq!(&buf[..n], b"C:one");
    first.kill().unwrap();
    first.wait().unwrap();
    let err = shell.request_timeout(b"two", &mut buf, Duration::from_secs(10)).unwrap_err();
    assert!(matches!(err, Error::DaemonGone { .. }), "{err}");

    let mut second = spawn(&exe, &[&name]);
    wait_for_line(&mut second, "READY");
    shell.reconnect().unwrap();
    let n = shell.request_timeout(b"three", &mut buf, Duration::from_secs(10)).unwrap();
    assert_eq!(&buf[..n], b"C:three");
    let n = shell.request(b"quit", &mut buf).unwrap();
    assert_eq!(&buf[..n], b"bye");
    finish(second, LIMIT);
}
