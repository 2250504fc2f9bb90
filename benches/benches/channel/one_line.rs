//! Prototype one-line request/reply protocols (issue 12): what an in-place
//! reply could cost, measured in the channel bench's own harness (two real
//! processes, same placement, same floor) with raw shared memory and no
//! library code, so the figures bound what a channel built on each
//! variant can reach.
//!
//! The shared block (a RAW segment body, 128-aligned):
//! ```text
//! offset 0  slot lines   R B    `slots` × 64 B: stamp, len, 2 reserved header words,
//!                               32 payload bytes (the layout of a cmd_queue slot line);
//!                               R = max(128, slots × 64)
//! R         lane ctl     8 B    the lane generation (read-mostly: written at set-up only)
//! R + 128   daemon epoch 8 B    the daemon's pass counter (written by the daemon only)
//! ```
//! With one slot the line sits alone in its 128-byte pair so the
//! adjacent-line prefetcher pulls nothing else along; variant E uses 64
//! contiguous slot lines, request `i` in line `i % 64`, as a cmd_queue ring
//! of depth 64 does.
//!
//! The stamp is one word: `state << 62 | generation << 32 | request id`.
//! The client owns the line while it is EMPTY or REPLIED, the daemon while
//! it is REQUEST: each side writes it only while it owns it, so no variant
//! needs a locked read-modify-write (the in-place design of the last round
//! claimed the slot with a CAS and measured ~10 % slower than two lines).
//!
//! Variants (all echo the payload):
//! * **A, plain stores**: the client stores payload, length, then the stamp
//!   (Release); the daemon polls the stamp (Acquire), reads the payload,
//!   stores the reply payload, length, then the reply stamp (Release).
//!   Generation 0, no checks: the protocol's bare cost.
//! * **B, + generation and request id**: A plus what a real protocol checks.
//!   The request stamp carries the client's lane generation and request id;
//!   the daemon answers only a stamp whose generation equals the lane's
//!   current generation (one load of the read-mostly lane line) and, after
//!   every reply, publishes its pass counter (one store to a line only it
//!   writes: the grace period a takeover would wait on instead of fencing
//!   with a CAS); the client accepts only the reply stamp that echoes its
//!   own generation and request id (one compare).
//! * **C, B with the line written as one 64-byte store**: both sides build
//!   the whole line (stamp included) in a register and write it with one
//!   AVX-512 store, so the line is written by one store per hop (x86 does
//!   not architecturally promise that a 64-byte store is seen at once, so
//!   this is a measurement, not a protocol candidate; the reader still reads
//!   per word with atomics, stamp first).
//! * **D, B with `cldemote`**: after writing the line each side demotes it
//!   to the shared cache level, so the other side's poll can be served from
//!   the LLC instead of by a snoop of the writer's core.
//! * **E, B over a 64-slot ring**: B, but request `i` uses slot line
//!   `i % 64` of a 4 KiB ring (a real in-place channel cycles through its
//!   lane's ring like this, so every round trip touches a line last used 64
//!   round trips ago).
//! * **F, E with daemon work**: E, but the daemon spends [`WORK_NS`] ns
//!   of local work (TSC spin: what a real daemon spends in its dispatch,
//!   handler and bookkeeping) between reading a request and
//!   writing its reply. The client polls the line meanwhile, so the line
//!   the daemon read is pulled back before the daemon writes it: one more
//!   transfer per reply than E plus the work.
//! * **G, F with a client back-off**: F, but the client spins locally for
//!   twice [`WORK_NS`] (the request's transfer plus the daemon's work)
//!   after sending before its first poll, so it does not pull the line
//!   back while the daemon works. (A real client cannot
//!   know the daemon's handler time; this bounds what a back-off can buy.)
//! * **H, B with daemon work**: one fixed line per client (the shape of a
//!   per-client "mailbox" for synchronous requests) and [`MAILBOX_WORK_NS`]
//!   of daemon work before the reply, about what the real daemon's
//!   dispatch and bookkeeping take (probes breakdown).
//! * **I, B with F's work**: H with [`WORK_NS`] (F without the ring).
//! * **J, H with a fixed client back-off**: H, but the client spins locally
//!   (the TSC spin of [`work`], no shared memory) for the row's back-off
//!   after storing its request, before its first poll, so it does not pull
//!   the line back while the daemon works. One row per back-off (a sweep).
//! * **K, H with a slower poll**: H, but the client polls the stamp with no
//!   back-off and either no `PAUSE` between polls (gap 0: a tight poll) or
//!   the row's gap of local spin between polls (every other variant polls
//!   with one `PAUSE` per poll, see `spin_until`).
//! * **L, H with a self-calibrating back-off**: J, but the back-off is the
//!   client's own estimate, updated after every round trip from what its
//!   first poll saw: [`CALIBRATE_DOWN_NS`] shorter if the reply was already
//!   there, the row's up-step longer if not (with [`CALIBRATE_UP_NS`] it
//!   settles where ~8 of 9 first polls find the reply, whatever the daemon's
//!   work costs; a larger up-step settles at a later, safer back-off).
//! * **M, J with the daemon taking the line for writing early**: J, but
//!   right after reading the request (before its work) the daemon issues
//!   `prefetchw` on the line, so the reply store does not wait for the
//!   client's read copy to be invalidated after the work; the client's
//!   back-off keeps it from pulling the line back meanwhile.
//! * **N, L with M's `prefetchw`**: the self-calibrating back-off of L
//!   against M's daemon.
//! * **O, L against I's daemon**: the self-calibrating back-off with
//!   [`WORK_NS`] of daemon work (does the estimate follow a slower handler?).
//! * **J2, J against I's daemon**: a fixed back-off tuned for H's
//!   [`MAILBOX_WORK_NS`], with a handler that takes [`WORK_NS`] (slower than
//!   the back-off assumes).

