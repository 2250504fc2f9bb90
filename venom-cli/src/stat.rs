//! `venom stat`: the header summary plus kind-specific statistics, each
//! read through the owning crate's read-only API.

use serde_json::{Value, json};
use venom_collections::{KvCache, ObjectSegment};
use venom_core::channel::ChannelInfo;
use venom_core::inspect::{self, SegmentInfo, Status};
use venom_core::{CmdQueue, SegmentKind, SeqReader};

use crate::cli::StatArgs;
use crate::failure::{self, Failure};
use crate::render::{self, SegmentRecord};

/// Shows one segment.
pub fn run(args: &StatArgs, json: bool) -> Result<(), Failure> {
    let info = inspect::inspect(&args.name).map_err(|e| failure::core(&args.name, &e))?;
    let details = details(&info, args.top);
    let mut out = json!({ "segment": SegmentRecord::of(&info) });
    let failed = match details {
        Ok(Some((kind, v))) => {
            out[kind] = v;
            None
        }
        Ok(None) => None,
        Err(f) => {
            out["error"] = Value::String(f.message.clone());
            Some(f)
        }
    };
    if json {
        failure::print_json(&out)?;
    } else {
        print_value(&out, 0);
    }
    match failed {
        Some(f) => Err(f),
        None => Ok(()),
    }
}

/// Kind-specific statistics of a READY segment: `(section name, value)`.
pub fn details(info: &SegmentInfo, top: usize) -> Result<Option<(&'static str, Value)>, Failure> {
    if info.status != Status::Ready {
        return Ok(None);
    }
    let name = info.name.as_str();
    Ok(Some(match info.kind() {
        Some(SegmentKind::SEQ_REGION) => ("region", region(name)?),
        Some(SegmentKind::CHANNEL) => ("channel", channel(name)?),
        Some(SegmentKind::COLLECTIONS) => ("collections", collections(name)?),
        Some(SegmentKind::KV_CACHE) => ("kv", kv(name, top)?),
        // A raw segment may hold a standalone command queue; anything else
        // raw has no structure to show.
        Some(SegmentKind::RAW) => match cmd_queue(name) {
            Some(v) => ("queue", v),
            None => return Ok(None),
        },
        _ => return Ok(None),
    }))
}

/// Region statistics through [`SeqReader`] (a reader only loads).
pub fn region(name: &str) -> Result<Value, Failure> {
    let r = SeqReader::open(name).map_err(|e| failure::core(name, &e))?;
    Ok(json!({
        "version": r.version(),
        "writes": r.version() / 2,
        "size": r.size(),
        "chunk_size": r.chunk_size(),
        "chunks": r.chunk_count(),
        "last_write_len": r.last_write_len(),
        "writer_pid": r.writer().map(|w| w.pid),
        "writer_alive": r.writer_alive(),
        "writer_epoch": r.writer_epoch(),
        "torn": r.is_torn(),
    }))
}

/// Channel statistics through [`ChannelInfo::read`] (claims no slot).
pub fn channel(name: &str) -> Result<Value, Failure> {
    let c = ChannelInfo::read(name).map_err(|e| failure::core(name, &e))?;
    let clients: Vec<Value> = c
        .clients
        .iter()
        .map(|s| {
            json!({
                "slot": s.slot, "pid": s.pid, "alive": s.alive, "generation": s.generation,
                "queued_commands": s.queued_commands, "queued_replies": s.queued_replies,
            })
        })
        .collect();
    Ok(json!({
        "daemon_pid": c.daemon.pid,
        "daemon_alive": c.daemon_alive,
        "closed": c.closed,
        "max_clients": c.max_clients,
        "clients_in_use": c.clients.iter().filter(|s| s.alive).count(),
        "cmd_slots": c.cmd_slots,
        "max_msg_size": c.max_msg_size,
        "queued_commands": c.clients.iter().map(|s| s.queued_commands).sum::<u64>(),
        "data_version": c.data_version,
        "data_size": c.data_size,
        "data_len": c.data_len,
        "clients": clients,
    }))
}

