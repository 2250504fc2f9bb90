//! Channels: every reply reaches its own request (many client processes,
//! synchronous and pipelined), the daemon API variants, message-size limits
//! and client-slot limits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use venom_core::channel::{ChannelConfig, ClientId, DaemonChannel, ShellChannel, StopHandle, WaitStrategy};
use venom_core::{Error, Result, testkit};

const SEC: Duration = Duration::from_secs(1);

/// Echo handler: the reply names the client and repeats the command, so a
/// reply delivered to the wrong client or request is detected.
fn echo(client: ClientId, cmd: &[u8], reply: &mut Vec<u8>) {
    reply.extend_from_slice(format!("{client}|").as_bytes());
    reply.extend_from_slice(cmd);
}

fn serve(cfg: ChannelConfig) -> (String, StopHandle, JoinHandle<Result<()>>) {
    let name = testkit::unique_name("chan");
    let mut daemon = DaemonChannel::create(&name, cfg).unwrap();
    daemon.write_data(b"hello data").unwrap();
    let stop = daemon.stop_handle();
    let h = std::thread::spawn(move || daemon.run_into(echo));
    (name, stop, h)
}

fn finish(stop: StopHandle, h: JoinHandle<Result<()>>) {
    stop.stop();
    h.join().unwrap().unwrap();
}

#[test]
fn child_client() {
    let Some(arg) = testkit::child_arg("client") else { return };
    let (name, m) = arg.split_once(' ').unwrap();
    let m: u32 = m.parse().unwrap();
    let mut shell = ShellChannel::connect(name).unwrap();
    let me = shell.client_id();
    let mut buf = [0u8; 256];
    let n = shell.read_data(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello data");
    for seq in 0..m {
        let cmd = format!("pid {} seq {seq}", std::process::id());
        let n = shell.request(cmd.as_bytes(), &mut buf).unwrap();
        assert_eq!(std::str::from_utf8(&buf[..n]).unwrap(), format!("{me}|{cmd}"));
    }
    // Pipelined: 8 in flight, every reply matched by id.
    let mut sent = std::collections::HashMap::new();
    for seq in 0..8 {
        let cmd = format!("pipelined {seq}");
        sent.insert(shell.send_command(cmd.as_bytes()).unwrap(), cmd);
    }
    assert!(matches!(shell.request(b"x", &mut buf), Err(Error::RequestsOutstanding { count: 8 })));
    while shell.outstanding() > 0 {
        let (id, n) = shell.recv_response(&mut buf).unwrap();
        let cmd = sent.remove(&id).expect("reply to a request we sent");
        assert_eq!(std::str::from_utf8(&buf[..n]).unwrap(), format!("{me}|{cmd}"));
    }
    assert!(sent.is_empty());
}

#[test]
fn many_client_processes_get_their_own_replies() {
    let (name, stop, h) = serve(ChannelConfig { max_clients: 4, cmd_slots: 16, ..Default::default() });
    let mut kids: Vec<_> =
        (0..4).map(|_| testkit::spawn_child("child_client", "client", &format!("{name} 300")).unwrap()).collect();
    for k in &mut kids {
        assert!(k.wait_timeout(30 * SEC).unwrap().success(), "a client saw a wrong reply");
    }
    finish(stop, h);
}

#[test]
fn threads_in_one_process_and_wait_strategies() {
    for wait in [WaitStrategy::Spin, WaitStrategy::SpinThenPark, WaitStrategy::Park] {
        let (name, stop, h) = serve(ChannelConfig { max_clients: 3, wait, ..Default::default() });
        let clients: Vec<_> = (0..3)
            .map(|t| {
                let name = name.clone();
                std::thread::spawn(move || {
                    let mut shell = ShellChannel::connect(&name).unwrap();
                    let me = shell.client_id();
                    let mut buf = [0u8; 64];
                    for i in 0..200 {
                        let cmd = format!("{t}/{i}");
                        let n = shell.request(cmd.as_bytes(), &mut buf).unwrap();
                        assert_eq!(&buf[..n], format!("{me}|{cmd}").as_bytes());
                    }
                })
            })
            .collect();
        for c in clients {
            c.join().unwrap();
        }
        finish(stop, h);
    }
}

#[test]
fn recv_command_and_out_of_order_respond() {
    let name = testkit::unique_name("chan-manual");
    let mut daemon = DaemonChannel::create(&name, ChannelConfig::default()).unwrap();
    let mut shell = ShellChannel::connect(&name).unwrap();
    assert!(daemon.try_recv_command().unwrap().is_none());
    let a = shell.send_command(b"a").unwrap();
    let b = shell.send_command(b"b").unwrap();
    let ca = daemon.recv_command(SEC).unwrap();
    let cb = daemon.recv_command(SEC).unwrap();
    assert_eq!((ca.data(), cb.data(), ca.client()), (&b"a"[..], &b"b"[..], shell.client_id()));
    assert_eq!((ca.request_id(), cb.request_id()), (a, b));
    daemon.respond(cb, b"B").unwrap();
    daemon.respond(ca, b"A").unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(shell.recv_response(&mut buf).unwrap(), (b, 1));
    assert_eq!(buf[0], b'B');
    assert_eq!(shell.recv_response(&mut buf).unwrap(), (a, 1));
    assert_eq!(buf[0], b'A');
    assert!(matches!(shell.recv_response(&mut buf), Err(Error::Timeout(_))));
    // A command dropped unanswered is reported to its client, so the
    // client's window does not leak.
    let c = shell.send_command(b"ignored").unwrap();
    drop(daemon.recv_command(SEC).unwrap());
    assert!(daemon.try_recv_command().unwrap().is_none());
    assert!(matches!(shell.recv_response(&mut buf), Err(Error::NoReply { id }) if id == c));
    assert_eq!(shell.outstanding(), 0);
    assert_eq!(daemon.stats().unanswered, 1);
    // Stop is sticky and wakes a waiting recv_command.
    let stop = daemon.stop_handle();
    let t = Instant::now();
    let waker = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        stop.stop();
    });
    assert!(matches!(daemon.recv_command(10 * SEC), Err(Error::Stopped)));
    assert!(t.elapsed() < 5 * SEC);
    waker.join().unwrap();
}

