#[cfg(all(test, loom))]
mod loom_tests {
    use super::super::ring::*;
    use loom::sync::Arc;
    use venom_core::loom::sync::AtomicU64;

    fn core(w: &[AtomicU64]) -> QueueCore<'_> {
        QueueCore { words: w, mask: 1, stride: 3, me: 1 }
    }

    #[test]
    fn loom_queue_mpmc() {
        loom::model(|| {
            let words = Arc::new(crate::words::heap_words(QueueCore::words_needed(2, 1).unwrap()));
            QueueCore::init(&words, 2, 3);
            let w2 = words.clone();
            let producer = loom::thread::spawn(move || {
                let q = core(&w2);
                (1..=2u64).filter(|v| matches!(q.try_push(v), Attempt::Done(()))).count()
            });
            let q = core(&words);
            let mut got = Vec::new();
            for _ in 0..2 {
                if let Attempt::Done(v) = q.try_pop::<u64>() {
                    got.push(v);
                }
            }
            let pushed = producer.join().unwrap();
            while let Attempt::Done(v) = q.try_pop::<u64>() {
                got.push(v);
            }
            assert_eq!(got.len(), pushed);
            assert!(got.windows(2).all(|w| w[0] < w[1]), "FIFO order: {got:?}");
        });
    }

    #[test]
    fn loom_queue_two_producer_consumers() {
        loom::model(|| {
            let words = Arc::new(crate::words::heap_words(QueueCore::words_needed(2, 1).unwrap()));
            QueueCore::init(&words, 2, 3);
            let w2 = words.clone();
            let t = loom::thread::spawn(move || {
                let q = core(&w2);
                assert!(matches!(q.try_push(&1u64), Attempt::Done(())));
                match q.try_pop::<u64>() {
                    Attempt::Done(v) => Some(v),
                    _ => None,
                }
            });
            let q = core(&words);
            assert!(matches!(q.try_push(&2u64), Attempt::Done(())));
            let mine = match q.try_pop::<u64>() {
                Attempt::Done(v) => Some(v),
                _ => None,
            };
            let theirs = t.join().unwrap();
            let mut got: Vec<u64> = [mine, theirs].into_iter().flatten().collect();
            while let Attempt::Done(v) = q.try_pop::<u64>() {
                got.push(v);
            }
            got.sort();
            assert_eq!(got, vec![1, 2], "every item popped exactly once");
        });
    }
}

#[cfg(all(test, not(loom)))]
mod recovery {
    use super::super::ring::*;
    use crate::Error;
    use crate::ObjectSegment;
    use std::time::Duration;
    use venom_core::loom::sync::Ordering;

    /// The pid of a process that has exited.
    use venom_core::testkit::dead_pid;

    #[test]
    fn dead_producer_and_dead_consumer_slots_are_recovered() {
        let name = format!("coll-qrec-{}", std::process::id());
        let seg = ObjectSegment::create(&name, 1 << 16).unwrap();
        let q = seg.queue::<u64>("q", 4).unwrap();
        let core = q.core();
        let dead = dead_pid();
        // A producer claimed position 0 and died before publishing.
        core.tail().store(1, Ordering::SeqCst);
        core.slot(0)[1].store(owner_tag(dead, false, 0), Ordering::SeqCst);
        q.try_push(7).unwrap();
        assert_eq!(q.try_pop(), None, "position 0 is held");
        assert_eq!(q.pop(Duration::from_secs(5)).unwrap(), 7);
        assert_eq!(q.recovered(), 1);
        // Fill positions 2..=5, then a consumer claims position 2 and dies.
        for v in 2..6 {
            q.try_push(v).unwrap();
        }
        core.head().store(3, Ordering::SeqCst);
        core.slot(2)[1].store(owner_tag(dead, true, 2), Ordering::SeqCst);
        assert_eq!(q.try_push(6), Err(6), "slot of position 2 is held");
        q.push(6, Duration::from_secs(5)).unwrap();
        assert_eq!(q.recovered(), 2);
        let rest: Vec<u64> = std::iter::from_fn(|| q.try_pop()).collect();
        assert_eq!(rest, vec![3, 4, 5, 6]);
        // A claim whose tag is stale (holder unknown) is never skipped, even
        // if the stale tag's pid is dead: typed timeout.
        core.slot(7)[1].store(owner_tag(dead, true, 3), Ordering::SeqCst);
        core.tail().store(8, Ordering::SeqCst);
        assert!(matches!(q.pop(Duration::from_millis(50)), Err(Error::Timeout(_))));
        seg.unlink().unwrap();
    }
}
