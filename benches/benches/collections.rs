//! venom-collections throughput, with same-run baselines.
//!
//! `cargo bench -p venom-benches --bench collections -- --measurement-time 2 --warm-up-time 1`
//!
//! * `coll_single/*`: one thread; one iteration = [`BATCH`] operations
//!   (a queue/stack "pair" = one push + one pop = 2 operations).
//!   Baselines: crossbeam `ArrayQueue` (in-process) and iceoryx2
//!   publish-subscribe over its `ipc` service (shared memory; a publisher
//!   and a subscriber of `u64` in this thread, `send_copy` + `receive`) for
//!   the queue, `Mutex<std HashMap>` (default SipHash) for the map.
//! * `coll_2threads/*`: two threads of this process, each doing push+pop
//!   pairs (or map get/insert mixes) on one shared structure; one iteration =
//!   one pair per thread (4 queue operations; 2 map operations).
//! * `coll_2procs/*`: the same with this process and a child process (this
//!   binary re-executed with `VENOM_COLL_BENCH_CHILD` set, started before
//!   criterion measures anything), both running `iters` pairs at the same
//!   time; the time is until both are done.

use std::collections::HashMap as StdMap;
use std::hint::black_box;
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput};
use crossbeam_queue::ArrayQueue;
use venom_collections::{Array, ObjectSegment};

const BATCH: u64 = 1024;
const CHILD_ENV: &str = "VENOM_COLL_BENCH_CHILD";
const QCAP: usize = 1024;
const MAP_CAP: usize = 1 << 16;
const MAP_KEYS: u64 = 1 << 15;

/// xorshift64: a cheap key sequence that defeats the prefetcher a little.
#[inline]
fn next(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// Bits of the benchmarked bitset.
const BITS: u64 = 1 << 20;

/// The next bit of a walk over the bitset with a prime stride (consecutive
/// operations touch different words).
#[inline]
fn next_bit(i: &mut u64) -> u64 {
    *i = (*i + 7919) & (BITS - 1);
    *i
}

/// Benches `name` as [`BATCH`]` / 2` pairs of `push` then `pop` per
/// iteration (the single-thread queue and stack rows).
fn push_pop_pairs<P, R>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    push: impl Fn(u64) -> P,
    pop: impl Fn() -> R,
) {
    g.bench_function(name, |b| {
        b.iter(|| {
            for i in 0..BATCH / 2 {
                let _ = push(black_box(i));
                black_box(pop());
            }
        })
    });
}

