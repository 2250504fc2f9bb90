//! Reads keys from a shared-memory `KvCache` (MemStream's `reader.py`).
//!
//! ```text
//! cargo run --example kv_reader -- --name memstream user:1 user:2
//! cargo run --example kv_reader -- --name memstream --random 100000 --keys 1000
//! ```

use std::time::Instant;

use venom_collections::KvCache;

const HELP: &str = "kv_reader: get keys from a shared-memory KvCache

USAGE: kv_reader [OPTIONS] [KEY]...

OPTIONS:
  --name NAME     cache segment name (default: memstream)
  --random N      also do N gets of random keys key-000000..key-<keys>
  --keys K        key range for --random (default 1000)
  -h, --help      this text

Values are printed as text when they are UTF-8, else as a hex prefix.";

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
    let mut args = std::env::args().skip(1);
    let (mut name, mut random, mut keys_n) = ("memstream".to_string(), 0u64, 1000u64);
    let mut keys = Vec::new();
    while let Some(a) = args.next() {
        let mut val = |flag: &str| args.next().ok_or_else(|| format!("{flag} needs a value"));
        match a.as_str() {
            "-h" | "--help" => {
                println!("{HELP}");
                return Ok(());
            }
            "--name" => name = val("--name")?,
            "--random" => random = val("--random")?.parse()?,
            "--keys" => keys_n = val("--keys")?.parse::<u64>()?.max(1),
            k => keys.push(k.to_string()),
        }
    }
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
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = format!("key-{:06}", x % keys_n);
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