use std::sync::atomic::{AtomicU64, Ordering};

use venom_core::{Segment, SegmentKind};

use super::{Peer, RoundTrip, place_peer, spin_until};

/// Stamp states (bits 63..62).
const REQUEST: u64 = 1 << 62;
const REPLIED: u64 = 2 << 62;
/// The client stores this stamp to stop the daemon.
const QUIT: u64 = 3 << 62;
/// Request ids wrap at 32 bits.
const ID_MASK: u64 = 0xFFFF_FFFF;
/// The generation the prototypes run under (any non-zero value).
const GENERATION: u64 = 7;
/// Bytes of payload carried in the slot line.
const INLINE: usize = 32;
/// Slot lines of the ring of variants E, F and G.
const RING_SLOTS: usize = 64;
/// Nanoseconds of [`work`] in variants F, G and I.
pub const WORK_NS: u64 = 60;
/// Nanoseconds of [`work`] in variant H: about what the real daemon spends
/// between seeing a request and publishing its reply (the `probes`
/// breakdown in BENCHMARKS).
pub const MAILBOX_WORK_NS: u64 = 30;
/// Variants L, N and O: nanoseconds the back-off shrinks by when the first poll found
/// the reply (it waited too long, or just long enough).
pub const CALIBRATE_DOWN_NS: f64 = 2.0;
/// Variants N and O (and the first L row): nanoseconds the back-off grows by
/// when the first poll missed (the miss pulled the line back from the
/// daemon: the costly case).
pub const CALIBRATE_UP_NS: f64 = 16.0;
/// Variants L, N and O: the back-off never exceeds this (a stalled daemon must not
/// teach the client to sleep through fast replies for long).
pub const CALIBRATE_MAX_NS: f64 = 2000.0;

/// TSC ticks per nanosecond, measured once per process over 20 ms.
fn ticks_per_ns() -> f64 {
    static TPN: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TPN.get_or_init(|| {
        // SAFETY: rdtsc has no preconditions on x86_64.
        let (t0, c0) = (std::time::Instant::now(), unsafe { std::arch::x86_64::_rdtsc() });
        std::thread::sleep(std::time::Duration::from_millis(20));
        // SAFETY: as above.
        let c1 = unsafe { std::arch::x86_64::_rdtsc() };
        (c1 - c0) as f64 / t0.elapsed().as_nanos() as f64
    })
}

/// Local work that touches no shared memory: spins on the TSC for `ns`
/// nanoseconds.
pub fn work(ns: u64) {
    let ticks = (ns as f64 * ticks_per_ns()) as u64;
    // SAFETY: rdtsc has no preconditions on x86_64.
    let start = unsafe { std::arch::x86_64::_rdtsc() };
    // SAFETY: as above.
    while unsafe { std::arch::x86_64::_rdtsc() }.wrapping_sub(start) < ticks {}
}

