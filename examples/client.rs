//! A channel client (VenomMemory's `client` example): connects to the
//! channel, prints the daemon's data, sends each command given on the
//! command line and prints the reply with its round-trip time.
//!
//! ```text
//! cargo run --example client -- ping "echo hello" time
//! cargo run --example client -- --name my_channel --repeat 10000 ping
//! ```

use std::time::{Duration, Instant};

use clap::Parser;
use venom_core::channel::ShellChannel;

/// Send commands to a venom channel daemon (start it first: `cargo run
/// --example server`).
#[derive(Parser)]
#[command(name = "client")]
struct Args {
    /// Channel name.
    #[arg(long, default_value = "my_channel")]
    name: String,
    /// Send each command N times and print round-trip percentiles.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Request timeout in milliseconds.
    #[arg(long = "timeout", value_name = "MS", default_value_t = 5000)]
    timeout_ms: u64,
    /// Commands to send, e.g. `ping` or `"echo hello"`.
    #[arg(value_name = "COMMAND")]
    commands: Vec<String>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Args { name, repeat, timeout_ms, commands } = Args::parse();
    let (repeat, timeout) = (repeat.max(1), Duration::from_millis(timeout_ms));
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
