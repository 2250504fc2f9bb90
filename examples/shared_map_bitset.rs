//! A shared `Bitset` and `HashMap` used by several processes at once.
//!
//! Worker processes walk overlapping, shuffled ranges of job ids. A worker
//! claims a job with `Bitset::set` (which returns the previous bit, so exactly
//! one process wins each id), computes it, and records the result in a shared
//! `HashMap<u64, JobResult>`. The main process then checks that every job was
//! done exactly once and reads the results back by key and by iteration.
//!
//! ```text
//! cargo run --release --example shared_map_bitset -- --jobs 50000 --workers 3
//! ```

use std::process::Command;
use std::time::Instant;

use bytemuck::{Pod, Zeroable};
use clap::Parser;
use venom_collections::ObjectSegment;

/// Processes claim jobs in a shared bitset and store results in a shared map.
#[derive(Parser)]
#[command(name = "shared_map_bitset")]
struct Args {
    /// Job ids 0..N.
    #[arg(long, value_name = "N", default_value_t = 20_000)]
    jobs: u64,
    /// Worker processes.
    #[arg(long, value_name = "N", default_value_t = 2)]
    workers: u64,
    /// Segment name (default map-bitset-<pid>).
    #[arg(long)]
    name: Option<String>,
    /// Internal: run as worker number N.
    #[arg(long = "worker", value_name = "N", hide = true)]
    role: Option<u64>,
}

/// What a worker stores per job.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct JobResult {
    worker: u64,
    digit_sum: u64,
}

fn digit_sum(mut n: u64) -> u64 {
    let mut s = 0;
    while n > 0 {
        s += n % 10;
        n /= 10;
    }
    s
}

fn worker(name: &str, me: u64, jobs: u64) -> Result<(), Box<dyn std::error::Error>> {
    let shm = ObjectSegment::open(name)?;
    let claimed = shm.open_bitset("claimed")?;
    let results = shm.open_hash_map::<u64, JobResult>("results")?;
    // Every worker visits every id, in its own order: heavy overlap.
    let stride = [7919u64, 104_729, 1_299_709][(me % 3) as usize];
    let mut id = me * 17 % jobs;
    for _ in 0..jobs {
        id = (id + stride) % jobs;
        if !claimed.set(id)? {
            results.insert(id, JobResult { worker: me, digit_sum: digit_sum(id * id) })?;
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Args { jobs, workers, name, role } = Args::parse();
    let name = name.unwrap_or_else(|| format!("map-bitset-{}", std::process::id()));
    if jobs == 0 {
        return Err("--jobs must be positive".into());
    }
    if let Some(me) = role {
        return worker(&name, me, jobs);
    }
    let map_slots = (jobs as usize * 2).next_power_of_two();
    let shm = ObjectSegment::create(&name, map_slots * 24 + jobs as usize / 8 + (1 << 20))?;
    let claimed = shm.bitset("claimed", jobs)?;
    let results = shm.hash_map::<u64, JobResult>("results", map_slots)?;
    let exe = std::env::current_exe()?;
    let start = Instant::now();
    let mut kids = Vec::new();
    for w in 0..workers {
        let args = ["--name", name.as_str(), "--jobs", &jobs.to_string(), "--worker", &w.to_string()];
        kids.push(Command::new(&exe).args(args).spawn()?);
    }
    let mut failed = false;
    for mut k in kids {
        failed |= !k.wait()?.success();
    }
    if failed {
        shm.unlink()?;
        return Err("a worker failed".into());
    }
    let elapsed = start.elapsed();
    let mut per_worker = vec![0u64; workers as usize];
    for (id, r) in results.iter() {
        if r.digit_sum != digit_sum(id * id) {
            return Err(format!("job {id} has a wrong result").into());
        }
        per_worker[r.worker as usize] += 1;
    }
    println!(
        "{workers} processes claimed {} of {jobs} jobs via the bitset in {elapsed:.2?}; results in the map: {} (per worker {per_worker:?})",
        claimed.count_ones(),
        results.len()
    );
    if claimed.count_ones() != jobs || results.len() as u64 != jobs {
        return Err("some job was lost or done twice".into());
    }
    println!("job 12345 -> {:?}", results.get(&(12345 % jobs))?);
    shm.unlink()?;
    Ok(())
}
