//! Prints usage, hit rates and the hottest keys of a shared-memory
//! `KvCache` (MemStream's `analytics.py`).
//!
//! ```text
//! cargo run --example kv_analytics -- --name memstream --top 5
//! ```

use std::time::SystemTime;

use clap::Parser;
use venom_collections::{EntryMeta, KvCache};

/// Usage, hit rates and hottest keys of a KvCache.
#[derive(Parser)]
#[command(name = "kv_analytics")]
struct Args {
    /// Cache segment name.
    #[arg(long, default_value = "memstream")]
    name: String,
    /// How many keys to list per ranking.
    #[arg(long, value_name = "N", default_value_t = 10)]
    top: usize,
}

fn ago(t: SystemTime) -> String {
    match SystemTime::now().duration_since(t) {
        Ok(d) if d.as_secs() >= 60 => format!("{}m{:02}s ago", d.as_secs() / 60, d.as_secs() % 60),
        Ok(d) => format!("{:.1}s ago", d.as_secs_f64()),
        Err(_) => "now".into(),
    }
}

fn row(m: &EntryMeta) -> String {
    format!(
        "{:<24} {:>8} B {:>8} reads  last {:>10}  created {:>10}  v{}",
        String::from_utf8_lossy(&m.key),
        m.value_len,
        m.access_count,
        ago(m.last_access),
        ago(m.created_at),
        m.version
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Args { name, top } = Args::parse();
    let cache = KvCache::open(&name)?;
    let s = cache.stats();
    println!("cache {name}");
    println!("  entries     {} / {}", s.len, s.max_entries);
    println!(
        "  data        {} used, {} free of {} bytes ({:.1}% used); values {} bytes",
        s.used_bytes,
        s.free_bytes,
        s.data_bytes,
        100.0 * s.used_bytes as f64 / s.data_bytes.max(1) as f64,
        s.value_bytes
    );
    println!(
        "  fragmentation {:.1}% external (largest free block {} B), {:.1}% block rounding",
        100.0 * s.fragmentation,
        s.largest_free_block,
        100.0 * s.internal_waste
    );
    println!("  reads       {} hits, {} misses, hit rate {:.1}%", s.hits, s.misses, 100.0 * s.hit_rate());
    println!(
        "  writes      {} inserts, {} updates, {} deletes, {} evictions, {} expirations, {} rejected",
        s.inserts, s.updates, s.deletes, s.evictions, s.expirations, s.rejects
    );
    if s.recoveries > 0 {
        println!("  recoveries  {} (a writer died holding the lock)", s.recoveries);
    }
    println!("hottest {top} keys by access count:");
    for m in cache.top_by_access_count(top) {
        println!("  {}", row(&m));
    }
    println!("{top} most recently used keys:");
    for m in cache.top_by_recency(top) {
        println!("  {}", row(&m));
    }
    Ok(())
}
