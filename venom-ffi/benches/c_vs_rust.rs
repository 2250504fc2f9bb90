//! Round-trip latency of a C client (examples/c/client.c, through
//! libvenom.a) vs a Rust client (`ShellChannel`) against the same Rust
//! daemon, in the same run. Both clients are separate processes; rounds
//! alternate so that machine load hits both alike.
//!
//! `cargo bench -p venom-ffi --bench c_vs_rust` (20 000 requests per client
//! per round, 3 rounds). Without `--bench` (e.g. `cargo test --benches`) it
//! runs a 200-request smoke pass.

#[path = "../tests/c_programs/mod.rs"]
mod c_programs;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use venom_core::{ChannelConfig, DaemonChannel, ShellChannel};

const ROLE_ENV: &str = "VENOM_BENCH_RUST_CLIENT";

/// The Rust client: same loop as client.c (16-byte command, buffer of
/// max_msg_size, one timestamp pair per request).
fn rust_client(name: &str, requests: usize) -> (u64, u64) {
    let mut shell = ShellChannel::connect(name).expect("connect");
    let mut buf = vec![0u8; shell.max_msg_size()];
    let mut cmd = [0u8; 16];
    cmd[..4].copy_from_slice(b"ping");
    let mut lat = Vec::with_capacity(requests);
    for _ in 0..requests {
        let t0 = Instant::now();
        shell.request_timeout(&cmd, &mut buf, Duration::from_secs(5)).expect("request");
        lat.push(t0.elapsed().as_nanos() as u64);
    }
    lat.sort_unstable();
    (lat[requests / 2], lat[requests * 99 / 100])
}

/// Parses "latency_ns median=M p99=P ..." from a client's stdout.
fn parse(stdout: &[u8]) -> (u64, u64) {
    let text = String::from_utf8_lossy(stdout);
    let line = text.lines().find(|l| l.starts_with("latency_ns")).unwrap_or_else(|| panic!("no latency in {text}"));
    let field = |k: &str| -> u64 {
        line.split_whitespace().find_map(|w| w.strip_prefix(k)).and_then(|v| v.parse().ok()).expect("field")
    };
    (field("median="), field("p99="))
}

fn run(cmd: &mut Command) -> (u64, u64) {
    let out = cmd.output().expect("spawn client");
    assert!(out.status.success(), "client failed: {}", String::from_utf8_lossy(&out.stderr));
    parse(&out.stdout)
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

fn main() {
    if let Ok(spec) = std::env::var(ROLE_ENV) {
        let (name, n) = spec.split_once(' ').expect("NAME N");
        let (m, p) = rust_client(name, n.parse().expect("N"));
        println!("latency_ns median={m} p99={p} n={n}");
        return;
    }
    let full = std::env::args().any(|a| a == "--bench");
    let (requests, rounds) = if full { (20_000, 3) } else { (200, 1) };

    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/c/client.c");
    let c_exe = c_programs::build_c(&src, "bench_client", 2);
    let name = c_programs::unique("bench");
    let mut daemon = DaemonChannel::create(&name, ChannelConfig::default()).expect("daemon");
    daemon.write_data(b"bench").expect("data");
    let stop = daemon.stop_handle();
    let server = std::thread::spawn(move || daemon.run_into(|_, cmd, reply| reply.extend_from_slice(cmd)));

    let me = std::env::current_exe().expect("bench exe");
    let (mut c_med, mut r_med, mut c_p99, mut r_p99) = (vec![], vec![], vec![], vec![]);
    for round in 0..rounds {
        let (rm, rp) = run(Command::new(&me).env(ROLE_ENV, format!("{name} {requests}")));
        let (cm, cp) = run(Command::new(&c_exe).args([name.as_str(), &requests.to_string()]));
        println!("round {round}: rust client median {rm} ns p99 {rp} ns | C client median {cm} ns p99 {cp} ns");
        r_med.push(rm);
        r_p99.push(rp);
        c_med.push(cm);
        c_p99.push(cp);
    }
    stop.stop();
    server.join().expect("daemon thread").expect("daemon run");
    let (r, c) = (median(r_med), median(c_med));
    println!(
        "c_vs_rust round trip (16 B echo, {requests} requests x {rounds} rounds): rust median {r} ns (p99 {} ns), \
         C median {c} ns (p99 {} ns), C/rust = {:.2}",
        median(r_p99),
        median(c_p99),
        c as f64 / r as f64
    );
}
