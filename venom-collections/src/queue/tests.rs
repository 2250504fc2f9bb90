#[cfg(all(test, loom))]
mod loom_tests {
    use super::super::ring::*;
    use loom::sync::Arc;
    use venom_core::loom::sync::{AtomicU64, Ordering};

    /// Capacity 2 of u64 (stride 2); records 0..3 owned by live "processes".
    fn queue() -> Arc<Vec<AtomicU64>> {
        let words = Arc::new(crate::words::heap_words(QueueCore::words_needed(2, 1).unwrap()));
        QueueCore::init(&words, 2, 2);
        for i in 0..PARTICIPANTS {
            words[record(i)].store(10 + i as u64, Ordering::Relaxed);
        }
        words
    }

    /// The queue as seen by the thread owning record `rec`.
    fn core(w: &[AtomicU64], rec: usize) -> QueueCore<'_> {
        QueueCore { words: w, mask: 1, stride: 2, intent: record(rec) + 1 }
    }

    /// What the kernel reports after SIGKILL: the record's owner is dead.
    fn die(w: &[AtomicU64], rec: usize) {
        w[record(rec)].fetch_or(LOOM_DEAD, Ordering::SeqCst);
    }

    /// One attempt of the blocking loop of `push`/`pop`: recovers a held
    /// position instead of waiting. Returns the value popped, if any.
    fn pop_or_recover(q: &QueueCore<'_>) -> Option<u64> {
        match q.try_pop::<u64>() {
            Attempt::Done(v) => Some(v),
            Attempt::Held(p) => {
                q.recover(p);
                None
            }
            Attempt::No => None,
        }
    }

    fn push_or_recover(q: &QueueCore<'_>, v: u64) -> bool {
        match q.try_push(&v) {
            Attempt::Done(()) => true,
            Attempt::Held(p) => {
                q.recover(p);
                false
            }
            Attempt::No => false,
        }
    }

    /// Drains the queue single-threaded, recovering what the dead left.
    fn drain(q: &QueueCore<'_>, got: &mut Vec<u64>) {
        for _ in 0..8 {
            match q.try_pop::<u64>() {
                Attempt::Done(v) => got.push(v),
                Attempt::Held(p) => assert!(q.recover(p), "a dead holder's position is recovered"),
                Attempt::No => return,
            }
        }
    }

    #[test]
    fn loom_queue_mpmc() {
        loom::model(|| {
            let words = queue();
            let w2 = words.clone();
            let producer = loom::thread::spawn(move || {
                let q = core(&w2, 1);
                (1..=2u64).filter(|v| matches!(q.try_push(v), Attempt::Done(()))).count()
            });
            let q = core(&words, 0);
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
            let words = queue();
            let w2 = words.clone();
            let t = loom::thread::spawn(move || {
                let q = core(&w2, 1);
                assert!(matches!(q.try_push(&1u64), Attempt::Done(())));
                match q.try_pop::<u64>() {
                    Attempt::Done(v) => Some(v),
                    _ => None,
                }
            });
            let q = core(&words, 0);
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

    /// A consumer (record 1) announces its claim of the head, optionally
    /// wins the head CAS, and is killed before freeing the slot; a live
    /// consumer (record 2) pops meanwhile and a producer (record 0) pushes,
    /// recovering. Nothing is delivered twice, the live consumer's position
    /// is never taken from it, and only a claimed item may be lost.
    fn consumer_dies(cas: bool) {
        loom::model(move || {
            let words = queue();
            let q = core(&words, 0);
            assert!(matches!(q.try_push(&1u64), Attempt::Done(())));
            assert!(matches!(q.try_push(&2u64), Attempt::Done(())));
            let w = words.clone();
            let dying = loom::thread::spawn(move || {
                let d = core(&w, 1);
                let head = d.head().load(Ordering::Relaxed);
                let mut claimed = false;
                if d.slot(head)[0].load(Ordering::Acquire) == head + 1 {
                    w[record(1) + 1].store(intent(true, head), Ordering::Release);
                    claimed =
                        cas && d.head().compare_exchange(head, head + 1, Ordering::SeqCst, Ordering::Relaxed).is_ok();
                }
                die(&w, 1);
                claimed
            });
            let w = words.clone();
            let live = loom::thread::spawn(move || pop_or_recover(&core(&w, 2)));
            // A waiter that found position 0 stalled calls `recover` (its
            // spins would let loom run the holder to completion). The yield
            // lets the other threads run first: without it loom explores
            // few schedules in which they are mid-claim here.
            loom::thread::yield_now();
            q.recover(0);
            let mut pushed = push_or_recover(&q, 3);
            let claimed = dying.join().unwrap();
            let mut got: Vec<u64> = live.join().unwrap().into_iter().collect();
            // Single-threaded from here: every slot goes around once more.
            for v in 3..6 {
                for _ in 0..4 {
                    pushed = pushed || push_or_recover(&q, v);
                }
                assert!(pushed, "the queue keeps flowing");
                pushed = false;
                drain(&q, &mut got);
            }
            let mut sorted = got.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), got.len(), "delivered twice: {got:?}");
            let lost = u64::from(claimed);
            assert_eq!(got.len() as u64, 5 - lost, "{got:?}, claimed {claimed}");
            assert_eq!(words[RECOVERED].load(Ordering::Relaxed), lost);
        });
    }

    #[test]
    fn loom_queue_consumer_dies_between_intent_and_cas() {
        consumer_dies(false);
    }

    #[test]
    fn loom_queue_consumer_dies_holding_a_slot() {
        consumer_dies(true);
    }

    /// A producer (record 1) announces its claim of the tail, optionally
    /// wins the tail CAS, and is killed before publishing; a live producer
    /// (record 2) pushes meanwhile and a consumer (record 0) pops,
    /// recovering. The live item arrives exactly once.
    fn producer_dies(cas: bool) {
        loom::model(move || {
            let words = queue();
            let w = words.clone();
            let dying = loom::thread::spawn(move || {
                let d = core(&w, 1);
                let tail = d.tail().load(Ordering::Relaxed);
                let mut claimed = false;
                if d.slot(tail)[0].load(Ordering::Acquire) == tail {
                    w[record(1) + 1].store(intent(false, tail), Ordering::Release);
                    claimed =
                        cas && d.tail().compare_exchange(tail, tail + 1, Ordering::SeqCst, Ordering::Relaxed).is_ok();
                }
                die(&w, 1);
                claimed
            });
            let w = words.clone();
            let live = loom::thread::spawn(move || push_or_recover(&core(&w, 2), 7));
            let q = core(&words, 0);
            loom::thread::yield_now(); // as in `consumer_dies`
            q.recover(0);
            let mut got: Vec<u64> = pop_or_recover(&q).into_iter().collect();
            let claimed = dying.join().unwrap();
            assert!(live.join().unwrap(), "one free slot is always left for the live producer");
            drain(&q, &mut got);
            assert_eq!(got, vec![7]);
            assert_eq!(words[RECOVERED].load(Ordering::Relaxed), u64::from(claimed));
            // Still usable afterwards.
            assert!(matches!(q.try_push(&8u64), Attempt::Done(())));
            assert!(matches!(q.try_pop::<u64>(), Attempt::Done(8)));
        });
    }

    #[test]
    fn loom_queue_producer_dies_between_intent_and_cas() {
        producer_dies(false);
    }

    #[test]
    fn loom_queue_producer_dies_before_publishing() {
        producer_dies(true);
    }
}

