//! The MPSC command queue on its own: bounds, FIFO per producer, lanes,
//! caller-provided memory, corrupt headers, and producers in other processes
//! (including one SIGKILLed in the middle of a push).

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use venom_core::cmd_queue::{CmdQueue, QueueConfig, WaitStrategy};
use venom_core::{Error, testkit};

const SEC: Duration = Duration::from_secs(1);

fn cfg(lanes: usize, depth: usize, max: usize) -> QueueConfig {
    QueueConfig { lanes, depth, max_msg_size: max, ..Default::default() }
}

#[test]
fn bounded_fifo_full_and_too_large() {
    let name = testkit::unique_name("q-basic");
    let q = CmdQueue::create(&name, cfg(2, 4, 64)).unwrap();
    let mut c = q.consumer().unwrap();
    let mut p = q.producer().unwrap();
    for i in 0..4u8 {
        p.try_push(&[i; 10]).unwrap();
    }
    assert!(matches!(p.try_push(b"x"), Err(Error::Full)));
    let t = Instant::now();
    assert!(matches!(p.push(b"x", Duration::from_millis(50)), Err(Error::Timeout(_))));
    assert!(t.elapsed() >= Duration::from_millis(50));
    assert!(matches!(p.try_push(&[0; 65]), Err(Error::MessageTooLarge { len: 65, max: 64 })));
    p.try_push(&[]).err().unwrap(); // still full
    let mut buf = Vec::new();
    for i in 0..4u8 {
        let m = c.pop(&mut buf, SEC).unwrap();
        assert_eq!((m.lane, m.len, &buf[..]), (p.lane(), 10, &[i; 10][..]));
    }
    assert!(matches!(c.pop(&mut buf, Duration::from_millis(20)), Err(Error::Timeout(_))));
    // Empty messages and exactly-max messages round-trip.
    p.try_push(&[]).unwrap();
    p.try_push(&[7; 64]).unwrap();
    assert_eq!(c.pop(&mut buf, SEC).unwrap().len, 0);
    assert_eq!(c.pop(&mut buf, SEC).unwrap().len, 64);
    assert_eq!(buf, vec![7; 64]);
    q.unlink().unwrap();
}

#[test]
fn lanes_are_limited_and_reused() {
    let name = testkit::unique_name("q-lanes");
    let q = CmdQueue::create(&name, cfg(2, 2, 16)).unwrap();
    let a = q.producer().unwrap();
    let b = q.producer().unwrap();
    assert!(matches!(q.producer(), Err(Error::TooManyClients { max: 2 })));
    let (lane, generation) = (a.lane(), a.generation());
    drop(a);
    let c = q.producer().unwrap();
    assert_eq!(c.lane(), lane);
    assert_eq!(c.generation(), generation + 1, "reuse bumps the generation");
    assert_ne!(b.lane(), c.lane());
    assert_eq!(q.live_producers(), 2);
    // One consumer at a time; a dropped consumer can be replaced.
    let c1 = q.consumer().unwrap();
    assert!(matches!(q.consumer(), Err(Error::ConsumerBusy { .. })));
    drop(c1);
    q.consumer().unwrap();
    q.unlink().unwrap();
}

#[test]
fn bad_configs_are_rejected() {
    for bad in [cfg(0, 4, 16), cfg(2, 1, 16), cfg(2, 4, 0), cfg(2, 1 << 20, 16), cfg(5000, 4, 16)] {
        assert!(matches!(CmdQueue::layout_len(&bad), Err(Error::InvalidConfig(_))), "{bad:?}");
    }
}

/// 128-aligned zeroed heap memory standing in for a caller's mapping.
struct Aligned(*mut u8, std::alloc::Layout);
impl Aligned {
    fn new(len: usize) -> Aligned {
        let layout = std::alloc::Layout::from_size_align(len, 128).unwrap();
        // SAFETY: non-zero size.
        Aligned(unsafe { std::alloc::alloc_zeroed(layout) }, layout)
    }
}
impl Drop for Aligned {
    fn drop(&mut self) {
        // SAFETY: allocated with this layout.
        unsafe { std::alloc::dealloc(self.0, self.1) }
    }
}

