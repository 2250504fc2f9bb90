//! Reads keys from a shared-memory `KvCache` (MemStream's `reader.py`).
//!
//! ```text
//! cargo run --example kv_reader -- --name memstream user:1 user:2
//! cargo run --example kv_reader -- --name memstream --random 100000 --keys 1000
//! ```

use std::time::Instant;

use clap::Parser;
use venom_collections::KvCache;

/// Get keys from a shared-memory KvCache. Values are printed as text when
/// they are UTF-8, else as a hex prefix.
#[derive(Parser)]
#[command(name = "kv_reader")]
struct Args {
    /// Cache segment name.
    #[arg(long, default_value = "memstream")]
    name: String,
    /// Also do N gets of random keys key-000000..key-<keys>.
    #[arg(long, value_name = "N", default_value_t = 0)]
    random: u64,
    /// Key range for --random.
    #[arg(long = "keys", value_name = "K", default_value_t = 1000)]
    keys_n: u64,
    /// Keys to get.
    #[arg(value_name = "KEY")]
    keys: Vec<String>,
}

fn show(v: &[u8]) -> String {
    match std::str::from_utf8(v) {
        Ok(s) => format!("{s:?}"),
        Err(_) => {
            let hex: String = v.iter().take(16).map(|b| format!("{b:02x}")).collect();
            format!("{} bytes 0x{hex}{}", v.len(), if v.len() > 16 { "…" } else { "" })
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Args { name, random, keys_n, keys } = Args::parse();
    let keys_n = keys_n.max(1);
    let cache = KvCache::open(&name)?;
    for k in &keys {
        match cache.get(k.as_bytes())? {
            Some(v) => println!("{k} = {}", show(&v)),
            None => println!("{k}: not found"),
        }
    }
    if random > 0 {
        let mut buf = vec![0u8; cache.layout().max_value_len];
        let (mut hits, mut x) = (0u64, 0x9E37_79B9_7F4A_7C15u64);
        let start = Instant::now();
        for _ in 0..random {
            let key = format!("key-{:06}", venom_examples::xorshift64(&mut x) % keys_n);
            hits += u64::from(cache.get_into(key.as_bytes(), &mut buf)?.is_some());
        }
        let dt = start.elapsed();
        println!(
            "{random} random gets: {hits} hits ({:.1}%), {:.0} ns/get including key formatting",
            100.0 * hits as f64 / random as f64,
            dt.as_nanos() as f64 / random as f64
        );
    }
    Ok(())
}