/// Bytes of the slot-line region for `slots` lines.
fn lines_len(slots: usize) -> usize {
    (slots * 64).max(128)
}

/// One prototype variant.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Variant {
    /// Plain Release stores, no checks.
    A,
    /// + generation / request-id checks and the daemon's pass counter.
    B,
    /// B, each side writing the line as one 64-byte store.
    C,
    /// B, each side demoting the line after writing it.
    D,
    /// B over a ring of 64 slot lines.
    E,
    /// E with daemon work between reading a request and replying.
    F,
    /// F with the client backing off its poll by the same work.
    G,
    /// B (one fixed line: a per-client mailbox) with [`MAILBOX_WORK_NS`] of
    /// daemon work between reading a request and replying.
    H,
    /// B with [`WORK_NS`] of daemon work (F without the ring).
    I,
    /// H with the client spinning locally for this many ns after sending,
    /// before its first poll.
    J(u32),
    /// H with the client polling without `PAUSE` (0) or with this many ns of
    /// local spin between polls.
    K(u32),
    /// H with a back-off the client calibrates from its own first polls
    /// (this up-step, ns).
    L(u32),
    /// J (this back-off, ns) with the daemon `prefetchw`-ing the line right
    /// after reading the request.
    M(u32),
    /// L with M's daemon.
    N,
    /// L against I's daemon ([`WORK_NS`] of work).
    O,
    /// J (this back-off, ns) against I's daemon ([`WORK_NS`] of work).
    J2(u32),
}

/// The prototype rows the channel bench runs: variant, payload size, label.
pub const ROWS: [(Variant, usize, &str); 27] = [
    (Variant::A, 8, "A (plain Release stores)"),
    (Variant::B, 8, "B (A + generation/request id)"),
    (Variant::B, 32, "B (A + generation/request id)"),
    (Variant::C, 8, "C (B, line as one 64-byte store)"),
    (Variant::D, 8, "D (B + cldemote after writing)"),
    (Variant::E, 8, "E (B over a 64-slot ring)"),
    (Variant::F, 8, "F (E + daemon work before the reply)"),
    (Variant::G, 8, "G (F + client poll back-off)"),
    (Variant::H, 8, "H (B + 30 ns daemon work before the reply)"),
    (Variant::I, 8, "I (B + 60 ns daemon work before the reply)"),
    (Variant::J(40), 8, "J (H + client back-off 40 ns)"),
    (Variant::J(80), 8, "J (H + client back-off 80 ns)"),
    (Variant::J(120), 8, "J (H + client back-off 120 ns)"),
    (Variant::J(140), 8, "J (H + client back-off 140 ns)"),
    (Variant::J(160), 8, "J (H + client back-off 160 ns)"),
    (Variant::J(180), 8, "J (H + client back-off 180 ns)"),
    (Variant::J(200), 8, "J (H + client back-off 200 ns)"),
    (Variant::J(240), 8, "J (H + client back-off 240 ns)"),
    (Variant::K(0), 8, "K (H, client polls without PAUSE)"),
    (Variant::K(50), 8, "K (H, client polls every 50 ns)"),
    (Variant::L(16), 8, "L (H + self-calibrating client back-off)"),
    (Variant::L(64), 8, "L (H + self-calibrating client back-off, up-step 64 ns)"),
    (Variant::M(0), 8, "M (J + daemon prefetchw, back-off 0 ns)"),
    (Variant::M(160), 8, "M (J + daemon prefetchw, back-off 160 ns)"),
    (Variant::N, 8, "N (L + daemon prefetchw)"),
    (Variant::O, 8, "O (L against 60 ns daemon work)"),
    (Variant::J2(160), 8, "J2 (I + client back-off 160 ns)"),
];

