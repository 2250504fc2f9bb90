//! Queue across real processes: exactly-once delivery, per-producer order,
//! blocking with timeouts, and SIGKILL of producers and consumers.

use std::time::{Duration, Instant};

use venom_collections::{Error, ObjectSegment};
use venom_core::testkit;

const PER_PRODUCER: u64 = 20_000;
const PRODUCERS: u64 = 2;
const CONSUMERS: usize = 2;
const T: Duration = Duration::from_secs(20);

/// Item: (producer id, sequence number).
type Item = [u64; 2];

#[test]
fn child_producer() {
    let Some(arg) = testkit::child_arg("producer") else { return };
    let (name, id) = arg.split_once(':').unwrap();
    let s = ObjectSegment::open(name).unwrap();
    let q = s.open_queue::<Item>("items").unwrap();
    for seq in 0..PER_PRODUCER {
        q.push([id.parse().unwrap(), seq], T).unwrap();
    }
}

#[test]
fn child_consumer() {
    let Some(name) = testkit::child_arg("consumer") else { return };
    let s = ObjectSegment::open(&name).unwrap();
    let q = s.open_queue::<Item>("items").unwrap();
    let seen = s.open_bitset("seen").unwrap();
    let popped = s.open_array::<u64>("popped").unwrap();
    let mut last = [None::<u64>; PRODUCERS as usize];
    let total = PRODUCERS * PER_PRODUCER;
    while popped.load(0).unwrap() < total {
        let [p, seq] = match q.pop(Duration::from_millis(50)) {
            Ok(item) => item,
            Err(Error::Timeout(_)) => continue,
            Err(e) => panic!("{e}"),
        };
        // Per-producer FIFO as observed by one consumer.
        assert!(last[p as usize].is_none_or(|l| seq > l), "producer {p}: {seq} after {:?}", last[p as usize]);
        last[p as usize] = Some(seq);
        assert!(!seen.set(p * PER_PRODUCER + seq).unwrap(), "item {p}/{seq} popped twice");
        popped.fetch_add(0, 1).unwrap();
    }
}

#[test]
fn multi_process_every_item_popped_exactly_once() {
    let name = testkit::unique_name("coll-qmp");
    let s = ObjectSegment::create(&name, 8 << 20).unwrap();
    let q = s.queue::<Item>("items", 64).unwrap();
    let seen = s.bitset("seen", PRODUCERS * PER_PRODUCER).unwrap();
    s.array::<u64>("popped", 1).unwrap();
    let mut kids = Vec::new();
    for _ in 0..CONSUMERS {
        kids.push(testkit::spawn_child("child_consumer", "consumer", &name).unwrap());
    }
    for id in 0..PRODUCERS {
        kids.push(testkit::spawn_child("child_producer", "producer", &format!("{name}:{id}")).unwrap());
    }
    for k in &mut kids {
        assert!(k.wait_timeout(Duration::from_secs(60)).unwrap().success());
    }
    assert_eq!(seen.count_ones(), PRODUCERS * PER_PRODUCER);
    assert!(q.is_empty());
    s.unlink().unwrap();
}

#[test]
fn blocking_pop_wakes_on_push_and_times_out() {
    let name = testkit::unique_name("coll-qblk");
    let s = ObjectSegment::create(&name, 1 << 16).unwrap();
    let q = s.queue::<u32>("q", 2).unwrap();
    let t = Instant::now();
    assert!(matches!(q.pop(Duration::from_millis(30)), Err(Error::Timeout(_))));
    assert!(t.elapsed() >= Duration::from_millis(30));
    std::thread::scope(|sc| {
        sc.spawn(|| {
            std::thread::sleep(Duration::from_millis(20));
            q.push(5, T).unwrap();
        });
        assert_eq!(q.pop(T).unwrap(), 5);
    });
    q.push(1, T).unwrap();
    q.push(2, T).unwrap();
    assert!(matches!(q.push(3, Duration::from_millis(20)), Err(Error::Timeout(_))));
    std::thread::scope(|sc| {
        sc.spawn(|| {
            std::thread::sleep(Duration::from_millis(20));
            assert_eq!(q.pop(T).unwrap(), 1);
        });
        q.push(3, T).unwrap();
    });
    assert_eq!((q.try_pop(), q.try_pop(), q.try_pop()), (Some(2), Some(3), None));
    s.unlink().unwrap();
}

