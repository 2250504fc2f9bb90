//! `venom watch`: samples a segment every interval and shows rates.
//!
//! On a terminal each sample redraws the screen; otherwise (pipes, tests)
//! every sample is one line, or one JSON object per line with `--json`.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};
use venom_core::inspect;

use crate::cli::WatchArgs;
use crate::failure::{self, Failure};
use crate::render;
use crate::stat;

/// Runs the sampling loop until `--count` samples or the segment vanishes.
pub fn run(args: &WatchArgs, json: bool) -> Result<(), Failure> {
    let interval = Duration::from_secs_f64(args.interval);
    let tty = !json && std::io::stdout().is_terminal();
    let mut prev: Option<(Instant, Value)> = None;
    let mut n = 0u64;
    loop {
        let info = inspect::inspect(&args.name).map_err(|e| failure::core(&args.name, &e))?;
        let (kind, details) = match stat::details(&info, 5)? {
            Some((k, v)) => (k, v),
            None => ("segment", Value::Null),
        };
        let now = Instant::now();
        let dt = prev.as_ref().map(|(t, _)| now.duration_since(*t).as_secs_f64());
        let rates = rates(kind, &details, prev.as_ref().map(|(_, v)| v), dt);
        let unix = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        let sample = json!({
            "time": unix,
            "name": info.name,
            "kind": kind,
            "state": render::state_word(&info),
            "stats": details,
            "rates": rates,
        });
        if json {
            println!("{sample}");
        } else {
            if tty {
                // Redraw like `watch(1)`: summary line, then the full view.
                print!("\x1b[H\x1b[2J");
                println!("venom watch {}  every {:.2}s  (Ctrl-C to stop)\n", args.name, args.interval);
                println!("{}\n", line(&sample));
                stat::print_value(&json!({ kind: sample["stats"].clone() }), 0);
            } else {
                println!("{}", line(&sample));
            }
        }
        let _ = std::io::stdout().flush();
        n += 1;
        if args.count.is_some_and(|c| n >= c) {
            return Ok(());
        }
        prev = Some((now, details));
        std::thread::sleep(interval);
    }
}

/// Per-second rates between two samples of the same kind.
fn rates(kind: &str, cur: &Value, prev: Option<&Value>, dt: Option<f64>) -> Value {
    let (Some(prev), Some(dt)) = (prev, dt.filter(|d| *d > 0.0)) else { return Value::Null };
    let delta = |field: &str| {
        let (a, b) = (cur[field].as_u64()?, prev[field].as_u64()?);
        Some(a.saturating_sub(b))
    };
    let per_sec = |field: &str| delta(field).map(|d| d as f64 / dt);
    match kind {
        "region" => json!({ "writes_per_sec": per_sec("writes") }),
        "channel" => json!({ "data_versions_per_sec": per_sec("data_version").map(|v| v / 2.0) }),
        "kv" => {
            let (h, m) = (delta("hits").unwrap_or(0), delta("misses").unwrap_or(0));
            let interval_hit_rate = if h + m == 0 { None } else { Some(h as f64 / (h + m) as f64) };
            json!({
                "reads_per_sec": (h + m) as f64 / dt,
                "interval_hit_rate": interval_hit_rate,
                "writes_per_sec": (delta("inserts").unwrap_or(0) + delta("updates").unwrap_or(0)) as f64 / dt,
            })
        }
        _ => Value::Null,
    }
}

/// One human line of a sample.
fn line(s: &Value) -> String {
    let st = &s["stats"];
    let r = &s["rates"];
    let rate = |v: &Value| v.as_f64().map_or_else(|| "-".to_owned(), |f| format!("{f:.1}"));
    let pct = |v: &Value| v.as_f64().map_or_else(|| "-".to_owned(), |f| format!("{:.1}%", f * 100.0));
    let state = s["state"].as_str().unwrap_or("-");
    match s["kind"].as_str().unwrap_or("") {
        "region" => format!(
            "{state}  version {}  writes/s {}  writer {} ({})  torn {}",
            st["version"],
            rate(&r["writes_per_sec"]),
            st["writer_pid"],
            if st["writer_alive"].as_bool() == Some(true) { "alive" } else { "dead" },
            st["torn"],
        ),
        "channel" => format!(
            "{state}  data version {}  updates/s {}  clients {}/{}  queued {}",
            st["data_version"],
            rate(&r["data_versions_per_sec"]),
            st["clients_in_use"],
            st["max_clients"],
            st["queued_commands"],
        ),
        "kv" => format!(
            "{state}  len {}/{}  hit rate {} (interval {})  reads/s {}  writes/s {}  evictions {}",
            st["len"],
            st["max_entries"],
            pct(&st["hit_rate"]),
            pct(&r["interval_hit_rate"]),
            rate(&r["reads_per_sec"]),
            rate(&r["writes_per_sec"]),
            st["evictions"],
        ),
        "collections" => format!(
            "{state}  objects {}  used {} of {} bytes",
            st["objects"].as_array().map_or(0, Vec::len),
            st["used_bytes"],
            st["data_bytes"],
        ),
        _ => state.to_string(),
    }
}
