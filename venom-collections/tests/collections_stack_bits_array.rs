//! Stack, Bitset and Array across real processes, with SIGKILL.

use std::time::Duration;

use venom_collections::{Error, ObjectSegment};
use venom_core::testkit;

const N: u64 = 10_000;

#[test]
fn child_stack_worker() {
    let Some(arg) = testkit::child_arg("stack-worker") else { return };
    let (name, id) = arg.split_once(':').unwrap();
    let id: u64 = id.parse().unwrap();
    let s = ObjectSegment::open(name).unwrap();
    let st = s.open_stack::<u64>("st").unwrap();
    let seen = s.open_bitset("seen").unwrap();
    // Push our items, popping whatever is on top in between.
    for i in 0..N {
        let mut v = id * N + i;
        while let Err(back) = st.push(v) {
            v = back;
            if let Some(x) = st.pop() {
                assert!(!seen.set(x).unwrap(), "{x} popped twice");
            }
        }
        if i % 3 == 0
            && let Some(x) = st.pop()
        {
            assert!(!seen.set(x).unwrap(), "{x} popped twice");
        }
    }
}

#[test]
fn stack_two_processes_every_item_once() {
    let name = testkit::unique_name("coll-smp");
    let s = ObjectSegment::create(&name, 1 << 20).unwrap();
    let st = s.stack::<u64>("st", 64).unwrap();
    let seen = s.bitset("seen", 2 * N).unwrap();
    let mut kids: Vec<_> = (0..2)
        .map(|id| testkit::spawn_child("child_stack_worker", "stack-worker", &format!("{name}:{id}")).unwrap())
        .collect();
    for k in &mut kids {
        assert!(k.wait_timeout(Duration::from_secs(60)).unwrap().success());
    }
    while let Some(x) = st.pop() {
        assert!(!seen.set(x).unwrap(), "{x} popped twice");
    }
    assert_eq!(seen.count_ones(), 2 * N);
    assert_eq!(st.len(), 0);
    // All nodes came back to the free list.
    for i in 0..64 {
        st.push(i).unwrap();
    }
    assert_eq!(st.push(64), Err(64));
    s.unlink().unwrap();
}

#[test]
fn child_stack_churn() {
    let Some(name) = testkit::child_arg("stack-churn") else { return };
    let s = ObjectSegment::open(&name).unwrap();
    let st = s.open_stack::<[u64; 2]>("st").unwrap();
    loop {
        if st.push([1, 1]).is_ok() {
            st.pop();
        }
    }
}

#[test]
fn sigkill_mid_stack_op_leaks_at_most_one_node() {
    let name = testkit::unique_name("coll-skill");
    let s = ObjectSegment::create(&name, 1 << 16).unwrap();
    let st = s.stack::<[u64; 2]>("st", 16).unwrap();
    for round in 1..=3usize {
        let mut child = testkit::spawn_child("child_stack_churn", "stack-churn", &name).unwrap();
        std::thread::sleep(Duration::from_millis(30));
        child.kill9();
        // Never blocks; capacity lost is at most one node per kill.
        let mut pushed = 0;
        while st.push([2, 2]).is_ok() {
            pushed += 1;
        }
        let mut popped = 0;
        while let Some(v) = st.pop() {
            assert!(v == [1, 1] || v == [2, 2], "torn {v:?}");
            popped += 1;
        }
        assert!(popped >= 16 - round, "round {round}: {popped} nodes usable");
        assert!(pushed <= 16);
    }
    s.unlink().unwrap();
}