#[test]
fn child_endless_producer() {
    let Some(name) = testkit::child_arg("endless-producer") else { return };
    let s = ObjectSegment::open(&name).unwrap();
    let q = s.open_queue::<u64>("q").unwrap();
    for seq in 1.. {
        q.push(seq, T).unwrap();
    }
}

#[test]
fn child_endless_consumer() {
    let Some(name) = testkit::child_arg("endless-consumer") else { return };
    let s = ObjectSegment::open(&name).unwrap();
    let q = s.open_queue::<u64>("q").unwrap();
    let count = s.open_array::<u64>("count").unwrap();
    loop {
        if q.pop(T).is_ok() {
            count.fetch_add(0, 1).unwrap();
        }
    }
}

#[test]
fn sigkill_producer_mid_stream_does_not_stall_consumers() {
    let name = testkit::unique_name("coll-qkp");
    let s = ObjectSegment::create(&name, 1 << 16).unwrap();
    let q = s.queue::<u64>("q", 8).unwrap();
    for round in 0..3 {
        let mut child = testkit::spawn_child("child_endless_producer", "endless-producer", &name).unwrap();
        let mut last = 0;
        // Consume a while so the producer is killed at an arbitrary point.
        for _ in 0..(500 + round * 300) {
            let v = q.pop(T).unwrap();
            assert!(v > last, "{v} after {last}");
            last = v;
        }
        child.kill9();
        // Drain what was published; a killed in-flight push is skipped.
        loop {
            match q.pop(Duration::from_millis(300)) {
                Ok(v) => {
                    assert!(v > last, "{v} after {last}");
                    last = v;
                }
                Err(Error::Timeout(_)) => break,
                Err(e) => panic!("{e}"),
            }
        }
        // Still fully usable.
        q.push(u64::MAX, T).unwrap();
        assert_eq!(q.pop(T).unwrap(), u64::MAX);
        assert!(q.is_empty(), "round {round}: len {}", q.len());
    }
    s.unlink().unwrap();
}

#[test]
fn sigkill_consumer_mid_stream_does_not_stall_producers() {
    let name = testkit::unique_name("coll-qkc");
    let s = ObjectSegment::create(&name, 1 << 16).unwrap();
    let q = s.queue::<u64>("q", 4).unwrap();
    let count = s.array::<u64>("count", 1).unwrap();
    for round in 0..3u64 {
        let mut child = testkit::spawn_child("child_endless_consumer", "endless-consumer", &name).unwrap();
        for v in 0..(300 + round * 200) {
            q.push(v, T).unwrap();
        }
        child.kill9();
        // Drain what the dead consumer left behind.
        while q.pop(Duration::from_millis(100)).is_ok() {}
        // Producers go through every slot (recovering a slot the dead
        // consumer may have held), and we can pop what we push.
        for v in 0..12 {
            q.push(v, T).unwrap();
            while q.len() > 2 {
                q.pop(T).unwrap();
            }
        }
        while q.try_pop().is_some() {}
        assert!(count.load(0).unwrap() > 0);
    }
    s.unlink().unwrap();
}

/// Items of the chaos test: `round << CHAOS_SHIFT | seq`.
const CHAOS_SHIFT: u32 = 20;
const CHAOS_ROUNDS: u64 = 20;

/// Marks `item` delivered; counts a second delivery in `stats[0]`.
fn chaos_deliver(s: &ObjectSegment, item: u64) {
    let seen = s.open_bitset("seen").unwrap();
    if seen.set(item).unwrap() {
        s.open_array::<u64>("stats").unwrap().fetch_add(0, 1).unwrap();
    }
}

