//! A channel daemon (VenomMemory's `server` example): owns the channel
//! `my_channel`, publishes a status line in its data region every 500 ms and
//! answers commands until Ctrl-C.
//!
//! ```text
//! cargo run --example server                       # then, elsewhere:
//! cargo run --example client -- ping "echo hello" clients
//! ```

use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use venom_core::Error;
use venom_core::channel::{ChannelConfig, DaemonChannel, StopHandle, WaitStrategy};

const HELP: &str = "server: a venom channel daemon

USAGE: server [OPTIONS]

OPTIONS:
  --name NAME        channel name (default: my_channel)
  --max-clients N    client slots (default 16)
  --max-msg BYTES    largest command/reply (default 4096)
  --wait MODE        spin | spin-then-park | park (default spin-then-park)
  --duration SECS    exit after SECS seconds (default: run until Ctrl-C)
  -h, --help         this text

COMMANDS the server answers:
  ping               -> pong
  echo TEXT          -> TEXT
  time               -> seconds since the Unix epoch
  clients            -> number of connected clients
  stats              -> daemon counters
  anything else      -> unknown command";

/// Set once; the SIGINT handler only calls `stop()` (async-signal-safe).
static STOP: OnceLock<StopHandle> = OnceLock::new();

extern "C" fn on_sigint(_: libc::c_int) {
    if let Some(stop) = STOP.get() {
        stop.stop();
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut name = "my_channel".to_string();
    let mut cfg = ChannelConfig::default();
    let mut duration = None;
    while let Some(a) = args.next() {
        let mut val = |flag: &str| args.next().ok_or_else(|| format!("{flag} needs a value"));
        match a.as_str() {
            "-h" | "--help" => {
                println!("{HELP}");
                return Ok(());
            }
            "--name" => name = val("--name")?,
            "--max-clients" => cfg.max_clients = val("--max-clients")?.parse()?,
            "--max-msg" => cfg.max_msg_size = val("--max-msg")?.parse()?,
            "--wait" => {
                cfg.wait = match val("--wait")?.as_str() {
                    "spin" => WaitStrategy::Spin,
                    "park" => WaitStrategy::Park,
                    "spin-then-park" => WaitStrategy::SpinThenPark,
                    other => return Err(format!("unknown wait mode {other}").into()),
                }
            }
            "--duration" => duration = Some(Duration::from_secs_f64(val("--duration")?.parse()?)),
            other => return Err(format!("unknown argument {other} (try --help)").into()),
        }
    }
    let mut daemon = DaemonChannel::create(&name, cfg)?;
    let _ = STOP.set(daemon.stop_handle());
    // SAFETY: installing a handler that only performs async-signal-safe
    // operations (atomic stores, a futex wake).
    unsafe { libc::signal(libc::SIGINT, on_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t) };
    println!("daemon pid {} serving channel {name:?} (Ctrl-C to stop)", std::process::id());

    let start = Instant::now();
    let mut next_tick = start;
    let mut ticks = 0u64;
    loop {
        if Instant::now() >= next_tick {
            ticks += 1;
            let status =
                format!("tick {ticks}, {} client(s), up {:.1} s", daemon.clients(), start.elapsed().as_secs_f64());
            daemon.write_data(status.as_bytes())?;
            next_tick += Duration::from_millis(500);
        }
        if duration.is_some_and(|d| start.elapsed() >= d) {
            break;
        }
        let cmd = match daemon.recv_command(Duration::from_millis(100)) {
            Ok(cmd) => cmd,
            Err(Error::Timeout(_)) => continue,
            Err(Error::Stopped) => break,
            Err(e) => return Err(e.into()),
        };
        let text = String::from_utf8_lossy(cmd.data()).into_owned();
        let reply = match text.split_once(' ').map_or((text.as_str(), ""), |(a, b)| (a, b)) {
            ("ping", _) => "pong".to_string(),
            ("echo", rest) => rest.to_string(),
            ("time", _) => SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0).to_string(),
            ("clients", _) => daemon.clients().to_string(),
            ("stats", _) => format!("{:?}", daemon.stats()),
            _ => format!("unknown command {text:?}"),
        };
        println!("client {} request {}: {text:?} -> {reply:?}", cmd.client(), cmd.request_id());
        daemon.respond(cmd, reply.as_bytes())?;
    }
    println!("stopped after {:.1} s: {:?}", start.elapsed().as_secs_f64(), daemon.stats());
    Ok(())
}