#[test]
fn timed_out_request_never_receives_a_late_reply() {
    let name = testkit::unique_name("chan-late");
    let mut daemon = DaemonChannel::create(&name, ChannelConfig::default()).unwrap();
    let stop = daemon.stop_handle();
    let h = std::thread::spawn(move || {
        daemon.run(|_, cmd| {
            if cmd == b"slow" {
                std::thread::sleep(Duration::from_millis(300));
            }
            cmd.to_vec()
        })
    });
    let mut shell = ShellChannel::connect(&name).unwrap();
    let mut buf = [0u8; 16];
    let r = shell.request_timeout(b"slow", &mut buf, Duration::from_millis(50));
    assert!(matches!(r, Err(Error::Timeout(_))), "{r:?}");
    // The late "slow" reply arrives first and must be discarded.
    let n = shell.request(b"fast", &mut buf).unwrap();
    assert_eq!(&buf[..n], b"fast");
    finish(stop, h);
}

#[test]
fn oversized_messages_both_directions() {
    let cfg = ChannelConfig { max_msg_size: 8192, ..Default::default() };
    let name = testkit::unique_name("chan-big");
    let mut daemon = DaemonChannel::create(&name, cfg).unwrap();
    let stop = daemon.stop_handle();
    let h = std::thread::spawn(move || {
        let r = daemon.run(|_, cmd| match cmd {
            b"huge" => vec![1; 8193],
            b"max" => vec![2; 8192],
            other => other.to_vec(),
        });
        (r, daemon.stats())
    });
    let mut shell = ShellChannel::connect(&name).unwrap();
    assert_eq!(shell.max_msg_size(), 8192);
    let mut buf = vec![0u8; 10_000];
    // Larger than the seed's 4096 B limit, both ways.
    let cmd = vec![9u8; 8192];
    assert_eq!(shell.request(&cmd, &mut buf).unwrap(), 8192);
    assert_eq!(&buf[..8192], &cmd[..]);
    assert!(matches!(shell.request(&[0; 8193], &mut buf), Err(Error::MessageTooLarge { len: 8193, max: 8192 })));
    assert!(matches!(shell.request(b"huge", &mut buf), Err(Error::ReplyTooLarge { len: 8193, max: 8192, .. })));
    assert_eq!(shell.request(b"max", &mut buf).unwrap(), 8192);
    assert!(matches!(shell.request(b"max", &mut buf[..100]), Err(Error::BufferTooSmall { needed: 8192, got: 100 })));
    // Pipelined: a too-small buffer leaves the reply queued.
    let id = shell.send_command(b"max").unwrap();
    assert!(matches!(shell.recv_response(&mut buf[..10]), Err(Error::BufferTooSmall { .. })));
    assert_eq!(shell.recv_response(&mut buf).unwrap(), (id, 8192));
    // Still in sync afterwards.
    assert_eq!(shell.request(b"ok", &mut buf).unwrap(), 2);
    stop.stop();
    let (r, stats) = h.join().unwrap();
    r.unwrap();
    assert_eq!(stats.oversized_replies, 1);
}

