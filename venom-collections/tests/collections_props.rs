//! Property tests: each structure against its std counterpart.

use std::collections::{HashMap as StdMap, VecDeque};

use proptest::prelude::*;
use venom_collections::ObjectSegment;
use venom_core::testkit;

fn segment() -> ObjectSegment {
    ObjectSegment::create(&testkit::unique_name("coll-prop"), 1 << 18).unwrap()
}

#[derive(Debug, Clone)]
enum Op {
    Push(u32),
    Pop,
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(prop_oneof![any::<u32>().prop_map(Op::Push), Just(Op::Pop)], 0..200)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn queue_matches_vecdeque(cap in 1usize..20, ops in ops()) {
        let s = segment();
        let q = s.queue::<u32>("q", cap).unwrap();
        let cap = q.capacity();
        let mut model = VecDeque::new();
        for op in ops {
            match op {
                Op::Push(v) => {
                    let ok = q.try_push(v).is_ok();
                    prop_assert_eq!(ok, model.len() < cap);
                    if ok { model.push_back(v); }
                }
                Op::Pop => prop_assert_eq!(q.try_pop(), model.pop_front()),
            }
            prop_assert_eq!(q.len(), model.len());
        }
        s.unlink().unwrap();
    }

    #[test]
    fn stack_matches_vec(cap in 0usize..20, ops in ops()) {
        let s = segment();
        let st = s.stack::<u32>("s", cap).unwrap();
        let mut model = Vec::new();
        for op in ops {
            match op {
                Op::Push(v) => {
                    let ok = st.push(v).is_ok();
                    prop_assert_eq!(ok, model.len() < cap);
                    if ok { model.push(v); }
                }
                Op::Pop => prop_assert_eq!(st.pop(), model.pop()),
            }
            prop_assert_eq!(st.len(), model.len());
        }
        s.unlink().unwrap();
    }

    #[test]
    fn map_matches_std_hashmap(ops in prop::collection::vec((0u8..3, 0u16..48, any::<u64>()), 0..300)) {
        let s = segment();
        let m = s.hash_map::<u16, u64>("m", 64).unwrap();
        let mut model = StdMap::new();
        for (op, k, v) in ops {
            match op {
                0 => prop_assert_eq!(m.insert(k, v).unwrap(), model.insert(k, v)),
                1 => prop_assert_eq!(m.remove(&k).unwrap(), model.remove(&k)),
                _ => prop_assert_eq!(m.get(&k).unwrap(), model.get(&k).copied()),
            }
            prop_assert_eq!(m.len(), model.len());
        }
        let mut got: Vec<_> = m.iter().collect();
        let mut want: Vec<_> = model.into_iter().collect();
        got.sort();
        want.sort();
        prop_assert_eq!(got, want);
        s.unlink().unwrap();
    }

    #[test]
    fn bitset_matches_vec_bool(len in 1u64..300, ops in prop::collection::vec((0u8..4, 0u64..320), 0..300)) {
        let s = segment();
        let b = s.bitset("b", len).unwrap();
        let mut model = vec![false; len as usize];
        for (op, i) in ops {
            if i >= len {
                prop_assert!(b.set(i).is_err() && b.test(i).is_err());
                continue;
            }
            let prev = model[i as usize];
            let got = match op {
                0 => { model[i as usize] = true; b.set(i).unwrap() }
                1 => { model[i as usize] = false; b.clear(i).unwrap() }
                2 => { model[i as usize] = !prev; b.flip(i).unwrap() }
                _ => b.test(i).unwrap(),
            };
            prop_assert_eq!(got, prev);
        }
        prop_assert_eq!(b.count_ones(), model.iter().filter(|&&x| x).count() as u64);
        let ones: Vec<u64> = (0..len).filter(|&i| model[i as usize]).collect();
        prop_assert_eq!(b.iter_ones().collect::<Vec<_>>(), ones);
        s.unlink().unwrap();
    }

    #[test]
    fn array_matches_vec(len in 1usize..40, ops in prop::collection::vec((0u8..4, 0usize..48, any::<i32>()), 0..200)) {
        let s = segment();
        let a = s.array::<i32>("a", len).unwrap();
        let big = s.array::<[i32; 5]>("big", len).unwrap();
        let mut model = vec![0i32; len];
        for (op, i, v) in ops {
            if i >= len {
                prop_assert!(a.load(i).is_err() && a.store(i, v).is_err());
                continue;
            }
            match op {
                0 => { a.store(i, v).unwrap(); big.store(i, [v; 5]).unwrap(); model[i] = v; }
                1 => { prop_assert_eq!(a.fetch_add(i, v).unwrap(), model[i]); model[i] = model[i].wrapping_add(v); big.store(i, [model[i]; 5]).unwrap(); }
                2 => {
                    let r = a.compare_exchange(i, v, v ^ 1).unwrap();
                    if model[i] == v { prop_assert_eq!(r, Ok(v)); model[i] = v ^ 1; } else { prop_assert_eq!(r, Err(model[i])); }
                    big.store(i, [model[i]; 5]).unwrap();
                }
                _ => { prop_assert_eq!(a.load(i).unwrap(), model[i]); }
            }
        }
        let mut out = vec![0i32; len];
        a.copy_to_slice(0, &mut out).unwrap();
        prop_assert_eq!(&out, &model);
        for (i, m) in model.iter().enumerate() {
            prop_assert_eq!(big.load(i).unwrap(), [*m; 5]);
        }
        prop_assert!(a.copy_to_slice(1, &mut out).is_err());
        a.copy_from_slice(0, &vec![7; len]).unwrap();
        prop_assert_eq!(a.load(len - 1).unwrap(), 7);
        s.unlink().unwrap();
    }
}
