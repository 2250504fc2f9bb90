//! Command-line grammar (clap derive).

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Inspect and manage venom shared-memory segments in /dev/shm.
#[derive(Debug, Parser)]
#[command(
    name = "venom",
    version,
    about,
    propagate_version = true,
    after_help = "Exit status: 0 success, 1 failure (segment not found, removal refused, corrupt data), 2 bad usage.\n\
                  Examples:\n  venom ls\n  venom stat prices --json\n  venom watch prices -n 0.5\n  \
                  venom rm --stale\n  venom dump prices --body --len 64 --format f64"
)]
pub struct Cli {
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List every venom segment (and stray or corrupt files under the venom prefix).
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Show one segment in detail, with kind-specific statistics.
    #[command(visible_alias = "show")]
    Stat(StatArgs),
    /// Refresh a segment's activity (region version rate, KV hit rate, channel queues).
    Watch(WatchArgs),
    /// Remove segments whose owner is dead, and stray files.
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Print a segment's bytes (header included) as hex or numbers.
    Dump(DumpArgs),
}

/// `venom ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only these names (all when omitted).
    pub names: Vec<String>,
    /// Only segments of this kind.
    #[arg(long, value_parser = ["region", "channel", "collections", "kv", "mirror", "raw"])]
    pub kind: Option<String>,
    /// Only objects in this state.
    #[arg(long, value_parser = ["live", "dead", "init", "uninit", "stray", "corrupt", "denied"])]
    pub state: Option<String>,
}

/// `venom stat`.
#[derive(Debug, Args)]
pub struct StatArgs {
    /// Segment name (without the `venom.` prefix).
    pub name: String,
    /// How many KV keys to list, by access count.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
}

/// `venom watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Segment name.
    pub name: String,
    /// Seconds between samples.
    #[arg(long, short = 'n', default_value_t = 1.0, value_parser = parse_interval)]
    pub interval: f64,
    /// Stop after this many samples (default: until interrupted).
    #[arg(long, short = 'c')]
    pub count: Option<u64>,
}

/// `venom rm`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("what").required(true).args(["names", "stale"]))]
pub struct RmArgs {
    /// Segments to remove.
    pub names: Vec<String>,
    /// Remove even if the owner is alive (its mapping stays valid; new openers won't find it).
    #[arg(long, short = 'f')]
    pub force: bool,
    /// Remove every venom segment whose owner is dead (stray and corrupt files are left alone).
    #[arg(long, conflicts_with = "names")]
    pub stale: bool,
    /// With --stale: only names starting with this prefix.
    #[arg(long, requires = "stale", default_value = "")]
    pub prefix: String,
}

/// `venom dump`.
#[derive(Debug, Args)]
pub struct DumpArgs {
    /// Segment name.
    pub name: String,
    /// First byte, from the start of the segment (0 = the header's magic).
    #[arg(long, short = 'o', default_value_t = 0)]
    pub offset: u64,
    /// Count offsets from the start of the body (after the 128-byte header).
    #[arg(long)]
    pub body: bool,
    /// Bytes to show (default 256; at most 16 MiB).
    #[arg(long, short = 'l', default_value_t = 256)]
    pub len: usize,
    /// How to print the bytes.
    #[arg(long, short = 'F', value_enum, default_value_t = Format::Hex)]
    pub format: Format,
}

/// Dump formats. Numbers are little-endian.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Hex bytes with an ASCII column.
    Hex,
    /// Unsigned bytes.
    U8,
    /// Unsigned 32-bit.
    U32,
    /// Unsigned 64-bit.
    U64,
    /// Signed 64-bit.
    I64,
    /// 32-bit floats.
    F32,
    /// 64-bit floats.
    F64,
}

fn parse_interval(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(0.01..=3600.0).contains(&v) {
        return Err("interval must be between 0.01 and 3600 seconds".into());
    }
    Ok(v)
}