#[test]
fn child_holds_a_slot() {
    let Some(name) = testkit::child_arg("holder") else { return };
    let _shell = ShellChannel::connect(&name).unwrap();
    std::fs::write(std::env::temp_dir().join(format!("venom-{name}.holder")), b"1").unwrap();
    std::thread::sleep(Duration::from_secs(30));
}

#[test]
fn max_clients_enforced_and_slots_reused() {
    let (name, stop, h) = serve(ChannelConfig { max_clients: 2, ..Default::default() });
    let a = ShellChannel::connect(&name).unwrap();
    let mut kid = testkit::spawn_child("child_holds_a_slot", "holder", &name).unwrap();
    let marker = std::env::temp_dir().join(format!("venom-{name}.holder"));
    assert!(testkit::wait_for(10 * SEC, || marker.exists()));
    assert!(matches!(ShellChannel::connect(&name), Err(Error::TooManyClients { max: 2 })));
    // A clean disconnect frees the slot; the generation changes.
    let old = a.client_id();
    drop(a);
    let b = ShellChannel::connect(&name).unwrap();
    assert_eq!(b.client_id().slot(), old.slot());
    assert_ne!(b.client_id(), old);
    // A SIGKILLed client's slot is reclaimed by the next connect.
    assert!(matches!(ShellChannel::connect(&name), Err(Error::TooManyClients { .. })));
    kid.kill9();
    let _ = std::fs::remove_file(&marker);
    let mut c = ShellChannel::connect(&name).unwrap();
    let mut buf = [0u8; 64];
    let n = c.request(b"hi", &mut buf).unwrap();
    assert_eq!(&buf[..n], format!("{}|hi", c.client_id()).as_bytes());
    drop(b);
    finish(stop, h);
}

