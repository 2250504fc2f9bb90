//! Writes keys into a shared-memory `KvCache` (MemStream's `writer.py`).
//!
//! ```text
//! cargo run --example kv_writer -- --name memstream --create user:1=alice user:2=bob
//! cargo run --example kv_writer -- --name memstream --load 1000 --value-size 256 --ttl-ms 60000
//! cargo run --example kv_writer -- --name memstream --delete user:2
//! ```

use std::time::{Duration, Instant};

use venom_collections::{Eviction, KvCache, KvConfig};

const HELP: &str = "kv_writer: put keys into a shared-memory KvCache

USAGE: kv_writer [OPTIONS] [KEY=VALUE]...

OPTIONS:
  --name NAME         cache segment name (default: memstream)
  --create            create the cache (fails if a live process owns the name)
  --max-entries N     entries when creating (default 4096)
  --data-bytes N      value bytes when creating (default 4 MiB)
  --eviction POLICY   reject | clock, when creating (default clock)
  --ttl-ms MS         TTL for the entries written
  --load N            also write N keys key-000000.. with generated values
  --value-size S      size of generated values (default 64)
  --delete KEY        delete KEY (repeatable)
  --unlink            remove the cache name when done
  -h, --help          this text";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (mut name, mut create, mut unlink) = ("memstream".to_string(), false, false);
    let mut cfg = KvConfig { eviction: Eviction::Clock, ..KvConfig::default() };
    let (mut ttl, mut load, mut value_size) = (None, 0usize, 64usize);
    let (mut pairs, mut deletes) = (Vec::new(), Vec::new());
    while let Some(a) = args.next() {
        let mut val = |flag: &str| args.next().ok_or_else(|| format!("{flag} needs a value"));
        match a.as_str() {
            "-h" | "--help" => {
                println!("{HELP}");
                return Ok(());
            }
            "--name" => name = val("--name")?,
            "--create" => create = true,
            "--unlink" => unlink = true,
            "--max-entries" => cfg.max_entries = val("--max-entries")?.parse()?,
            "--data-bytes" => cfg.data_bytes = val("--data-bytes")?.parse()?,
            "--eviction" => {
                cfg.eviction = match val("--eviction")?.as_str() {
                    "reject" => Eviction::Reject,
                    "clock" => Eviction::Clock,
                    other => return Err(format!("unknown eviction policy {other:?}").into()),
                }
            }
            "--ttl-ms" => ttl = Some(Duration::from_millis(val("--ttl-ms")?.parse()?)),
            "--load" => load = val("--load")?.parse()?,
            "--value-size" => value_size = val("--value-size")?.parse()?,
            "--delete" => deletes.push(val("--delete")?),
            kv => match kv.split_once('=') {
                Some((k, v)) => pairs.push((k.to_string(), v.to_string())),
                None => return Err(format!("expected KEY=VALUE or an option, got {kv:?} (see --help)").into()),
            },
        }
    }
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
