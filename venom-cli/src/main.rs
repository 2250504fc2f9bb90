//! `venom`: list, inspect, watch, dump and remove venom shared-memory
//! segments.
//!
//! Everything the tool knows comes from the libraries' read-only inspection
//! APIs (`venom_core::inspect`, `ChannelInfo`, `SeqReader`, `KvCache::stats`,
//! `ObjectSegment::objects`): looking never joins, locks or modifies a
//! segment. Exit codes: 0 success, 1 failure (missing segment, refused
//! removal, corrupt data), 2 bad usage.

#![warn(missing_docs)]

mod cli;
mod dump;
mod failure;
mod ls;
mod render;
mod rm;
mod stat;
mod watch;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    let result = match cli.command {
        Command::Ls(args) => ls::run(&args, json),
        Command::Stat(args) => stat::run(&args, json),
        Command::Watch(args) => watch::run(&args, json),
        Command::Rm(args) => rm::run(&args, json),
        Command::Dump(args) => dump::run(&args, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if !f.message.is_empty() {
                eprintln!("venom: {}", f.message);
            }
            ExitCode::from(f.code)
        }
    }
}