#[test]
fn second_create_on_a_live_name_changes_nothing() {
    let (name, stop, h) = serve(ChannelConfig::default());
    let mut shell = ShellChannel::connect(&name).unwrap();
    let again = DaemonChannel::create(&name, ChannelConfig::default());
    assert!(matches!(again, Err(Error::AlreadyExists { .. })), "{again:?}");
    let mut buf = [0u8; 64];
    let n = shell.read_data(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello data");
    let n = shell.request(b"still here", &mut buf).unwrap();
    assert!(buf[..n].ends_with(b"still here"));
    // reconnect() is a no-op while the daemon is alive.
    let id = shell.client_id();
    shell.reconnect().unwrap();
    assert_eq!(shell.client_id(), id);
    finish(stop, h);
}

#[test]
fn data_region_updates_are_visible() {
    let name = testkit::unique_name("chan-data");
    let mut daemon = DaemonChannel::create(&name, ChannelConfig { data_size: 4096, ..Default::default() }).unwrap();
    let shell = ShellChannel::connect(&name).unwrap();
    let v0 = shell.data().version();
    daemon.write_data_with(|w| w.write_at(100, b"in place")).unwrap();
    let mut buf = [0u8; 8];
    let v = shell.data().read_at(100, &mut buf).unwrap();
    assert!(v > v0);
    assert_eq!(&buf, b"in place");
    let done = Arc::new(AtomicBool::new(false));
    let d2 = done.clone();
    let waiter = std::thread::spawn(move || {
        let r = shell.data().wait_for_change(v, 5 * SEC);
        d2.store(true, Ordering::SeqCst);
        r
    });
    std::thread::sleep(Duration::from_millis(20));
    daemon.write_data(b"next").unwrap();
    assert!(waiter.join().unwrap().unwrap() > v);
    assert!(done.load(Ordering::SeqCst));
}

#[test]
fn corrupt_channel_headers_are_rejected() {
    use std::sync::atomic::AtomicU64;
    use venom_core::{Segment, SegmentKind};
    let name = testkit::unique_name("chan-corrupt");
    let daemon = DaemonChannel::create(&name, ChannelConfig::default()).unwrap();
    let seg = Segment::open(&name, SegmentKind::CHANNEL).unwrap();
    // SAFETY: 8-aligned offsets inside the channel header and the queue
    // header; the fields are atomics in shared memory.
    let word = |off: usize| unsafe { &*(seg.body_ptr().add(off) as *const AtomicU64) };
    // (offset, bad value): reply-ring offset, queue lane count, queue stride,
    // data offset past the end, channel magic.
    for (off, bad) in [(24, 8), (128 + 16, 1 << 30), (128 + 40, 3), (32, 1 << 40), (0, 0)] {
        let saved = word(off).swap(bad, Ordering::SeqCst);
        let r = ShellChannel::connect(&name);
        assert!(matches!(r, Err(Error::Corrupt { .. })), "offset {off}: {r:?}");
        word(off).store(saved, Ordering::SeqCst);
    }
    ShellChannel::connect(&name).unwrap();
    drop(daemon);
    // A dropped daemon unlinks its name.
    assert!(matches!(ShellChannel::connect(&name), Err(Error::NotFound(_))));
}

/// Spin mode on both sides, so most replies land while `request` is still
/// in its fast stamp poll and are taken there: errors taken on that path
/// (a reply too large for the buffer, one over the maximum, an empty one)
/// consume exactly that reply, and the next request gets its own reply.
#[test]
fn fast_path_errors_keep_requests_in_sync() {
    let cfg = ChannelConfig { max_msg_size: 256, wait: WaitStrategy::Spin, ..Default::default() };
    let name = testkit::unique_name("chan-fast");
    let mut daemon = DaemonChannel::create(&name, cfg).unwrap();
    let stop = daemon.stop_handle();
    let h = std::thread::spawn(move || {
        daemon.run(|_, cmd| match cmd {
            b"big" => vec![3; 200],
            b"huge" => vec![4; 257],
            b"none" => Vec::new(),
            other => other.to_vec(),
        })
    });
    let mut shell = ShellChannel::connect(&name).unwrap();
    shell.set_wait(WaitStrategy::Spin);
    let mut buf = [0u8; 256];
    for i in 0..300u32 {
        assert!(matches!(shell.request(b"big", &mut buf[..10]), Err(Error::BufferTooSmall { needed: 200, got: 10 })));
        assert!(matches!(shell.request(b"huge", &mut buf), Err(Error::ReplyTooLarge { len: 257, max: 256, .. })));
        assert_eq!(shell.request(b"none", &mut buf).unwrap(), 0);
        let cmd = i.to_le_bytes();
        let n = shell.request(&cmd, &mut buf).unwrap();
        assert_eq!(&buf[..n], &cmd);
    }
    stop.stop();
    assert!(matches!(h.join().unwrap(), Ok(()) | Err(Error::ReplyTooLarge { .. })));
}