impl Variant {
    fn parse(s: &str) -> Variant {
        match s {
            "a" => Variant::A,
            "b" => Variant::B,
            "c" => Variant::C,
            "d" => Variant::D,
            "e" => Variant::E,
            "f" => Variant::F,
            "h" => Variant::H,
            "i" => Variant::I,
            // The daemons of J, K, L, M and N do H's work (M's and N's add a
            // prefetchw), those of O and J2 do I's; the parameters are the
            // client's only.
            "j" => Variant::J(0),
            "k" => Variant::K(0),
            "l" => Variant::L(0),
            "m" => Variant::M(0),
            "n" => Variant::N,
            "o" => Variant::O,
            "j2" => Variant::J2(0),
            _ => Variant::G,
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Variant::A => "a",
            Variant::B => "b",
            Variant::C => "c",
            Variant::D => "d",
            Variant::E => "e",
            Variant::F => "f",
            Variant::G => "g",
            Variant::H => "h",
            Variant::I => "i",
            Variant::J(_) => "j",
            Variant::K(_) => "k",
            Variant::L(_) => "l",
            Variant::M(_) => "m",
            Variant::N => "n",
            Variant::O => "o",
            Variant::J2(_) => "j2",
        }
    }

    fn slots(self) -> usize {
        if matches!(self, Variant::E | Variant::F | Variant::G) { RING_SLOTS } else { 1 }
    }

    /// Whether this variant can run on this CPU (`cldemote` is a no-op
    /// hint where unsupported, so D always runs).
    pub fn supported(self) -> bool {
        match self {
            Variant::C => std::arch::is_x86_feature_detected!("avx512f"),
            _ => true,
        }
    }

    fn generation(self) -> u64 {
        if self == Variant::A { 0 } else { GENERATION }
    }
}

/// The block's words, as atomics.
struct Block<'a> {
    lines: &'a [[AtomicU64; 8]],
    lane_generation: &'a AtomicU64,
    epoch: &'a AtomicU64,
}

fn block(seg: &Segment, slots: usize) -> Block<'_> {
    let base = seg.body_ptr();
    let r = lines_len(slots);
    assert!(seg.body_len() >= r + 256, "prototype block too small");
    // Both processes touch these words only through atomics (variant C's
    // 64-byte store excepted, see `store_line`).
    // SAFETY: the body is at least r + 256 bytes (checked) and 128-aligned, so
    // the lines and the words at r and r + 128 are in bounds and aligned.
    unsafe {
        Block {
            lines: std::slice::from_raw_parts(base as *const [AtomicU64; 8], slots),
            lane_generation: &*(base.add(r) as *const AtomicU64),
            epoch: &*(base.add(r + 128) as *const AtomicU64),
        }
    }
}

/// Writes `words` (stamp first) into the line: per word with the stamp
/// last (A, B, D), or as one 64-byte store (C); D then demotes the line.
fn store_line(line: &[AtomicU64; 8], words: &[u64; 8], variant: Variant) {
    match variant {
        Variant::C => {
            // SAFETY: C runs only where avx512f is detected (`supported`);
            // the line is 64-aligned and 64 bytes. The other process reads
            // it only with atomic loads, and reads it only after it saw the
            // stamp this store carries.
            unsafe { store64(line.as_ptr() as *mut u8, words) }
        }
        _ => {
            for i in 1..8 {
                // Relaxed: published by the Release store of the stamp.
                line[i].store(words[i], Ordering::Relaxed);
            }
            // Release: the payload and length above are visible before the
            // stamp that hands the line over.
            line[0].store(words[0], Ordering::Release);
            if variant == Variant::D {
                demote(line.as_ptr() as *const u8);
            }
        }
    }
}

/// One 64-byte AVX-512 store of `words` to `dst`.
///
/// # Safety
/// avx512f must be available; `dst` must be 64-aligned, valid for 64 bytes.
#[target_feature(enable = "avx512f")]
unsafe fn store64(dst: *mut u8, words: &[u64; 8]) {
    use std::arch::x86_64::{_mm512_loadu_si512, _mm512_store_si512};
    // One instruction: on x86 (TSO) every earlier store is visible before it
    // (the Release the protocol needs); the compiler keeps other accesses on
    // their side of it because the intrinsic's pointer escapes.
    // SAFETY: `words` is 64 readable bytes; `dst` per the caller.
    unsafe {
        let v = _mm512_loadu_si512(words.as_ptr() as *const _);
        _mm512_store_si512(dst as *mut _, v);
    }
}

/// `cldemote` of the line at `p` (a hint: a no-op where unsupported).
fn demote(p: *const u8) {
    // SAFETY: cldemote only hints the cache hierarchy; it neither reads nor
    // writes memory architecturally, and `p` points into a live mapping.
    unsafe { std::arch::asm!("cldemote [{0}]", in(reg) p, options(nostack, preserves_flags, readonly)) };
}