fn single(c: &mut Criterion, seg: &ObjectSegment) {
    let mut g = c.benchmark_group("coll_single");
    g.throughput(Throughput::Elements(BATCH));
    let q = seg.queue::<u64>("q1", QCAP).unwrap();
    push_pop_pairs(&mut g, "queue_push_pop", |v| q.try_push(v), || q.try_pop());
    let aq = ArrayQueue::<u64>::new(QCAP);
    push_pop_pairs(&mut g, "crossbeam_arrayqueue_push_pop", |v| aq.push(v), || aq.pop());
    {
        use iceoryx2::prelude::*;
        iceoryx2::prelude::set_log_level(LogLevel::Error);
        let node = NodeBuilder::new().create::<ipc::Service>().expect("iceoryx2 node");
        let name: ServiceName =
            format!("venom-bench/queue-{}", std::process::id()).as_str().try_into().expect("service name");
        let service = node
            .service_builder(&name)
            .publish_subscribe::<u64>()
            .history_size(0)
            .subscriber_max_buffer_size(1)
            .max_publishers(1)
            .max_subscribers(1)
            .open_or_create()
            .expect("iceoryx2 service");
        let publ = service.publisher_builder().create().expect("publisher");
        let sub = service.subscriber_builder().create().expect("subscriber");
        g.bench_function("iceoryx2_pubsub_push_pop", |b| {
            b.iter(|| {
                for i in 0..BATCH / 2 {
                    publ.send_copy(black_box(i)).expect("send");
                    black_box(sub.receive().expect("receive").map(|s| *s));
                }
            })
        });
    }
    let st = seg.stack::<u64>("s1", QCAP).unwrap();
    push_pop_pairs(&mut g, "stack_push_pop", |v| st.push(v), || st.pop());
    let m = seg.hash_map::<u64, u64>("m1", MAP_CAP).unwrap();
    let std_m = Mutex::new(StdMap::new());
    for k in 0..MAP_KEYS {
        m.insert(k, k).unwrap();
        std_m.lock().unwrap().insert(k, k);
    }
    let mut x = 88172645463325252u64;
    g.bench_function("hashmap_get", |b| {
        b.iter(|| {
            for _ in 0..BATCH {
                black_box(m.get(&(next(&mut x) % MAP_KEYS)).unwrap());
            }
        })
    });
    g.bench_function("mutex_std_hashmap_get", |b| {
        b.iter(|| {
            for _ in 0..BATCH {
                black_box(std_m.lock().unwrap().get(&(next(&mut x) % MAP_KEYS)).copied());
            }
        })
    });
    g.bench_function("hashmap_insert_existing", |b| {
        b.iter(|| {
            for i in 0..BATCH {
                black_box(m.insert(next(&mut x) % MAP_KEYS, i).unwrap());
            }
        })
    });
    g.bench_function("mutex_std_hashmap_insert_existing", |b| {
        b.iter(|| {
            for i in 0..BATCH {
                black_box(std_m.lock().unwrap().insert(next(&mut x) % MAP_KEYS, i));
            }
        })
    });
    g.bench_function("hashmap_insert_remove_churn", |b| {
        let mut k = MAP_KEYS;
        b.iter(|| {
            for _ in 0..BATCH / 2 {
                k += 1;
                m.insert(k, k).unwrap();
                black_box(m.remove(&k).unwrap());
            }
        })
    });
    let bits = seg.bitset("b1", BITS).unwrap();
    g.bench_function("bitset_set", |b| {
        // After the first pass every bit is set: mostly the load-only path.
        let mut i = 0u64;
        b.iter(|| {
            for _ in 0..BATCH {
                black_box(bits.set(next_bit(&mut i)).unwrap());
            }
        })
    });
    g.bench_function("bitset_set_then_clear", |b| {
        // Every operation changes its bit: each is a real atomic RMW.
        let mut i = 0u64;
        b.iter(|| {
            for _ in 0..BATCH / 2 {
                let bit = next_bit(&mut i);
                black_box(bits.set(bit).unwrap());
                black_box(bits.clear(bit).unwrap());
            }
        })
    });
    g.bench_function("bitset_test", |b| {
        let mut i = 0u64;
        b.iter(|| {
            for _ in 0..BATCH {
                black_box(bits.test(next_bit(&mut i)).unwrap());
            }
        })
    });
    let a = seg.array::<u64>("a1", 4096).unwrap();
    g.bench_function("array_load", |b| {
        b.iter(|| {
            for i in 0..BATCH as usize {
                black_box(a.load(i & 4095).unwrap());
            }
        })
    });
    g.bench_function("array_store", |b| {
        b.iter(|| {
            for i in 0..BATCH as usize {
                a.store(i & 4095, black_box(i as u64)).unwrap();
            }
        })
    });
    g.bench_function("array_fetch_add", |b| {
        b.iter(|| {
            for i in 0..BATCH as usize {
                black_box(a.fetch_add(i & 4095, 1).unwrap());
            }
        })
    });
    g.finish();
}

/// Runs `work(thread, iters)` on two threads started together; returns the
/// time until both finish.
fn two_threads(iters: u64, work: &(dyn Fn(u64, u64) + Sync)) -> Duration {
    let barrier = Barrier::new(2);
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            barrier.wait();
            work(1, iters);
        });
        barrier.wait();
        let t = Instant::now();
        work(0, iters);
        h.join().unwrap();
        t.elapsed()
    })
}

fn queue_pairs(q: &venom_collections::Queue<u64>, iters: u64) {
    for i in 0..iters {
        while q.try_push(i).is_err() {
            std::hint::spin_loop();
        }
        while q.try_pop().is_none() {
            std::hint::spin_loop();
        }
    }
}

fn map_mix(m: &venom_collections::HashMap<u64, u64>, id: u64, iters: u64) {
    let mut x = 0x9E3779B97F4A7C15 ^ id;
    for i in 0..iters {
        let k = next(&mut x) % MAP_KEYS;
        if i % 4 == 0 {
            m.insert(k, i).unwrap();
        } else {
            black_box(m.get(&k).unwrap());
        }
    }
}

