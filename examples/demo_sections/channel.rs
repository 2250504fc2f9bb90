//! Demo section `channel`: a daemon process answers requests from this
//! process over a shared-memory channel; we measure the round trip, pipeline
//! requests, then SIGKILL the daemon, see `DaemonGone`, restart it and
//! reconnect.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use venom_core::channel::{ChannelConfig, DaemonChannel, ShellChannel};
use venom_core::{Error, Segment};

/// A child process killed on drop, so an error path never leaks it.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_daemon(exe: &std::path::Path, name: &str, generation: &str) -> Result<Guard, Box<dyn std::error::Error>> {
    Ok(Guard(Command::new(exe).args(["--child", "channel", "daemon", name, generation]).spawn()?))
}

fn connect(name: &str) -> Result<ShellChannel, Box<dyn std::error::Error>> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match ShellChannel::connect(name) {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() >= deadline => return Err(e.into()),
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

/// Parent: the client.
pub fn run(exe: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let name = format!("demo-channel-{}", std::process::id());
    let result = story(exe, &name);
    let _ = Segment::unlink_name(&name);
    result
}

fn story(exe: &std::path::Path, name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let mut daemon = spawn_daemon(exe, name, "1")?;
    let mut shell = connect(name)?;
    let mut buf = [0u8; 256];
    if shell.data().version() == 0 {
        // Connected before the daemon's first write_data: wait for it.
        shell.data().wait_for_change(0, Duration::from_secs(5))?;
    }
    let n = shell.read_data(&mut buf)?;
    println!(
        "  daemon pid {} owns channel {name:?}; we are client {}; its data says {:?}",
        daemon.0.id(),
        shell.client_id(),
        String::from_utf8_lossy(&buf[..n])
    );

    // Round trips, one at a time.
    const ROUNDS: usize = 20_000;
    let mut rtts = Vec::with_capacity(ROUNDS);
    for i in 0..ROUNDS + 2_000 {
        let t = Instant::now();
        let n = shell.request(&(i as u64).to_le_bytes(), &mut buf)?;
        let rtt = t.elapsed();
        if buf[..n] != (i as u64).to_le_bytes() {
            return Err("reply does not match its request".into());
        }
        if i >= 2_000 {
            rtts.push(rtt);
        }
    }
    rtts.sort();
    let ns = |d: Duration| d.as_nanos();
    println!(
        "  {ROUNDS} request/response round trips across processes: p50 {} ns, p99 {} ns (every reply checked)",
        ns(rtts[ROUNDS / 2]),
        ns(rtts[ROUNDS * 99 / 100])
    );

    // Pipelined: 16 requests in flight.
    const PIPELINED: u64 = 100_000;
    let t = Instant::now();
    let (mut sent, mut got) = (0u64, 0u64);
    while got < PIPELINED {
        while sent < PIPELINED && shell.outstanding() < 16 {
            shell.send_command(&sent.to_le_bytes())?;
            sent += 1;
        }
        shell.recv_response(&mut buf)?;
        got += 1;
    }
    println!(
        "  pipelined (16 in flight): {PIPELINED} requests in {:.1} ms = {:.2} M requests/s",
        t.elapsed().as_secs_f64() * 1e3,
        PIPELINED as f64 / t.elapsed().as_secs_f64() / 1e6
    );

    // Crash the daemon: the next request reports it instead of hanging.
    drop(daemon);
    let t = Instant::now();
    match shell.request_timeout(b"anyone?", &mut buf, Duration::from_secs(5)) {
        Err(Error::DaemonGone { pid }) => {
            println!("  kill -9 daemon {pid}: next request fails with DaemonGone after {:?}", t.elapsed())
        }
        other => return Err(format!("expected DaemonGone, got {other:?}").into()),
    }

    // Restart it and reconnect by hand.
    daemon = spawn_daemon(exe, name, "2")?;
    let t = Instant::now();
    shell.reconnect()?;
    let n = shell.read_data(&mut buf)?;
    println!(
        "  restarted daemon pid {}: reconnected in {:?} as client {}, data now {:?}",
        daemon.0.id(),
        t.elapsed(),
        shell.client_id(),
        String::from_utf8_lossy(&buf[..n])
    );
    let n = shell.request(b"hello again", &mut buf)?;
    println!("  request after reconnect -> {:?}", String::from_utf8_lossy(&buf[..n]));
    drop(daemon);
    Ok(())
}

/// Child: the echo daemon. Stops on its own after 30 s in case the parent
/// vanished.
pub fn child(role: &str, args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    if role != "daemon" {
        return Err(format!("unknown role {role}").into());
    }
    let (Some(name), Some(generation)) = (args.first(), args.get(1)) else {
        return Err("usage: daemon NAME GENERATION".into());
    };
    let mut daemon = DaemonChannel::create(name, ChannelConfig::default())?;
    daemon.write_data(format!("daemon generation {generation}, pid {}", std::process::id()).as_bytes())?;
    let stop = daemon.stop_handle();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(30));
        stop.stop();
    });
    daemon.run_into(|_, cmd, reply| reply.extend_from_slice(cmd))?;
    Ok(())
}