/// `prefetchw` of the line at `p`: asks for it in a writable state ahead of
/// the store (a hint: architecturally neither a read nor a write).
fn prefetch_for_write(p: *const u8) {
    // SAFETY: prefetchw only hints the cache hierarchy (it is a NOP on CPUs
    // without it, and never faults); `p` points into a live mapping.
    unsafe { std::arch::asm!("prefetchw [{0}]", in(reg) p, options(nostack, preserves_flags, readonly)) };
}

/// Reads the line's length and payload into `out` (Relaxed: ordered by the
/// Acquire load of the stamp the caller did first).
fn load_payload(line: &[AtomicU64; 8], out: &mut [u64; 4]) -> u64 {
    for (i, w) in out.iter_mut().enumerate() {
        *w = line[4 + i].load(Ordering::Relaxed);
    }
    line[1].load(Ordering::Relaxed)
}

/// Child: the prototype daemon for `"NAME VARIANT"`: answers every REQUEST
/// stamp of the current generation by echoing the payload.
pub fn daemon(arg: &str) {
    let (name, variant) = arg.split_once(' ').expect("name variant");
    let variant = Variant::parse(variant);
    place_peer();
    let seg = Segment::open(name, SegmentKind::RAW).expect("open");
    ticks_per_ns();
    let slots = variant.slots();
    let b = block(&seg, slots);
    let mut passes = 0u64;
    let mut idle = 0u64;
    // The next request arrives in slot `next % slots` (the client sends
    // request ids 1, 2, ... into slots 0, 1, ...).
    let mut next = 0usize;
    loop {
        let line = &b.lines[next % slots];
        // Acquire: the payload written before the stamp is visible below.
        let s = line[0].load(Ordering::Acquire);
        if s == QUIT {
            return;
        }
        if s & (3 << 62) == REQUEST {
            idle = 0;
            let generation = (s >> 32) & 0x3FFF_FFFF;
            // Acquire: pairs with the Release of a takeover that bumped the
            // generation (set-up only here; a mismatch means a stale slot).
            if variant != Variant::A && generation != b.lane_generation.load(Ordering::Acquire) {
                std::hint::spin_loop();
                continue;
            }
            let mut payload = [0u64; 4];
            let len = load_payload(line, &mut payload);
            if matches!(variant, Variant::M(_) | Variant::N) {
                prefetch_for_write(line.as_ptr() as *const u8);
            }
            match variant {
                Variant::F | Variant::G | Variant::I | Variant::O | Variant::J2(_) => work(WORK_NS),
                Variant::H | Variant::J(_) | Variant::K(_) | Variant::L(_) | Variant::M(_) | Variant::N => {
                    work(MAILBOX_WORK_NS)
                }
                _ => {}
            }
            let reply = REPLIED | (s & !(3 << 62));
            let words = [reply, len, 0, 0, payload[0], payload[1], payload[2], payload[3]];
            store_line(line, &words, variant);
            next = next.wrapping_add(1);
            if variant != Variant::A {
                passes += 1;
                // Release: a takeover that reads this pass count knows every
                // reply the daemon started before it is written.
                b.epoch.store(passes, Ordering::Release);
            }
            continue;
        }
        std::hint::spin_loop();
        idle += 1;
        // Nothing waits forever: a vanished client (its segment unlinked,
        // this mapping kept alive) stops the daemon after ~10 s of silence.
        if idle & 0xFFFFF == 0 && idle > 400_000_000 {
            return;
        }
    }
}

/// The client side of one prototype (see the module docs).
pub struct OneLine {
    seg: Segment,
    variant: Variant,
    len: usize,
    id: u64,
    /// Variants L, N and O: the current back-off estimate, ns.
    backoff: f64,
    /// Variants L, N and O: round trips whose first poll found the reply,
    /// and all round trips.
    first_hits: u64,
    trips: u64,
    _peer: Peer,
}

