//! SIGKILL at controlled points: a client mid-request, a client mid-push,
//! the daemon mid-run (then a restarted daemon and `reconnect`).

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use venom_core::channel::{ChannelConfig, DaemonChannel, ShellChannel};
use venom_core::{Error, testkit};

const SEC: Duration = Duration::from_secs(1);

fn marker(name: &str, what: &str) -> PathBuf {
    std::env::temp_dir().join(format!("venom-{name}.{what}"))
}

#[test]
fn child_slow_requester() {
    let Some(name) = testkit::child_arg("slow-requester") else { return };
    let mut shell = ShellChannel::connect(&name).unwrap();
    let mut buf = [0u8; 64];
    let _ = shell.request_timeout(b"slow", &mut buf, 30 * SEC);
}

/// The client dies while the daemon is handling its request. The daemon
/// answers into the void without blocking, and the client that takes the
/// dead client's slot receives only its own replies.
#[test]
fn client_killed_mid_request() {
    let name = testkit::unique_name("crash-req");
    let mut daemon = DaemonChannel::create(&name, ChannelConfig { max_clients: 1, ..Default::default() }).unwrap();
    let stop = daemon.stop_handle();
    static IN_SLOW: AtomicBool = AtomicBool::new(false);
    static RELEASE: AtomicBool = AtomicBool::new(false);
    let server = std::thread::spawn(move || {
        let r = daemon.run(|client, cmd| {
            if cmd == b"slow" {
                IN_SLOW.store(true, Ordering::SeqCst);
                testkit::wait_for(10 * SEC, || RELEASE.load(Ordering::SeqCst));
            }
            format!("{client}|").into_bytes().into_iter().chain(cmd.iter().copied()).collect()
        });
        (r, daemon.stats())
    });
    let mut kid = testkit::spawn_child("child_slow_requester", "slow-requester", &name).unwrap();
    assert!(testkit::wait_for(10 * SEC, || IN_SLOW.load(Ordering::SeqCst)));
    kid.kill9();
    // The only slot belonged to the dead client: connecting reclaims it
    // while the daemon is still inside the dead client's handler.
    let mut shell = ShellChannel::connect(&name).unwrap();
    RELEASE.store(true, Ordering::SeqCst);
    let mut buf = [0u8; 64];
    for i in 0..20 {
        let cmd = format!("mine {i}");
        let n = shell.request(cmd.as_bytes(), &mut buf).unwrap();
        assert_eq!(&buf[..n], format!("{}|{cmd}", shell.client_id()).as_bytes());
    }
    stop.stop();
    let (r, stats) = server.join().unwrap();
    r.unwrap();
    assert_eq!(stats.dropped_replies, 1, "the reply to the dead client is dropped: {stats:?}");
}

static PUSH_MARKER: OnceLock<PathBuf> = OnceLock::new();

fn park_in_push() {
    if let Some(path) = PUSH_MARKER.get() {
        std::fs::write(path, b"1").unwrap();
        std::thread::sleep(Duration::from_secs(30));
    }
}

#[test]
fn child_parks_mid_push() {
    let Some(name) = testkit::child_arg("mid-push") else { return };
    let mut shell = ShellChannel::connect(&name).unwrap();
    let mut buf = [0u8; 64];
    shell.request(b"complete", &mut buf).unwrap();
    PUSH_MARKER.set(marker(&name, "push")).unwrap();
    venom_core::cmd_queue::set_mid_push_hook(park_in_push);
    let _ = shell.request(b"torn", &mut buf);
}