#[cfg(all(test, not(loom)))]
mod recovery {
    use super::super::ring::*;
    use crate::Error;
    use crate::ObjectSegment;
    use std::time::Duration;
    use venom_core::ProcessId;
    use venom_core::loom::sync::Ordering;
    use venom_core::testkit::wait_for;

    /// A packed identity of a process that has exited.
    fn dead() -> u64 {
        ProcessId { pid: venom_core::testkit::dead_pid(), start_time: 0 }.pack()
    }

    #[test]
    fn dead_producer_and_dead_consumer_slots_are_recovered() {
        let name = format!("coll-qrec-{}", std::process::id());
        let seg = ObjectSegment::create(&name, 1 << 16).unwrap();
        let q = seg.queue::<u64>("q", 4).unwrap();
        let core = q.core();
        let w = core.words;
        // Record k: a dead process; record l: another live thread of ours.
        let (k, l) = (record(PARTICIPANTS - 1), record(PARTICIPANTS - 2));
        w[k].store(dead(), Ordering::SeqCst);
        w[l].store(ProcessId::current().pack(), Ordering::SeqCst);
        // A producer claimed position 0 and died before publishing.
        core.tail().store(1, Ordering::SeqCst);
        w[k + 1].store(intent(false, 0), Ordering::SeqCst);
        q.try_push(7).unwrap();
        assert_eq!(q.try_pop(), None, "position 0 is held");
        assert_eq!(q.pop(Duration::from_secs(5)).unwrap(), 7);
        assert_eq!(q.recovered(), 1);
        // Fill positions 2..=5, then a consumer claims position 2 and dies.
        for v in 2..6 {
            q.try_push(v).unwrap();
        }
        core.head().store(3, Ordering::SeqCst);
        w[k + 1].store(intent(true, 2), Ordering::SeqCst);
        assert_eq!(q.try_push(6), Err(6), "slot of position 2 is held");
        q.push(6, Duration::from_secs(5)).unwrap();
        assert_eq!(q.recovered(), 2);
        let rest: Vec<u64> = std::iter::from_fn(|| q.try_pop()).collect();
        assert_eq!(rest, vec![3, 4, 5, 6]);
        // Position 7 claimed: a dead record announced it, but so did a live
        // one (it may be the real holder): never skipped, typed timeout.
        w[k + 1].store(intent(false, 7), Ordering::SeqCst);
        w[l + 1].store(intent(false, 7), Ordering::SeqCst);
        core.tail().store(8, Ordering::SeqCst);
        assert!(matches!(q.pop(Duration::from_millis(50)), Err(Error::Timeout(_))));
        // With no record announcing it (memory corrupt?), also a timeout.
        w[k + 1].store(0, Ordering::SeqCst);
        w[l + 1].store(0, Ordering::SeqCst);
        assert!(matches!(q.pop(Duration::from_millis(50)), Err(Error::Timeout(_))));
        assert_eq!(q.recover(), 0);
        // Once only dead records announce it, it is skipped.
        w[k + 1].store(intent(false, 7), Ordering::SeqCst);
        assert_eq!(q.recover(), 1);
        q.push(9, Duration::from_secs(5)).unwrap();
        assert_eq!(q.pop(Duration::from_secs(5)).unwrap(), 9);
        seg.unlink().unwrap();
    }