#[test]
fn placed_in_caller_memory_with_threads() {
    let c = cfg(3, 8, 32);
    let len = CmdQueue::layout_len(&c).unwrap();
    let mem = Aligned::new(len);
    // SAFETY: aligned, zeroed, `len` bytes, private until attached.
    unsafe { CmdQueue::init_at(mem.0, len, &c).unwrap() };
    // SAFETY: `mem` outlives every handle (threads are joined below).
    let q = unsafe { CmdQueue::attach(mem.0, len).unwrap() };
    let mut consumer = q.consumer().unwrap();
    consumer.set_wait(WaitStrategy::Park);
    const N: u32 = 2000;
    let handles: Vec<_> = (0..3)
        .map(|t| {
            let mut p = q.producer().unwrap();
            std::thread::spawn(move || {
                for i in 0..N {
                    p.push(format!("{t}:{i}").as_bytes(), 5 * SEC).unwrap();
                }
                p.lane()
            })
        })
        .collect();
    let mut next = [0u32; 3];
    let mut buf = Vec::new();
    for _ in 0..3 * N {
        consumer.pop(&mut buf, 5 * SEC).unwrap();
        let text = String::from_utf8(buf.clone()).unwrap();
        let (t, i) = text.split_once(':').unwrap();
        let (t, i): (usize, u32) = (t.parse().unwrap(), i.parse().unwrap());
        assert_eq!(i, next[t], "FIFO per producer");
        next[t] += 1;
    }
    for h in handles {
        h.join().unwrap();
    }
    drop(consumer);
    drop(q);
}

#[test]
fn attach_rejects_garbage() {
    let mem = Aligned::new(4096);
    // SAFETY: valid for 4096 bytes; zeroed memory is not a queue.
    assert!(matches!(unsafe { CmdQueue::attach(mem.0, 4096) }, Err(Error::Corrupt { .. })));
    let c = cfg(2, 4, 64);
    let len = CmdQueue::layout_len(&c).unwrap();
    let big = Aligned::new(len);
    // SAFETY: as above.
    unsafe { CmdQueue::init_at(big.0, len, &c).unwrap() };
    // SAFETY: a shorter length than the queue needs must be refused.
    assert!(matches!(unsafe { CmdQueue::attach(big.0, len - 1) }, Err(Error::Corrupt { .. })));
    // Corrupt the lane count.
    // SAFETY: offset 16 is the `lanes` field; plain write while nobody else
    // has the memory.
    unsafe { (big.0.add(16) as *mut u64).write(1 << 40) };
    // SAFETY: as above.
    assert!(matches!(unsafe { CmdQueue::attach(big.0, len) }, Err(Error::Corrupt { .. })));
}

#[test]
fn child_producer() {
    let Some(arg) = testkit::child_arg("producer") else { return };
    let (name, n) = arg.split_once(' ').unwrap();
    let q = CmdQueue::open(name).unwrap();
    let mut p = q.producer().unwrap();
    for i in 0..n.parse::<u32>().unwrap() {
        p.push(format!("{}:{i}", std::process::id()).as_bytes(), 10 * SEC).unwrap();
    }
}

#[test]
fn producers_in_other_processes() {
    let name = testkit::unique_name("q-procs");
    let q = CmdQueue::create(&name, cfg(4, 16, 64)).unwrap();
    let mut consumer = q.consumer().unwrap();
    const N: u32 = 500;
    let mut kids: Vec<_> =
        (0..3).map(|_| testkit::spawn_child("child_producer", "producer", &format!("{name} {N}")).unwrap()).collect();
    let mut next = std::collections::HashMap::<u32, u32>::new();
    let mut buf = Vec::new();
    for _ in 0..3 * N {
        consumer.pop(&mut buf, 10 * SEC).unwrap();
        let text = String::from_utf8(buf.clone()).unwrap();
        let (pid, i) = text.split_once(':').unwrap();
        let slot = next.entry(pid.parse().unwrap()).or_default();
        assert_eq!(i.parse::<u32>().unwrap(), *slot);
        *slot += 1;
    }
    assert_eq!(next.len(), 3);
    for k in &mut kids {
        assert!(k.wait_timeout(10 * SEC).unwrap().success());
    }
    q.unlink().unwrap();
}

static MARKER: OnceLock<PathBuf> = OnceLock::new();

/// Mid-push hook: announce we are inside a push, then hang until killed.
fn park_in_push() {
    if let Some(path) = MARKER.get() {
        std::fs::write(path, b"in push").unwrap();
        std::thread::sleep(Duration::from_secs(30));
    }
}

fn marker(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("venom-{name}.marker"))
}

#[test]
fn child_dies_mid_push() {
    let Some(name) = testkit::child_arg("mid-push") else { return };
    let q = CmdQueue::open(&name).unwrap();
    let mut p = q.producer().unwrap();
    p.push(b"before", SEC).unwrap();
    MARKER.set(marker(&name)).unwrap();
    venom_core::cmd_queue::set_mid_push_hook(park_in_push);
    let _ = p.push(b"torn", SEC);
    unreachable!("the parent kills us inside the push");
}