/// A standalone command queue through [`CmdQueue::lane_stats`] (claims no
/// lane, does not register as consumer); `None` if the raw segment is not
/// a queue.
pub fn cmd_queue(name: &str) -> Option<Value> {
    let q = CmdQueue::open(name).ok()?;
    let lanes: Vec<Value> = q
        .lane_stats()
        .iter()
        .filter(|l| l.owner.is_some() || l.queued > 0)
        .map(|l| {
            json!({
                "lane": l.lane, "pid": l.owner.map(|o| o.pid), "alive": l.owner_alive,
                "generation": l.generation, "queued": l.queued,
            })
        })
        .collect();
    let consumer = q.consumer_process();
    Some(json!({
        "lanes": q.lanes(),
        "depth": q.depth(),
        "max_msg_size": q.max_msg_size(),
        "live_producers": q.live_producers(),
        "consumer_pid": consumer.map(|c| c.0.pid),
        "consumer_alive": consumer.is_some_and(|c| c.1),
        "producers": lanes,
    }))
}

/// The object directory through [`ObjectSegment::objects`].
pub fn collections(name: &str) -> Result<Value, Failure> {
    let seg = ObjectSegment::open(name).map_err(|e| failure::collections(name, &e))?;
    let objects: Vec<Value> = seg
        .objects()
        .iter()
        .map(|o| {
            json!({
                "name": o.name, "kind": o.kind.as_str(), "items": o.items, "capacity": o.capacity,
                "elem_size": o.elem_size, "bytes": o.bytes,
            })
        })
        .collect();
    Ok(json!({
        "data_bytes": seg.data_bytes(),
        "used_bytes": seg.used_bytes(),
        "objects": objects,
    }))
}

/// Cache statistics and the most-read keys through [`KvCache::stats`] and
/// [`KvCache::top_by_access_count`].
pub fn kv(name: &str, top: usize) -> Result<Value, Failure> {
    let cache = KvCache::open(name).map_err(|e| failure::collections(name, &e))?;
    let s = cache.stats();
    let keys: Vec<Value> = cache
        .top_by_access_count(top)
        .iter()
        .map(|m| {
            json!({
                "key": render::escape_bytes(&m.key), "reads": m.access_count,
                "value_len": m.value_len, "version": m.version,
            })
        })
        .collect();
    Ok(json!({
        "len": s.len, "max_entries": s.max_entries,
        "hits": s.hits, "misses": s.misses, "hit_rate": s.hit_rate(),
        "inserts": s.inserts, "updates": s.updates, "deletes": s.deletes,
        "evictions": s.evictions, "expirations": s.expirations, "rejects": s.rejects,
        "recoveries": s.recoveries,
        "data_bytes": s.data_bytes, "used_bytes": s.used_bytes, "free_bytes": s.free_bytes,
        "fragmentation": s.fragmentation,
        "top_keys": keys,
    }))
}

/// Human rendering of a JSON tree: `key: value` lines, nested objects
/// indented, arrays of objects as tables.
pub fn print_value(v: &Value, indent: usize) {
    let pad = " ".repeat(indent);
    let Value::Object(map) = v else { return };
    for (k, v) in map {
        match v {
            Value::Object(_) => {
                println!("{pad}{k}:");
                print_value(v, indent + 2);
            }
            Value::Array(items) if items.iter().all(Value::is_object) => {
                if items.is_empty() {
                    println!("{pad}{k}: none");
                    continue;
                }
                println!("{pad}{k}:");
                let cols: Vec<&String> = items[0].as_object().map(|o| o.keys().collect()).unwrap_or_default();
                let mut rows = vec![cols.iter().map(|c| c.to_uppercase()).collect::<Vec<_>>()];
                for item in items {
                    rows.push(cols.iter().map(|c| scalar(&item[c.as_str()])).collect());
                }
                for row in &mut rows {
                    if let Some(first) = row.first_mut() {
                        *first = format!("{pad}  {first}");
                    }
                }
                render::print_table(&rows);
            }
            Value::Null => {}
            other => println!("{pad}{k}: {}", scalar(other)),
        }
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.4}"),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}