#[test]
fn child_chaos_producer() {
    let Some(arg) = testkit::child_arg("chaos-producer") else { return };
    let mut parts = arg.split(':');
    let (name, round, id) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
    let s = ObjectSegment::open(name).unwrap();
    let q = s.open_queue::<u64>("q").unwrap();
    let stats = s.open_array::<u64>("stats").unwrap();
    let base = round.parse::<u64>().unwrap() << CHAOS_SHIFT | id.parse::<u64>().unwrap() << (CHAOS_SHIFT - 1);
    for seq in 0..1 << (CHAOS_SHIFT - 1) {
        q.push(base | seq, T).unwrap();
        stats.fetch_add(1, 1).unwrap();
    }
}

#[test]
fn child_chaos_consumer() {
    let Some(name) = testkit::child_arg("chaos-consumer") else { return };
    let s = ObjectSegment::open(&name).unwrap();
    let q = s.open_queue::<u64>("q").unwrap();
    let seen = s.open_bitset("seen").unwrap();
    let stats = s.open_array::<u64>("stats").unwrap();
    loop {
        if let Ok(item) = q.pop(T) {
            if seen.set(item).unwrap() {
                stats.fetch_add(0, 1).unwrap();
            }
            stats.fetch_add(2, 1).unwrap();
        }
    }
}

/// SIGKILLs two producer and two consumer processes at random moments,
/// round after round: the queue keeps flowing (blocking calls recover whatever
/// position a victim held, including one killed right after its claim) and
/// nothing is delivered twice.
#[test]
fn sigkill_producers_and_consumers_at_random_moments() {
    let name = testkit::unique_name("coll-qchaos");
    let s = ObjectSegment::create(&name, 8 << 20).unwrap();
    let q = s.queue::<u64>("q", 8).unwrap();
    s.bitset("seen", CHAOS_ROUNDS << CHAOS_SHIFT).unwrap();
    // [items delivered twice, items pushed, items popped by children]
    let stats = s.array::<u64>("stats", 3).unwrap();
    let mut rng = u64::from(std::process::id()) | 1;
    let mut random_ms = |max: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        Duration::from_micros(rng % (max * 1000))
    };
    let quick = Duration::from_secs(5);
    for round in 0..CHAOS_ROUNDS {
        // Two producers and two consumers on (typically) two cores: victims
        // are often preempted mid-operation, then killed right there.
        let mut kids = Vec::new();
        for id in 0..2 {
            let arg = format!("{name}:{round}:{id}");
            kids.push(testkit::spawn_child("child_chaos_producer", "chaos-producer", &arg).unwrap());
            kids.push(testkit::spawn_child("child_chaos_consumer", "chaos-consumer", &name).unwrap());
        }
        let popped = stats.load(2).unwrap();
        assert!(testkit::wait_for(T, || stats.load(2).unwrap() > popped + 100), "round {round}: no flow");
        // Kill all four at random moments, in a random order.
        while !kids.is_empty() {
            std::thread::sleep(random_ms(if kids.len() == 4 { 20 } else { 3 }));
            let i = random_ms(1).as_micros() as usize % kids.len();
            kids.swap_remove(i).kill9();
        }
        // Drain: a position held by a dead producer is skipped.
        loop {
            match q.pop(Duration::from_millis(200)) {
                Ok(item) => chaos_deliver(&s, item),
                Err(Error::Timeout(_)) => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(q.is_empty(), "round {round}: stalled with {} items", q.len());
        // Every slot goes around once: slots held by dead consumers are freed.
        for i in 0..2 * q.capacity() as u64 {
            q.push(u64::MAX - i, quick).unwrap_or_else(|e| panic!("round {round}: push: {e}"));
            assert_eq!(q.pop(quick).unwrap_or_else(|e| panic!("round {round}: pop: {e}")), u64::MAX - i);
        }
        assert_eq!(stats.load(0).unwrap(), 0, "round {round}: an item was delivered twice");
    }
    assert!(stats.load(1).unwrap() > 0 && stats.load(2).unwrap() > 0);
    s.unlink().unwrap();
}