#[test]
fn producer_killed_mid_push_blocks_nobody() {
    let name = testkit::unique_name("q-kill");
    let q = CmdQueue::create(&name, cfg(2, 4, 64)).unwrap();
    let mut consumer = q.consumer().unwrap();
    let mut other = q.producer().unwrap();
    let mut kid = testkit::spawn_child("child_dies_mid_push", "mid-push", &name).unwrap();
    let path = marker(&name);
    assert!(testkit::wait_for(10 * SEC, || path.exists()), "child never reached the hook");
    kid.kill9();
    let _ = std::fs::remove_file(&path);
    // The completed push is delivered, the torn one never is, and the other
    // producer is not blocked.
    other.push(b"other", SEC).unwrap();
    let mut buf = Vec::new();
    let mut got = Vec::new();
    while let Ok(m) = consumer.pop(&mut buf, Duration::from_millis(100)) {
        got.push((m.lane, buf.clone()));
    }
    let texts: Vec<&[u8]> = got.iter().map(|(_, b)| &b[..]).collect();
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert!(texts.contains(&&b"before"[..]) && texts.contains(&&b"other"[..]));
    // The dead producer's lane is reclaimed (both lanes were taken).
    let mut fresh = q.producer().unwrap();
    assert_ne!(fresh.lane(), other.lane());
    fresh.push(b"after", SEC).unwrap();
    let m = consumer.pop(&mut buf, SEC).unwrap();
    assert_eq!((&buf[..], m.generation), (&b"after"[..], fresh.generation()));
    q.unlink().unwrap();
}

/// A hostile producer writes a published slot with an absurd length: the
/// consumer skips it (counting it) instead of trusting the length.
#[test]
fn hostile_slot_is_skipped() {
    use std::sync::atomic::AtomicU64;
    let c = cfg(1, 4, 64);
    let len = CmdQueue::layout_len(&c).unwrap();
    let mem = Aligned::new(len);
    // SAFETY: aligned, zeroed, private.
    unsafe { CmdQueue::init_at(mem.0, len, &c).unwrap() };
    // SAFETY: `mem` outlives the queue.
    let q = unsafe { CmdQueue::attach(mem.0, len).unwrap() };
    let mut consumer = q.consumer().unwrap();
    // Layout (cmd_queue::layout docs): rings start after the 256-byte header
    // and one 128-byte lane line; slots after the 384-byte ring control.
    let slot0 = 256 + 128 + 384;
    // SAFETY: 8-aligned words inside the first slot header.
    let word = |off: usize| unsafe { &*(mem.0.add(slot0 + off) as *const AtomicU64) };
    word(24).store(u64::from(u32::MAX), Ordering::Relaxed); // len field
    word(0).store(1, Ordering::Release); // stamp: position 0 published
    let mut p = q.producer().unwrap();
    p.push(b"real", SEC).unwrap();
    let mut buf = Vec::new();
    consumer.pop(&mut buf, SEC).unwrap();
    assert_eq!(buf, b"real");
    assert_eq!(consumer.corrupt_messages(), 1);
}

/// The consumer polls only lanes ever claimed (`lanes_used`): a consumer
/// created before any producer still sees a producer that claims a high
/// lane later, and a message spanning the inline part (32 bytes in the
/// stamp's cache line) and the overflow area arrives intact.
#[test]
fn late_high_lane_and_inline_overflow_split() {
    let name = testkit::unique_name("q-lanes-used");
    let q = CmdQueue::create(&name, cfg(8, 4, 100)).unwrap();
    let mut c = q.consumer().unwrap();
    let mut buf = Vec::new();
    assert!(c.try_pop(&mut buf).unwrap().is_none());
    let mut producers: Vec<_> = (0..5).map(|_| q.producer().unwrap()).collect();
    let last = producers.pop().unwrap();
    drop(producers); // lanes 0..4 free again; the high-water mark stays
    let mut p = last;
    assert_eq!(p.lane(), 4);
    for len in [0usize, 1, 31, 32, 33, 64, 100] {
        let msg: Vec<u8> = (0..len).map(|i| i as u8 ^ 0x5A).collect();
        p.push(&msg, SEC).unwrap();
        let m = c.pop(&mut buf, SEC).unwrap();
        assert_eq!((m.lane, m.len), (4, len));
        assert_eq!(buf, msg);
    }
    q.unlink().unwrap();
}