    #[test]
    fn records_are_reused_reclaimed_and_overflow_safely() {
        let name = format!("coll-qrec2-{}", std::process::id());
        let seg = ObjectSegment::create(&name, 1 << 16).unwrap();
        let q = seg.queue::<u64>("q", 4).unwrap();
        let w = q.core().words;
        let owners = || (0..PARTICIPANTS).filter(|&i| w[record(i)].load(Ordering::SeqCst) != 0).count();
        assert_eq!(owners(), 1, "this thread holds one record");
        // A thread's record is released when it exits.
        std::thread::scope(|s| {
            s.spawn(|| {
                q.try_push(1).unwrap();
                assert_eq!(owners(), 2);
            });
        });
        // (thread-local destructors may finish after the scope returns)
        assert!(wait_for(Duration::from_secs(5), || owners() == 1));
        // Dead processes' records are reclaimed (their intents are done).
        let me = ProcessId::current().pack();
        for i in 1..PARTICIPANTS {
            w[record(i)].store(dead(), Ordering::SeqCst);
            w[record(i) + 1].store(intent(true, 0), Ordering::SeqCst);
        }
        std::thread::scope(|s| {
            s.spawn(|| {
                assert_eq!(q.try_pop(), Some(1));
                let mine = (1..PARTICIPANTS).filter(|&i| w[record(i)].load(Ordering::SeqCst) == me);
                assert_eq!(mine.count(), 1, "one dead record reclaimed");
            });
        });
        assert!(wait_for(Duration::from_secs(5), || owners() == PARTICIPANTS - 1));
        // Table full of live owners: a new thread runs anonymously, which
        // turns recovery off until it is gone.
        for i in 1..PARTICIPANTS {
            w[record(i)].store(me, Ordering::SeqCst);
        }
        std::thread::scope(|s| {
            s.spawn(|| {
                q.try_push(2).unwrap();
                assert_eq!(w[ANON].load(Ordering::SeqCst), 1);
                assert_eq!(q.try_pop(), Some(2));
            });
        });
        assert!(wait_for(Duration::from_secs(5), || w[ANON].load(Ordering::SeqCst) == 0));
        // Dropping a handle releases the records of its threads.
        for i in 1..PARTICIPANTS {
            w[record(i)].store(0, Ordering::SeqCst);
        }
        let q2 = seg.open_queue::<u64>("q").unwrap();
        q2.try_push(3).unwrap();
        assert_eq!(owners(), 2);
        drop(q2);
        assert_eq!(owners(), 1);
        // Back to the first handle (its record, cached as the previous one).
        assert_eq!(q.try_pop(), Some(3));
        assert_eq!(owners(), 1);
        seg.unlink().unwrap();
    }
}
