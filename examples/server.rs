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

use clap::{Parser, ValueEnum};
use venom_core::Error;
use venom_core::channel::{ChannelConfig, DaemonChannel, StopHandle, WaitStrategy};

/// A venom channel daemon.
#[derive(Parser)]
#[command(
    name = "server",
    after_help = "COMMANDS the server answers:
  ping               -> pong
  echo TEXT          -> TEXT
  time               -> seconds since the Unix epoch
  clients            -> number of connected clients
  stats              -> daemon counters
  anything else      -> unknown command"
)]
struct Args {
    /// Channel name.
    #[arg(long, default_value = "my_channel")]
    name: String,
    /// Client slots.
    #[arg(long, value_name = "N", default_value_t = ChannelConfig::default().max_clients)]
    max_clients: usize,
    /// Largest command/reply in bytes.
    #[arg(long = "max-msg", value_name = "BYTES", default_value_t = ChannelConfig::default().max_msg_size)]
    max_msg: usize,
    /// How the daemon waits for commands.
    #[arg(long, value_enum, value_name = "MODE", default_value_t = Wait::SpinThenPark)]
    wait: Wait,
    /// Exit after SECS seconds (default: run until Ctrl-C).
    #[arg(long, value_name = "SECS")]
    duration: Option<f64>,
}

/// `--wait` values.
#[derive(Clone, Copy, ValueEnum)]
enum Wait {
    Spin,
    SpinThenPark,
    Park,
}

/// Set once; the SIGINT handler only calls `stop()` (async-signal-safe).
static STOP: OnceLock<StopHandle> = OnceLock::new();

extern "C" fn on_sigint(_: libc::c_int) {
    if let Some(stop) = STOP.get() {
        stop.stop();
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let name = args.name;
    let wait = match args.wait {
        Wait::Spin => WaitStrategy::Spin,
        Wait::SpinThenPark => WaitStrategy::SpinThenPark,
        Wait::Park => WaitStrategy::Park,
    };
    let cfg =
        ChannelConfig { max_clients: args.max_clients, max_msg_size: args.max_msg, wait, ..ChannelConfig::default() };
    let duration = args.duration.map(Duration::try_from_secs_f64).transpose()?;
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
