//! A multi-process work queue (posix-shm's multiprocessing example, done
//! with real processes and blocking, crash-tolerant queues).
//!
//! The main process creates an `ObjectSegment` with a `tasks` queue and a
//! `results` queue, then starts one producer process and N worker processes
//! (this same binary re-executed with `--role`). The producer pushes tasks
//! and one stop marker per worker; workers pop tasks (sleeping on a futex
//! when the queue is empty), compute, and push results; the main process
//! collects every result and checks none is missing or duplicated.
//!
//! ```text
//! cargo run --release --example work_queue -- --tasks 100000 --workers 2
//! ```

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use bytemuck::{Pod, Zeroable};
use clap::Parser;
use venom_collections::ObjectSegment;

/// A producer process and worker processes sharing queues.
#[derive(Parser)]
#[command(name = "work_queue")]
struct Args {
    /// Tasks to produce.
    #[arg(long, value_name = "N", default_value_t = 20_000)]
    tasks: u64,
    /// Worker processes.
    #[arg(long, value_name = "N", default_value_t = 2)]
    workers: u64,
    /// Tasks queue capacity.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    capacity: usize,
    /// Segment name (default work-queue-<pid>).
    #[arg(long)]
    name: Option<String>,
    /// Internal: run as `producer` or `worker<N>`.
    #[arg(long, hide = true)]
    role: Option<String>,
}

const STOP: u64 = u64::MAX;
const WAIT: Duration = Duration::from_secs(10);

/// A task: compute the Collatz length of `n`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Task {
    id: u64,
    n: u64,
}

/// A result.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Done {
    id: u64,
    steps: u64,
    worker: u64,
}

fn collatz(mut n: u64) -> u64 {
    let mut steps = 0;
    while n > 1 {
        n = if n & 1 == 0 { n / 2 } else { 3 * n + 1 };
        steps += 1;
    }
    steps
}

fn producer(name: &str, tasks: u64, workers: u64) -> Result<(), Box<dyn std::error::Error>> {
    let shm = ObjectSegment::open(name)?;
    let q = shm.open_queue::<Task>("tasks")?;
    for id in 0..tasks {
        q.push(Task { id, n: id + 1 }, WAIT)?;
    }
    for _ in 0..workers {
        q.push(Task { id: STOP, n: 0 }, WAIT)?;
    }
    Ok(())
}

fn worker(name: &str, me: u64) -> Result<(), Box<dyn std::error::Error>> {
    let shm = ObjectSegment::open(name)?;
    let tasks = shm.open_queue::<Task>("tasks")?;
    let results = shm.open_queue::<Done>("results")?;
    loop {
        let t = tasks.pop(WAIT)?;
        if t.id == STOP {
            return Ok(());
        }
        results.push(Done { id: t.id, steps: collatz(t.n), worker: me }, WAIT)?;
    }
}

/// Kills the children on drop (error paths included).
struct Kids(Vec<Child>);

impl Drop for Kids {
    fn drop(&mut self) {
        for c in &mut self.0 {
            if let Ok(None) = c.try_wait() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Args { tasks, workers, capacity, name, role } = Args::parse();
    let name = name.unwrap_or_else(|| format!("work-queue-{}", std::process::id()));
    match role.as_deref() {
        Some("producer") => return producer(&name, tasks, workers),
        Some(r) if r.starts_with("worker") => return worker(&name, r[6..].parse()?),
        Some(r) => return Err(format!("unknown role {r}").into()),
        None => {}
    }
    let shm = ObjectSegment::create(&name, 16 << 20)?;
    shm.queue::<Task>("tasks", capacity)?;
    let results = shm.queue::<Done>("results", capacity)?;
    let exe = std::env::current_exe()?;
    let start = Instant::now();
    let mut kids = Kids(Vec::new());
    let base = ["--name", name.as_str(), "--tasks", &tasks.to_string(), "--workers", &workers.to_string()];
    for w in 0..workers {
        kids.0.push(Command::new(&exe).args(base).args(["--role", &format!("worker{w}")]).spawn()?);
    }
    kids.0.push(Command::new(&exe).args(base).args(["--role", "producer"]).spawn()?);
    println!("producer + {workers} workers started on segment {name:?}");
    let mut seen = vec![false; tasks as usize];
    let mut per_worker = vec![0u64; workers as usize];
    let mut longest = (0, 0);
    for _ in 0..tasks {
        let d = results.pop(WAIT)?;
        let slot = seen.get_mut(d.id as usize).ok_or("result for an unknown task")?;
        if std::mem::replace(slot, true) {
            return Err(format!("task {} completed twice", d.id).into());
        }
        if let Some(c) = per_worker.get_mut(d.worker as usize) {
            *c += 1;
        }
        if d.steps > longest.1 {
            longest = (d.id + 1, d.steps);
        }
    }
    let elapsed = start.elapsed();
    for c in &mut kids.0 {
        let status = c.wait()?;
        if !status.success() {
            return Err(format!("child failed: {status}").into());
        }
    }
    println!(
        "{tasks} tasks done exactly once in {elapsed:.2?} ({:.0} tasks/s); per worker {per_worker:?}",
        tasks as f64 / elapsed.as_secs_f64()
    );
    println!("longest Collatz chain below {}: n = {} ({} steps)", tasks + 1, longest.0, longest.1);
    for o in shm.objects() {
        println!("  object {:8} {:8} capacity {:6} {:8} bytes", o.name, o.kind.as_str(), o.capacity, o.bytes);
    }
    shm.unlink()?;
    Ok(())
}