#[test]
fn child_bits_and_counters() {
    let Some(arg) = testkit::child_arg("bits") else { return };
    let (name, id) = arg.split_once(':').unwrap();
    let id: u64 = id.parse().unwrap();
    let s = ObjectSegment::open(name).unwrap();
    let bits = s.open_bitset("bits").unwrap();
    let counters = s.open_array::<u64>("counters").unwrap();
    let sums = s.open_array::<f64>("sums").unwrap();
    for i in 0..N {
        // Disjoint bits interleaved in the same words.
        assert!(!bits.set(2 * i + id).unwrap());
        counters.fetch_add(0, 1).unwrap();
        sums.fetch_add(0, 0.5).unwrap();
        // CAS-based max on element 1.
        let mut cur = counters.load(1).unwrap();
        while cur < i {
            match counters.compare_exchange(1, cur, i).unwrap() {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
    }
}

#[test]
fn bitset_and_array_two_processes() {
    let name = testkit::unique_name("coll-bits");
    let s = ObjectSegment::create(&name, 1 << 20).unwrap();
    let bits = s.bitset("bits", 2 * N).unwrap();
    let counters = s.array::<u64>("counters", 2).unwrap();
    let sums = s.array::<f64>("sums", 1).unwrap();
    let mut kids: Vec<_> = (0..2)
        .map(|id| testkit::spawn_child("child_bits_and_counters", "bits", &format!("{name}:{id}")).unwrap())
        .collect();
    for k in &mut kids {
        assert!(k.wait_timeout(Duration::from_secs(60)).unwrap().success());
    }
    assert_eq!(bits.count_ones(), 2 * N);
    assert_eq!(bits.iter_ones().count() as u64, 2 * N);
    assert_eq!(counters.load(0).unwrap(), 2 * N);
    assert_eq!(counters.load(1).unwrap(), N - 1);
    assert_eq!(sums.load(0).unwrap(), N as f64); // 0.5 steps are exact
    s.unlink().unwrap();
}

#[test]
fn bitset_beyond_u32_indices() {
    let name = testkit::unique_name("coll-bigbits");
    let bits_len = (1u64 << 32) + 128;
    // 512 MiB of sparse tmpfs; only touched pages are allocated.
    let s = ObjectSegment::create(&name, (bits_len / 8) as usize + (1 << 16)).unwrap();
    let bits = s.bitset("big", bits_len).unwrap();
    let hi = (1u64 << 32) + 100;
    assert!(!bits.set(hi).unwrap());
    assert!(bits.test(hi).unwrap());
    assert!(!bits.test(hi - (1 << 32)).unwrap());
    assert!(bits.flip(hi).unwrap());
    assert!(!bits.clear(hi).unwrap());
    assert!(matches!(bits.set(bits_len), Err(Error::IndexOutOfBounds { .. })));
    assert_eq!(bits.len(), bits_len);
    s.unlink().unwrap();
}

#[test]
fn child_big_writer() {
    let Some(name) = testkit::child_arg("big-writer") else { return };
    let s = ObjectSegment::open(&name).unwrap();
    let a = s.open_array::<[u64; 16]>("big").unwrap();
    for i in 1.. {
        a.store((i % 4) as usize, [i; 16]).unwrap();
    }
}

#[test]
fn large_elements_are_never_torn_even_across_sigkill() {
    let name = testkit::unique_name("coll-abig");
    let s = ObjectSegment::create(&name, 1 << 16).unwrap();
    let a = s.array::<[u64; 16]>("big", 4).unwrap();
    let mut child = testkit::spawn_child("child_big_writer", "big-writer", &name).unwrap();
    let mut changes = 0;
    let mut last = [0u64; 16];
    for _ in 0..20_000 {
        let v = a.load(1).unwrap();
        assert!(v.iter().all(|&x| x == v[0]), "torn {v:?}");
        if v != last {
            changes += 1;
            last = v;
        }
    }
    child.kill9();
    // Whatever state the writer died in, every element is readable and
    // writable again (a store cut short is published as it stood).
    for i in 0..4 {
        a.load(i).unwrap();
        a.store(i, [9; 16]).unwrap();
        assert_eq!(a.load(i).unwrap(), [9; 16]);
    }
    assert!(changes > 0, "the writer never ran");
    s.unlink().unwrap();
}

#[test]
fn child_bit_claimer() {
    let Some(name) = testkit::child_arg("bit-claimer") else { return };
    let s = ObjectSegment::open(&name).unwrap();
    let bits = s.open_bitset("claims").unwrap();
    let count = s.open_array::<u64>("count").unwrap();
    for i in 0..bits.len() {
        if !bits.set(i).unwrap() {
            count.fetch_add(0, 1).unwrap();
        }
    }
    std::thread::sleep(Duration::from_secs(30));
}

#[test]
fn sigkill_bitset_and_array_writers_lose_at_most_the_step_in_flight() {
    let name = testkit::unique_name("coll-bkill");
    let s = ObjectSegment::create(&name, 1 << 20).unwrap();
    let bits = s.bitset("claims", 1 << 22).unwrap();
    let count = s.array::<u64>("count", 1).unwrap();
    let mut child = testkit::spawn_child("child_bit_claimer", "bit-claimer", &name).unwrap();
    assert!(testkit::wait_for(Duration::from_secs(10), || count.load(0).unwrap() > 1000));
    child.kill9();
    // Each bit and each counter update is one atomic instruction: the only
    // inconsistency a kill can leave is the claim whose count was not yet
    // added.
    let (set, counted) = (bits.count_ones(), count.load(0).unwrap());
    assert!(set == counted || set == counted + 1, "{set} bits set, {counted} counted");
    assert_eq!(bits.iter_ones().count() as u64, set);
    assert!(bits.iter_ones().enumerate().all(|(i, b)| i as u64 == b), "claims are a prefix");
    s.unlink().unwrap();
}
