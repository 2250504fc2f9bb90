//! A channel client (VenomMemory's `client` example): connects to the
//! channel, prints the daemon's data, sends each command given on the
//! command line and prints the reply with its round-trip time.
//!
//! ```text
//! cargo run --example client -- ping "echo hello" time
//! cargo run --example client -- --name my_channel --repeat 10000 ping
//! ```

use std::time::{Duration, Instant};

use venom_core::channel::ShellChannel;

const HELP: &str = "client: send commands to a venom channel daemon

USAGE: client [OPTIONS] [COMMAND]...

OPTIONS:
  --name NAME       channel name (default: my_channel)
  --repeat N        send each command N times and print round-trip percentiles
  --timeout MS      request timeout (default 5000)
  -h, --help        this text

Start the daemon first: cargo run --example server";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut name = "my_channel".to_string();
    let (mut repeat, mut timeout) = (1usize, Duration::from_secs(5));
    let mut commands = Vec::new();
    while let Some(a) = args.next() {
        let mut val = |flag: &str| args.next().ok_or_else(|| format!("{flag} needs a value"));
        match a.as_str() {
            "-h" | "--help" => {
                println!("{HELP}");
                return Ok(());
            }
            "--name" => name = val("--name")?,
            "--repeat" => repeat = val("--repeat")?.parse::<usize>()?.max(1),
            "--timeout" => timeout = Duration::from_millis(val("--timeout")?.parse()?),
            other if other.starts_with("--") => return Err(format!("unknown option {other} (try --help)").into()),
            _ => commands.push(a),
        }
    }
    let mut shell = ShellChannel::connect(&name)?;
    shell.set_timeout(timeout);
    println!("connected to {name:?} as client {}", shell.client_id());
    let mut data = vec![0u8; 64 * 1024];
    let n = shell.read_data(&mut data)?;
    println!("data (version {}): {}", shell.data().version(), String::from_utf8_lossy(&data[..n]));

    let mut resp = vec![0u8; shell.max_msg_size()];
    for cmd in &commands {
        let mut rtts = Vec::with_capacity(repeat);
        let mut n = 0;
        for _ in 0..repeat {
            let t = Instant::now();
            n = shell.request(cmd.as_bytes(), &mut resp)?;
            rtts.push(t.elapsed());
        }
        rtts.sort();
        let p = |q: f64| rtts[((rtts.len() as f64 * q) as usize).min(rtts.len() - 1)];
        if repeat == 1 {
            println!("{cmd:?} -> {:?} in {:?}", String::from_utf8_lossy(&resp[..n]), rtts[0]);
        } else {
            println!(
                "{cmd:?} -> {:?}; {repeat} round trips: p50 {:?}, p99 {:?}",
                String::from_utf8_lossy(&resp[..n]),
                p(0.5),
                p(0.99)
            );
        }
    }
    Ok(())
}
