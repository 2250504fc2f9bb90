//! Demo section `collections`: named structures in one shared segment used
//! by several processes, a worker killed mid-stream, and a shared map.

use std::time::{Duration, Instant};

use venom_collections::ObjectSegment;
use venom_examples::Children;

const TASKS: u64 = 200_000;
const STOP: u64 = u64::MAX;
const WAIT: Duration = Duration::from_secs(5);
const MAP_KEYS: u64 = 50_000;

/// Runs the section from the parent demo process.
pub fn run(exe: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let name = format!("demo-coll-{}", std::process::id());
    let shm = ObjectSegment::create(&name, 32 << 20)?;
    let result = story(exe, &shm);
    shm.unlink()?;
    result
}

fn story(exe: &std::path::Path, shm: &ObjectSegment) -> Result<(), Box<dyn std::error::Error>> {
    let name = shm.name().to_owned();
    let tasks = shm.queue::<u64>("tasks", 1024)?;
    let done = shm.bitset("done", TASKS)?;
    let per_worker = shm.array::<u64>("per_worker", 2)?;
    println!(
        "  segment {name:?}: queue 'tasks', bitset 'done', array 'per_worker' (created by name, attached by name)"
    );

    // 1. One producer (us), two worker processes.
    let mut kids = Children::new("collections");
    for w in ["0", "1"] {
        kids.spawn(exe, &["worker", &name, w])?;
    }
    let t = Instant::now();
    for i in 0..TASKS {
        tasks.push(i, WAIT)?;
    }
    for _ in 0..2 {
        tasks.push(STOP, WAIT)?;
    }
    kids.join(Duration::from_secs(10))?;
    let el = t.elapsed();
    let (a, b) = (per_worker.load(0)?, per_worker.load(1)?);
    if done.count_ones() != TASKS {
        return Err(format!("only {} of {TASKS} tasks done", done.count_ones()).into());
    }
    println!(
        "  {TASKS} tasks through the queue to 2 worker processes in {el:.1?} ({:.1} M tasks/s), each done exactly once (worker split {a}/{b})",
        TASKS as f64 / el.as_secs_f64() / 1e6
    );

    // 2. SIGKILL a worker mid-stream; the other finishes the work.
    done.clear_all();
    per_worker.copy_from_slice(0, &[0, 0])?;
    let mut kids = Children::new("collections");
    for w in ["0", "1"] {
        kids.spawn(exe, &["worker", &name, w])?;
    }
    let mut killed = false;
    for i in 0..TASKS {
        tasks.push(i, WAIT)?;
        if !killed && per_worker.load(0)? >= 20_000 {
            kids.kill9(0)?;
            killed = true;
        }
    }
    if !killed {
        kids.kill9(0)?;
    }
    tasks.push(STOP, WAIT)?;
    let survivor = &mut kids.procs[1];
    let deadline = Instant::now() + Duration::from_secs(10);
    while survivor.try_wait()?.is_none() {
        if Instant::now() > deadline {
            return Err("surviving worker did not finish".into());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let lost = TASKS - done.count_ones();
    println!(
        "  killed worker 0 (SIGKILL) after {} tasks; worker 1 finished the rest; tasks lost with the dead worker: {lost} (at most the one it held), queue still usable: {}",
        per_worker.load(0)?,
        tasks.is_empty()
    );
    if lost > 1 {
        return Err(format!("unexpected: lost {lost} tasks").into());
    }

    // 3. A map filled by another process, read here.
    let squares = shm.hash_map::<u64, u64>("squares", (MAP_KEYS * 2) as usize)?;
    let mut kids = Children::new("collections");
    kids.spawn(exe, &["mapper", &name])?;
    kids.join(Duration::from_secs(10))?;
    let t = Instant::now();
    let mut sum = 0u64;
    for k in 0..MAP_KEYS {
        sum = sum.wrapping_add(squares.get(&k)?.ok_or("missing key")?);
    }
    let ns = t.elapsed().as_nanos() as f64 / MAP_KEYS as f64;
    println!(
        "  hashmap: a child process inserted {MAP_KEYS} keys; {} entries here, get {ns:.0} ns/op (checksum {sum})",
        squares.len()
    );

    // 4. Bitset and array, single-thread.
    let bits = shm.bitset("flags", 1 << 20)?;
    let t = Instant::now();
    for i in 0..4_000_000u64 {
        bits.set((i * 7919) & ((1 << 20) - 1))?;
    }
    let bit_rate = 4e6 / t.elapsed().as_secs_f64() / 1e6;
    let counters = shm.array::<u64>("counters", 1024)?;
    let t = Instant::now();
    for i in 0..4_000_000usize {
        counters.fetch_add(i & 1023, 1)?;
    }
    let arr_rate = 4e6 / t.elapsed().as_secs_f64() / 1e6;
    println!("  bitset set: {bit_rate:.0} M ops/s; array fetch_add: {arr_rate:.0} M ops/s (one thread)");
    let list: Vec<String> = shm.objects().iter().map(|o| format!("{}:{}", o.name, o.kind.as_str())).collect();
    println!("  directory: {}", list.join(", "));
    Ok(())
}

/// Entry point for a child process spawned by `run`.
pub fn child(role: &str, args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let name = args.first().ok_or("segment name missing")?;
    let shm = ObjectSegment::open(name)?;
    match role {
        "worker" => {
            let me: usize = args.get(1).ok_or("worker id missing")?.parse()?;
            let tasks = shm.open_queue::<u64>("tasks")?;
            let done = shm.open_bitset("done")?;
            let per_worker = shm.open_array::<u64>("per_worker")?;
            loop {
                let t = tasks.pop(WAIT)?;
                if t == STOP {
                    return Ok(());
                }
                if done.set(t)? {
                    return Err(format!("task {t} done twice").into());
                }
                per_worker.fetch_add(me, 1)?;
            }
        }
        "mapper" => {
            let squares = shm.open_hash_map::<u64, u64>("squares")?;
            for k in 0..MAP_KEYS {
                squares.insert(k, k * k)?;
            }
            Ok(())
        }
        other => Err(format!("unknown collections role {other}").into()),
    }
}