fn threads(c: &mut Criterion, seg: &ObjectSegment) {
    let mut g = c.benchmark_group("coll_2threads");
    let q = seg.queue::<u64>("q2", QCAP).unwrap();
    g.throughput(Throughput::Elements(4));
    g.bench_function("queue_push_pop", |b| b.iter_custom(|n| two_threads(n, &|_, n| queue_pairs(&q, n))));
    let aq = ArrayQueue::<u64>::new(QCAP);
    g.bench_function("crossbeam_arrayqueue_push_pop", |b| {
        b.iter_custom(|n| {
            two_threads(n, &|_, n| {
                for i in 0..n {
                    while aq.push(i).is_err() {
                        std::hint::spin_loop();
                    }
                    while aq.pop().is_none() {
                        std::hint::spin_loop();
                    }
                }
            })
        })
    });
    let m = seg.hash_map::<u64, u64>("m2", MAP_CAP).unwrap();
    let std_m = Mutex::new(StdMap::new());
    for k in 0..MAP_KEYS {
        m.insert(k, k).unwrap();
        std_m.lock().unwrap().insert(k, k);
    }
    g.throughput(Throughput::Elements(2));
    g.bench_function("hashmap_get3_insert1", |b| b.iter_custom(|n| two_threads(n, &|id, n| map_mix(&m, id, n))));
    g.bench_function("mutex_std_hashmap_get3_insert1", |b| {
        b.iter_custom(|n| {
            two_threads(n, &|id, n| {
                let mut x = 0x9E3779B97F4A7C15 ^ id;
                for i in 0..n {
                    let k = next(&mut x) % MAP_KEYS;
                    if i % 4 == 0 {
                        std_m.lock().unwrap().insert(k, i);
                    } else {
                        black_box(std_m.lock().unwrap().get(&k).copied());
                    }
                }
            })
        })
    });
    g.finish();
}

/// Control words shared with the child: [request seq, iterations, kind
/// (0 queue, 1 map), done seq, child ready].
fn child_main(name: &str) {
    let seg = ObjectSegment::open(name).expect("child: open segment");
    let ctl = seg.open_array::<u64>("ctl").expect("child: ctl");
    let q = seg.open_queue::<u64>("qp").expect("child: queue");
    let m = seg.open_hash_map::<u64, u64>("mp").expect("child: map");
    ctl.store(4, 1).unwrap();
    let mut seen = 0;
    let mut idle = 0u32;
    loop {
        let req = ctl.load(0).unwrap();
        if req == u64::MAX {
            return;
        }
        if req == seen {
            idle += 1;
            if idle > 1000 {
                std::thread::sleep(Duration::from_micros(50));
            } else {
                std::hint::spin_loop();
            }
            continue;
        }
        idle = 0;
        seen = req;
        let iters = ctl.load(1).unwrap();
        match ctl.load(2).unwrap() {
            0 => queue_pairs(&q, iters),
            _ => map_mix(&m, 1, iters),
        }
        ctl.store(3, req).unwrap();
    }
}

fn in_child(ctl: &Array<u64>, kind: u64, iters: u64, mine: impl FnOnce(u64)) -> Duration {
    let req = ctl.load(0).unwrap() + 1;
    ctl.store(1, iters).unwrap();
    ctl.store(2, kind).unwrap();
    let t = Instant::now();
    ctl.store(0, req).unwrap();
    mine(iters);
    let deadline = Instant::now() + Duration::from_secs(60);
    while ctl.load(3).unwrap() != req {
        assert!(Instant::now() < deadline, "bench child stopped responding");
        std::hint::spin_loop();
    }
    t.elapsed()
}

fn processes(c: &mut Criterion, seg: &ObjectSegment) {
    let ctl = seg.array::<u64>("ctl", 8).unwrap();
    let q = seg.queue::<u64>("qp", QCAP).unwrap();
    let m = seg.hash_map::<u64, u64>("mp", MAP_CAP).unwrap();
    for k in 0..MAP_KEYS {
        m.insert(k, k).unwrap();
    }
    let exe = std::env::current_exe().unwrap();
    let mut child = std::process::Command::new(exe).env(CHILD_ENV, seg.name()).spawn().expect("spawn bench child");
    let deadline = Instant::now() + Duration::from_secs(10);
    while ctl.load(4).unwrap() != 1 {
        assert!(Instant::now() < deadline, "bench child did not start");
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut g = c.benchmark_group("coll_2procs");
    g.throughput(Throughput::Elements(4));
    g.bench_function("queue_push_pop", |b| b.iter_custom(|n| in_child(&ctl, 0, n, |n| queue_pairs(&q, n))));
    g.throughput(Throughput::Elements(2));
    g.bench_function("hashmap_get3_insert1", |b| b.iter_custom(|n| in_child(&ctl, 1, n, |n| map_mix(&m, 0, n))));
    g.finish();
    ctl.store(0, u64::MAX).unwrap();
    let _ = child.wait();
}

fn main() {
    if let Ok(name) = std::env::var(CHILD_ENV) {
        child_main(&name);
        return;
    }
    let name = format!("bench-coll-{}", std::process::id());
    let seg = ObjectSegment::create(&name, 64 << 20).expect("create segment");
    let mut c = Criterion::default().configure_from_args();
    single(&mut c, &seg);
    threads(&mut c, &seg);
    processes(&mut c, &seg);
    c.final_summary();
    seg.unlink().expect("unlink");
}
