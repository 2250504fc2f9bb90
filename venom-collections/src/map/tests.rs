#[cfg(all(test, loom))]
mod loom_tests {
    use super::super::probe::*;
    use loom::sync::Arc;
    use std::time::Duration;
    use venom_core::loom::sync::AtomicU64;

    fn core(w: &[AtomicU64]) -> MapCore<'_> {
        MapCore { words: w, mask: 3, kw: 1, vw: 1, pid: 1, stall: Duration::from_secs(1) }
    }

    fn heap() -> Arc<Vec<AtomicU64>> {
        Arc::new(crate::words::heap_words(MapCore::words_needed(4, 1, 1).unwrap()))
    }

    #[test]
    fn loom_map_same_key_never_duplicates() {
        loom::model(|| {
            let words = heap();
            let w2 = words.clone();
            let t = loom::thread::spawn(move || core(&w2).insert(&7u64, &1u64).unwrap());
            let mine = core(&words).insert(&7u64, &2u64).unwrap();
            let theirs = t.join().unwrap();
            let m = core(&words);
            // Exactly one insert created the key; the other updated it.
            assert!(mine.is_none() != theirs.is_none(), "{mine:?} {theirs:?}");
            let copies = (0..4).filter(|&i| m.entry::<u64, u64>(i).is_some()).count();
            assert_eq!(copies, 1);
            assert_eq!(m.len(), 1);
        });
    }

    #[test]
    fn loom_map_insert_remove() {
        loom::model(|| {
            let words = heap();
            core(&words).insert(&1u64, &10u64).unwrap();
            let w2 = words.clone();
            let t = loom::thread::spawn(move || core(&w2).remove::<u64, u64>(&1).unwrap());
            core(&words).insert(&2u64, &20u64).unwrap();
            let got = core(&words).get::<u64, u64>(&2).unwrap();
            assert_eq!(t.join().unwrap(), Some(10));
            assert_eq!(got, Some(20));
            assert_eq!(core(&words).get::<u64, u64>(&1).unwrap(), None);
            assert_eq!(core(&words).len(), 1);
        });
    }

    /// A remove racing an update of the same key always finds the key (it
    /// exists throughout): the removal is ordered before or after the
    /// update, never lost because the lookup caught the slot mid-update.
    #[test]
    fn loom_map_remove_during_update_of_the_same_key() {
        loom::model(|| {
            let words = heap();
            core(&words).insert(&1u64, &10u64).unwrap();
            let w2 = words.clone();
            let t = loom::thread::spawn(move || core(&w2).insert(&1u64, &11u64).unwrap());
            let removed = core(&words).remove::<u64, u64>(&1).unwrap();
            let updated = t.join().unwrap();
            let left = core(&words).get::<u64, u64>(&1).unwrap();
            match (updated, removed, left) {
                // Update first, then the removal took the new value.
                (Some(10), Some(11), None) => {}
                // Removal first; the update inserted the key anew.
                (None, Some(10), Some(11)) => {}
                other => panic!("update/remove/left = {other:?}"),
            }
        });
    }
}

#[cfg(all(test, not(loom)))]
mod recovery {
    use super::super::probe::*;
    use crate::Error;
    use crate::ObjectSegment;
    use crate::ctl::Ctl;
    use std::time::Duration;
    use venom_core::loom::sync::Ordering;

    use venom_core::testkit::dead_pid;

    #[test]
    fn reach_bytes_saturate_to_the_global_maximum() {
        let name = format!("coll-mreach-{}", std::process::id());
        let seg = ObjectSegment::create(&name, 1 << 16).unwrap();
        let m = seg.hash_map::<u64, u64>("m", 1024).unwrap();
        let core = m.core();
        core.raise_reach(9, 3);
        core.raise_reach(9, 2);
        assert_eq!((core.reach(9, Ordering::SeqCst), core.reach(10, Ordering::SeqCst)), (3, 0));
        core.raise_reach(9, 300);
        assert_eq!(core.reach(9, Ordering::SeqCst), 300);
        core.raise_reach(17, 400);
        assert_eq!(core.reach(9, Ordering::SeqCst), 400, "saturated homes share the global bound");
        assert_eq!(core.reach(8, Ordering::SeqCst), 0, "neighbours in the same word are untouched");
        seg.unlink().unwrap();
    }

    #[test]
    fn slots_left_busy_by_a_dead_writer_are_repaired() {
        let name = format!("coll-mrec-{}", std::process::id());
        let seg = ObjectSegment::create(&name, 1 << 16).unwrap();
        let m = seg.hash_map::<u64, u64>("m", 8).unwrap();
        m.insert(1, 10).unwrap();
        m.insert(2, 20).unwrap();
        let core = m.core();
        let dead = dead_pid();
        let slot_of = |k: u64| {
            (0..8).map(|i| core.slot(i)).find(|s| s[1].load(Ordering::SeqCst) == k && s[0].load(Ordering::SeqCst) != 0)
        };
        // Key 1: its updater died mid-write. Readers repair it (key dropped).
        let s1 = slot_of(1).unwrap();
        let c = Ctl(s1[0].load(Ordering::SeqCst));
        s1[0].store(Ctl::busy(UPDATING, dead, c.version()).0, Ordering::SeqCst);
        assert_eq!(m.get(&1).unwrap(), None);
        assert_eq!(m.len(), 1);
        // Key 2 stays; an inserter of key 3 that died while KEYED does not
        // block another insert of key 3.
        let free = (0..8).map(|i| core.slot(i)).find(|s| s[0].load(Ordering::SeqCst) == 0).unwrap();
        free[1].store(3, Ordering::SeqCst);
        free[0].store(Ctl::busy(KEYED, dead, 0).0, Ordering::SeqCst);
        for home in 0..8 {
            core.raise_reach(home, 7);
        }
        assert_eq!(m.insert(3, 30).unwrap(), None);
        assert_eq!(m.get(&3).unwrap(), Some(30));
        assert_eq!(m.get(&2).unwrap(), Some(20));
        assert_eq!(m.iter().filter(|&(k, _)| k == 3).count(), 1);
        // A live owner that never finishes: typed timeout, no hang.
        let mut m2 = seg.open_hash_map::<u64, u64>("m").unwrap();
        m2.set_stall_timeout(Duration::from_millis(50));
        let s2 = slot_of(2).unwrap();
        let c = Ctl(s2[0].load(Ordering::SeqCst));
        s2[0].store(Ctl::busy(UPDATING, std::process::id(), c.version()).0, Ordering::SeqCst);
        assert!(matches!(m2.get(&2), Err(Error::Timeout(_))));
        assert!(matches!(m2.insert(2, 0), Err(Error::Timeout(_))));
        seg.unlink().unwrap();
    }
}
