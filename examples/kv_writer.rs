//! Writes keys into a shared-memory `KvCache` (MemStream's `writer.py`).
//!
//! ```text
//! cargo run --example kv_writer -- --name memstream --create user:1=alice user:2=bob
//! cargo run --example kv_writer -- --name memstream --load 1000 --value-size 256 --ttl-ms 60000
//! cargo run --example kv_writer -- --name memstream --delete user:2
//! ```

use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use venom_collections::{Eviction, KvCache, KvConfig};

/// Put keys into a shared-memory KvCache.
#[derive(Parser)]
#[command(name = "kv_writer")]
struct Args {
    /// Cache segment name.
    #[arg(long, default_value = "memstream")]
    name: String,
    /// Create the cache (fails if a live process owns the name).
    #[arg(long)]
    create: bool,
    /// Entries when creating.
    #[arg(long, value_name = "N", default_value_t = KvConfig::default().max_entries)]
    max_entries: usize,
    /// Value bytes when creating.
    #[arg(long, value_name = "N", default_value_t = KvConfig::default().data_bytes)]
    data_bytes: usize,
    /// Eviction policy when creating.
    #[arg(long, value_enum, value_name = "POLICY", default_value_t = Policy::Clock)]
    eviction: Policy,
    /// TTL in milliseconds for the entries written.
    #[arg(long = "ttl-ms", value_name = "MS")]
    ttl_ms: Option<u64>,
    /// Also write N keys key-000000.. with generated values.
    #[arg(long, value_name = "N", default_value_t = 0)]
    load: usize,
    /// Size of generated values.
    #[arg(long, value_name = "S", default_value_t = 64)]
    value_size: usize,
    /// Delete KEY (repeatable).
    #[arg(long = "delete", value_name = "KEY")]
    deletes: Vec<String>,
    /// Remove the cache name when done.
    #[arg(long)]
    unlink: bool,
    /// Entries to put.
    #[arg(value_name = "KEY=VALUE", value_parser = key_value)]
    pairs: Vec<(String, String)>,
}

/// `--eviction` values.
#[derive(Clone, Copy, ValueEnum)]
enum Policy {
    Reject,
    Clock,
}

fn key_value(kv: &str) -> Result<(String, String), String> {
    kv.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {kv:?}"))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Args { name, create, max_entries, data_bytes, eviction, ttl_ms, load, value_size, deletes, unlink, pairs } =
        Args::parse();
    let eviction = match eviction {
        Policy::Reject => Eviction::Reject,
        Policy::Clock => Eviction::Clock,
    };
    let cfg = KvConfig { max_entries, data_bytes, eviction, ..KvConfig::default() };
    let ttl = ttl_ms.map(Duration::from_millis);
    let cache = if create { KvCache::create(&name, cfg)? } else { KvCache::open(&name)? };
    let put = |k: &[u8], v: &[u8]| match ttl {
        Some(t) => cache.put_with_ttl(k, v, t),
        None => cache.put(k, v),
    };
    for (k, v) in &pairs {
        put(k.as_bytes(), v.as_bytes())?;
        println!("put {k} ({} bytes)", v.len());
    }
    if load > 0 {
        let start = Instant::now();
        for i in 0..load {
            let value: Vec<u8> = (0..value_size).map(|j| (i + j) as u8).collect();
            put(format!("key-{i:06}").as_bytes(), &value)?;
        }
        let dt = start.elapsed();
        println!(
            "put {load} generated keys of {value_size} B in {dt:?} ({:.0} ns/put)",
            dt.as_nanos() as f64 / load as f64
        );
    }
    for k in &deletes {
        println!("delete {k}: {}", if cache.delete(k.as_bytes())? { "removed" } else { "not present" });
    }
    let s = cache.stats();
    println!("cache {name}: {} entries, {} of {} value bytes in use", s.len, s.used_bytes, s.data_bytes);
    if unlink {
        cache.unlink()?;
    }
    Ok(())
}
