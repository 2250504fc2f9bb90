//! The Venom demo: every capability in one run, across real processes.
//!
//! `cargo run --release --example demo`
//!
//! Sections run in order; each spawns its own child processes (this same
//! binary, re-run with `--child <section> <role> ...`) and cleans up after
//! itself.

#[path = "demo_sections/channel.rs"]
mod channel;
#[path = "demo_sections/collections.rs"]
mod collections;
#[path = "demo_sections/kv.rs"]
mod kv;
#[path = "demo_sections/mesh.rs"]
mod mesh;
#[path = "demo_sections/net.rs"]
mod net;
#[path = "demo_sections/region.rs"]
mod region;

use clap::Parser;

type SectionFn = fn(&std::path::Path) -> Result<(), Box<dyn std::error::Error>>;
type ChildFn = fn(&str, &[String]) -> Result<(), Box<dyn std::error::Error>>;

/// (name, title, run, child)
const SECTIONS: &[(&str, &str, SectionFn, ChildFn)] = &[
    ("region", "SeqRegion: one writer, lock-free readers in other processes", region::run, region::child),
    ("channel", "Channels: request/response between a daemon and shells", channel::run, channel::child),
    ("collections", "Collections: named structures in one shared segment", collections::run, collections::child),
    ("kv", "KvCache: a shared-memory key-value cache", kv::run, kv::child),
    ("net", "venom-net: replicating a region over QUIC", net::run, net::child),
    ("mesh", "venom-net mesh: four peers, each owning a quadrant", mesh::run, mesh::child),
];

/// Every capability of Venom in one run, across real processes.
#[derive(Parser)]
#[command(name = "demo")]
struct Args {
    /// Internal: run one role of a section in a child process (SECTION ROLE ARGS...).
    #[arg(long, num_args = 2.., value_names = ["SECTION", "ROLE"], allow_hyphen_values = true, hide = true)]
    child: Option<Vec<String>>,
    /// Sections to run (default: all, in order).
    #[arg(value_name = "SECTION", value_parser = clap::builder::PossibleValuesParser::new(SECTIONS.iter().map(|s| s.0)))]
    sections: Vec<String>,
}

fn main() {
    let args = Args::parse();
    if let Some(child) = &args.child {
        let (section, role) = (&child[0], &child[1]);
        let Some(entry) = SECTIONS.iter().find(|s| s.0 == section) else {
            eprintln!("unknown section {section}");
            std::process::exit(2);
        };
        if let Err(e) = (entry.3)(role, &child[2..]) {
            eprintln!("demo child {section}/{role} failed: {e}");
            std::process::exit(1);
        }
        return;
    }
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("cannot locate the demo binary: {e}");
            std::process::exit(1);
        }
    };
    let wanted: Vec<&str> = args.sections.iter().map(String::as_str).collect();
    let start = std::time::Instant::now();
    let mut failed = 0;
    for (name, title, run, _) in SECTIONS {
        if !wanted.is_empty() && !wanted.contains(name) {
            continue;
        }
        println!("\n== {title}");
        let t = std::time::Instant::now();
        match run(&exe) {
            Ok(()) => println!("  ({name}: ok in {:.1} s)", t.elapsed().as_secs_f64()),
            Err(e) => {
                println!("  ({name}: FAILED: {e})");
                failed += 1;
            }
        }
    }
    println!("\ndemo finished in {:.1} s, {failed} section(s) failed", start.elapsed().as_secs_f64());
    if failed > 0 {
        std::process::exit(1);
    }
}