#[test]
fn client_killed_mid_push() {
    let name = testkit::unique_name("crash-push");
    let mut daemon = DaemonChannel::create(&name, ChannelConfig { max_clients: 2, ..Default::default() }).unwrap();
    let stop = daemon.stop_handle();
    let server = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let r = daemon.run(|_, cmd| {
            seen.push(cmd.to_vec());
            cmd.to_vec()
        });
        (r, seen)
    });
    let mut other = ShellChannel::connect(&name).unwrap();
    let mut kid = testkit::spawn_child("child_parks_mid_push", "mid-push", &name).unwrap();
    let path = marker(&name, "push");
    assert!(testkit::wait_for(10 * SEC, || path.exists()), "child never reached the hook");
    // The other client keeps working while the child is frozen mid-push...
    let mut buf = [0u8; 64];
    assert_eq!(other.request(b"during", &mut buf).unwrap(), 6);
    kid.kill9();
    let _ = std::fs::remove_file(&path);
    // ...and after it died; its slot is reclaimed.
    let mut fresh = ShellChannel::connect(&name).unwrap();
    assert_eq!(fresh.request(b"after", &mut buf).unwrap(), 5);
    assert_eq!(other.request(b"other", &mut buf).unwrap(), 5);
    stop.stop();
    let (r, seen) = server.join().unwrap();
    r.unwrap();
    let seen: Vec<&[u8]> = seen.iter().map(|v| &v[..]).collect();
    assert_eq!(seen, [&b"complete"[..], b"during", b"after", b"other"], "the torn push is never delivered");
}

#[test]
fn child_daemon() {
    let Some(name) = testkit::child_arg("daemon") else { return };
    let mut daemon = DaemonChannel::create(&name, ChannelConfig::default()).unwrap();
    daemon.write_data(b"gen 1").unwrap();
    let mark = marker(&name, "hang");
    let _ = daemon.run(|_, cmd| {
        if cmd == b"hang" {
            std::fs::write(&mark, b"1").unwrap();
            std::thread::sleep(Duration::from_secs(30));
        }
        cmd.to_vec()
    });
}

#[test]
fn daemon_killed_mid_run_then_restarted() {
    let name = testkit::unique_name("crash-daemon");
    let mut kid = testkit::spawn_child("child_daemon", "daemon", &name).unwrap();
    let mut shell = None;
    assert!(testkit::wait_for(10 * SEC, || {
        shell = ShellChannel::connect(&name).ok();
        shell.is_some()
    }));
    let mut shell = shell.unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(shell.request(b"ping", &mut buf).unwrap(), 4);
    // A second daemon on the live name is refused and changes nothing.
    assert!(matches!(DaemonChannel::create(&name, ChannelConfig::default()), Err(Error::AlreadyExists { .. })));
    assert_eq!(shell.request(b"ping", &mut buf).unwrap(), 4);
    // Kill the daemon while it handles our request: DaemonGone, well before
    // the 20 s timeout.
    let mark = marker(&name, "hang");
    let killer = std::thread::spawn(move || {
        assert!(testkit::wait_for(10 * SEC, || mark.exists()));
        kid.kill9();
        let _ = std::fs::remove_file(&mark);
    });
    let t = Instant::now();
    let r = shell.request_timeout(b"hang", &mut buf, 20 * SEC);
    killer.join().unwrap();
    assert!(matches!(r, Err(Error::DaemonGone { .. })), "{r:?}");
    assert!(t.elapsed() < 5 * SEC, "noticed after {:?}", t.elapsed());
    assert!(matches!(shell.request(b"ping", &mut buf), Err(Error::DaemonGone { .. })));
    // A new daemon reclaims the dead one's name; the shell reconnects by hand.
    let mut daemon = DaemonChannel::create(&name, ChannelConfig::default()).unwrap();
    daemon.write_data(b"gen 2").unwrap();
    let stop = daemon.stop_handle();
    let server = std::thread::spawn(move || daemon.run(|_, cmd| cmd.to_vec()));
    shell.reconnect().unwrap();
    assert_eq!(shell.request(b"pong", &mut buf).unwrap(), 4);
    let n = shell.read_data(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"gen 2");
    stop.stop();
    server.join().unwrap().unwrap();
    // A cleanly dropped daemon also reads as gone.
    assert!(matches!(shell.request(b"ping", &mut buf), Err(Error::DaemonGone { .. })));
}