/// Starts the prototype daemon for `variant` and returns its client,
/// `len` payload bytes per request (≤ 32).
pub fn one_line(variant: Variant, len: usize, pinned: bool) -> OneLine {
    assert!(len <= INLINE);
    let param = match variant {
        Variant::J(ns) | Variant::K(ns) | Variant::L(ns) | Variant::M(ns) | Variant::J2(ns) => ns,
        _ => 0,
    };
    let name = format!("bench-proto-{}-{}{param}", std::process::id(), variant.tag());
    let body = lines_len(variant.slots()) + 256;
    let seg = Segment::builder(&name, SegmentKind::RAW).body_len(body).create().expect("create block");
    // Release: set-up, before the daemon starts.
    block(&seg, variant.slots()).lane_generation.store(variant.generation(), Ordering::Release);
    ticks_per_ns(); // calibrated before the daemon spins on the other core
    let peer = Peer::spawn("proto", &format!("{name} {}", variant.tag()), pinned);
    let mut p = OneLine { seg, variant, len, id: 0, backoff: 0.0, first_hits: 0, trips: 0, _peer: peer };
    p.round_trip(); // waits until the daemon is up
    p
}

impl RoundTrip for OneLine {
    fn round_trip(&mut self) {
        let slots = self.variant.slots();
        let b = block(&self.seg, slots);
        // Request id `i` uses slot `(i - 1) % slots` (ids start at 1 and,
        // with 64 slots dividing 2^32, stay in step with the daemon's count
        // across the wrap).
        let line = &b.lines[(self.id as usize) % slots];
        self.id = (self.id + 1) & ID_MASK;
        let tag = self.variant.generation() << 32 | self.id;
        let msg = [0x0707_0707_0707_0707u64; 4];
        let words = [REQUEST | tag, self.len as u64, 0, 0, msg[0], msg[1], msg[2], msg[3]];
        store_line(line, &words, self.variant);
        match self.variant {
            // The request's transfer plus the daemon's work.
            Variant::G => work(2 * WORK_NS),
            Variant::J(ns) | Variant::M(ns) | Variant::J2(ns) => work(u64::from(ns)),
            Variant::L(_) | Variant::N | Variant::O => work(self.backoff as u64),
            _ => {}
        }
        let want = REPLIED | tag;
        // Acquire (every load below): the reply payload is visible once its
        // stamp is.
        match self.variant {
            Variant::K(gap) => poll_until(|| line[0].load(Ordering::Acquire) == want, gap),
            Variant::L(_) | Variant::N | Variant::O => {
                let first = line[0].load(Ordering::Acquire) == want;
                if !first {
                    spin_until(|| line[0].load(Ordering::Acquire) == want, "one-line prototype");
                }
                self.backoff = if first {
                    (self.backoff - CALIBRATE_DOWN_NS).max(0.0)
                } else {
                    let up = match self.variant {
                        Variant::L(up) => f64::from(up),
                        _ => CALIBRATE_UP_NS,
                    };
                    (self.backoff + up).min(CALIBRATE_MAX_NS)
                };
                self.trips += 1;
                self.first_hits += u64::from(first);
            }
            _ => spin_until(|| line[0].load(Ordering::Acquire) == want, "one-line prototype"),
        }
        let mut reply = [0u64; 4];
        let len = load_payload(line, &mut reply);
        std::hint::black_box((len, reply));
    }
}

/// Polls `done()` with `gap_ns` of local spin between polls, or none and
/// no `PAUSE` either if `gap_ns` is 0 (a tight poll); panics after 10 s (a
/// dead peer must not hang the bench; the clock is read every 4096 polls).
fn poll_until(mut done: impl FnMut() -> bool, gap_ns: u32) {
    let mut polls = 0u32;
    let mut deadline = None;
    while !done() {
        if gap_ns > 0 {
            work(u64::from(gap_ns));
        }
        polls = polls.wrapping_add(1);
        if polls & 4095 == 0 {
            let d = *deadline.get_or_insert_with(|| std::time::Instant::now() + std::time::Duration::from_secs(10));
            assert!(std::time::Instant::now() < d, "one-line prototype: peer not answering");
        }
    }
}

impl Drop for OneLine {
    fn drop(&mut self) {
        if self.trips > 0 {
            eprintln!(
                "  proto {:?}: back-off settled at {:.0} ns, first poll found the reply in {:.1} % of {} round trips",
                self.variant,
                self.backoff,
                100.0 * self.first_hits as f64 / self.trips as f64,
                self.trips
            );
        }
        // Release: nothing to publish, the daemon just stops.
        let slots = self.variant.slots();
        block(&self.seg, slots).lines[(self.id as usize) % slots][0].store(QUIT, Ordering::Release);
        let _ = self.seg.unlink();
    }
}
