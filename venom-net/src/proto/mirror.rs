//! Sans-IO mirror state machine.
//!
//! Rules (the fixes for memblast's failures):
//! * An update is staged until its last frame arrives and is then applied
//!   with ONE [`RegionSink::apply`] call, so local readers never see half an
//!   update.
//! * A delta is applied only if `(epoch, base_seq)` equals the last applied
//!   `(epoch, seq)`; otherwise the mirror asks for a resync (and repeats the
//!   request after `resync_retry` if no snapshot came). Stale and duplicate
//!   frames are ignored and counted.
//! * Every run is checked against the mirror's own compiled subscription:
//!   runs must be strictly increasing, disjoint and inside the subscription,
//!   so a hostile publisher can neither write outside it nor make the
//!   mirror buffer more than the subscription size. Violations are errors
//!   (the caller drops the connection).
//! * With `check_hash`, the mirror keeps the [`crate::proto::digest`] Merkle tree
//!   of exactly its subscribed local bytes: applying an update only marks the
//!   chunks it wrote dirty; they are rehashed after the update is visible
//!   ([`MirrorSession::poll_verify`]) or, at the latest, when the publisher's
//!   root for the same `(epoch, seq)` arrives, so verification costs
//!   O(dirty chunks). Each check also re-reads `scrub_chunks` clean chunks
//!   (round robin), so a change made behind the state machine's back is
//!   found within `chunks / scrub_chunks` checks. A match means the local
//!   subscribed bytes equal the publisher's at that seq. A mismatch is
//!   counted and first answered with a [`RepairFrame`] naming the chunks
//!   whose digest changed since the last match (resent whole with the next
//!   delta); if the next check still fails, or the repair goes unanswered
//!   for `resync_retry`, a snapshot.
//! * Automatic resyncs back off exponentially (with jitter) while they keep
//!   coming, and `max_faults` consecutive digest mismatches put the mirror
//!   in a terminal failed state ([`crate::proto::stats::MirrorFailure`]): a hostile or
//!   broken publisher cannot make the mirror resync in a loop.

use crate::error::{Error, Result};
use crate::proto::Now;
use crate::proto::digest::{ChunkDigests, DIGEST_CHUNK};
use crate::proto::frame::{
    self, Ack, DIGEST_SCHEME_MERKLE16K, FLAG_LAST, FLAG_REPAIR, FLAG_SNAPSHOT, Frame, FrameHeader, FrameType,
    HEADER_LEN, HashFrame, Hello, MAX_REPAIR_CHUNKS, RepairFrame, Resume, Resync, ResyncReason, Update,
};
use crate::proto::jitter::Jitter;
use crate::proto::region::{RegionSink, UpdateTag};
use crate::proto::stats::{MirrorFailure, MirrorStats};
use crate::proto::subscription::{CompiledSubscription, Subscription};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Most digest chunks (16 KiB each, ~4 MiB) hashed inline when a digest
/// frame arrives; the rest is finished by [`MirrorSession::poll_verify`].
const INLINE_VERIFY_CHUNKS: usize = 256;

/// Most buffer capacity kept for reuse between updates.
const POOL_BYTES: usize = 64 << 20;

/// Mirror tuning.
#[derive(Debug, Clone)]
pub struct MirrorConfig {
    /// This mirror's id (logs, stats, future mesh ownership).
    pub mirror_id: u64,
    /// Which published region to subscribe to (0 = default).
    pub region_id: u32,
    /// Ask the publisher for a blake3 digest after every update and verify it.
    pub check_hash: bool,
    /// Repeat an unanswered resync request after this long.
    pub resync_retry: Duration,
    /// Automatic resyncs (gap, broken update, digest mismatch) that follow
    /// each other are spaced by an exponential backoff starting here...
    pub resync_backoff_min: Duration,
    /// ...doubling up to this (each delay jittered to 50..100 %). A streak
    /// ends after twice this long without an automatic resync, or at a
    /// verified digest.
    pub resync_backoff_max: Duration,
    /// Consecutive faults (digest mismatches; in the I/O shell also
    /// connections ended by a publisher protocol violation) after which the
    /// mirror gives up ([`MirrorFailure`]).
    pub max_faults: u32,
    /// Clean digest chunks re-read per digest check (background scrub).
    pub scrub_chunks: usize,
}

impl Default for MirrorConfig {
    fn default() -> Self {
        MirrorConfig {
            mirror_id: 0,
            region_id: 0,
            check_hash: false,
            resync_retry: Duration::from_secs(1),
            resync_backoff_min: Duration::from_millis(50),
            resync_backoff_max: Duration::from_secs(5),
            max_faults: 8,
            scrub_chunks: 4,
        }
    }
}

/// The last applied update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Applied {
    /// Publisher epoch.
    pub epoch: u64,
    /// Region version the local bytes equal (for the subscribed bytes).
    pub seq: u64,
    /// Whether it was a full snapshot.
    pub snapshot: bool,
}

/// An update being received. The received frame bodies are kept as they
/// are (no copy) until the last frame arrives.
/// Invariant: `runs` are `(virt, len, body index, start in body)`, strictly
/// increasing and disjoint in `virt`, inside the subscription; `next_virt` is
/// one past the last; `bytes` (their total) `<=` the subscription size.
struct Staging {
    seq: u64,
    base_seq: u64,
    snapshot: bool,
    repair: bool,
    captured_ns: u64,
    next_part: u32,
    next_virt: u64,
    bytes: u64,
    body_bytes: u64,
    runs: Vec<(u64, usize, usize, usize)>,
    bodies: Vec<Vec<u8>>,
}

/// Mirror state for one publisher connection (kept across reconnects).
pub struct MirrorSession {
    cfg: MirrorConfig,
    sub: Subscription,
    /// Set by the welcome.
    compiled: Option<CompiledSubscription>,
    epoch: Option<u64>,
    /// Last applied seq in `epoch`.
    applied: Option<u64>,
    staging: Option<Staging>,
    resync_sent_at: Option<Instant>,
    /// When the hello was (re)queued; cleared by the welcome.
    hello_sent_at: Option<Instant>,
    /// Recycled frame-body buffers (warm memory for the next update);
    /// bounded by `POOL_BYTES` of capacity.
    pool: Vec<Vec<u8>>,
    out: VecDeque<Vec<u8>>,
    stats: MirrorStats,
    /// Digests of the local subscribed bytes (with `check_hash`, after the welcome).
    digests: Option<ChunkDigests>,
    hash_buf: Vec<u8>,
    /// A digest for the applied seq, waiting for dirty chunks to be rehashed.
    pending_digest: Option<HashFrame>,
    /// A chunk repair was asked for since the last verified digest (the
    /// next mismatch falls back to a snapshot).
    repair_tried: bool,
    /// When the outstanding repair request was sent: unanswered (no repair
    /// update applied, no digest checked) within `resync_retry`, a snapshot
    /// is requested instead.
    repair_sent_at: Option<Instant>,
    /// Backoff: automatic resyncs in the current streak, when the last was
    /// sent, and a deferred request `(not before, reason)`.
    streak: u32,
    last_auto_resync: Option<Instant>,
    deferred: Option<(Instant, ResyncReason)>,
    /// Whether the next hello may offer the applied position as a resume point.
    resumable: bool,
    /// Jitter for the resync backoff (seeded lazily from the mirror id and the clock).
    rng: Option<Jitter>,
}

impl MirrorSession {
    /// A mirror for `sub`.
    pub fn new(cfg: MirrorConfig, sub: Subscription) -> Self {
        MirrorSession {
            cfg,
            sub,
            compiled: None,
            epoch: None,
            applied: None,
            staging: None,
            resync_sent_at: None,
            hello_sent_at: None,
            pool: Vec::new(),
            out: VecDeque::new(),
            stats: MirrorStats::default(),
            digests: None,
            hash_buf: Vec::new(),
            pending_digest: None,
            repair_tried: false,
            repair_sent_at: None,
            streak: 0,
            last_auto_resync: None,
            deferred: None,
            resumable: true,
            rng: None,
        }
    }

    /// Starts a (new) connection: queues the hello. Partial updates are dropped.
    pub fn connect(&mut self) {
        // A mirror that was waiting for a snapshot or a repair (a gap, a
        // digest mismatch, a local change) does not trust its bytes: it
        // offers no resume point, so it gets a snapshot.
        self.resumable = self.resync_sent_at.is_none() && self.deferred.is_none() && self.repair_sent_at.is_none();
        self.out.clear();
        self.staging = None;
        self.compiled = None;
        self.resync_sent_at = None;
        self.hello_sent_at = None;
        self.deferred = None;
        self.pending_digest = None;
        self.repair_sent_at = None;
        if self.stats.failure.is_none() {
            self.push_hello();
        }
    }

    fn push_hello(&mut self) {
        let hello = Hello {
            mirror_id: self.cfg.mirror_id,
            region_id: self.cfg.region_id,
            check_hash: self.cfg.check_hash,
            subscription: self.sub.clone(),
            // Offer the applied position: within the publisher's backlog
            // window a reconnect costs only what was missed, not a snapshot.
            resume: self.epoch.zip(self.applied).filter(|_| self.resumable).map(|(epoch, seq)| Resume { epoch, seq }),
        };
        self.push(Frame::Hello(hello));
    }

    fn push(&mut self, f: Frame<'_>) {
        let mut v = Vec::new();
        f.encode(&mut v);
        self.out.push_back(v);
    }

    /// Appends the next frame to send; false if none.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> bool {
        if self.stats.failure.is_some() {
            return false;
        }
        match self.out.pop_front() {
            Some(f) => {
                self.stats.bytes_sent += f.len() as u64;
                out.extend_from_slice(&f);
                true
            }
            None => false,
        }
    }

    /// Asks the publisher for a full snapshot (e.g. after the local region
    /// was modified by someone else). No-op before the welcome.
    pub fn request_snapshot(&mut self, now: Instant) {
        self.request_resync(ResyncReason::Requested, now);
    }

    /// A buffer for the next frame body (recycled when possible).
    pub fn take_buffer(&mut self) -> Vec<u8> {
        self.pool.pop().unwrap_or_default()
    }

    fn recycle(&mut self, bodies: Vec<Vec<u8>>) {
        let mut held: usize = self.pool.iter().map(Vec::capacity).sum();
        for b in bodies {
            if held + b.capacity() > POOL_BYTES {
                break;
            }
            held += b.capacity();
            self.pool.push(b);
        }
    }

    /// Sends a resync request held back by the backoff once it is due, and
    /// repeats an unanswered hello or resync request (needed on lossy
    /// transports only; over a QUIC stream nothing is lost).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.stats.failure.is_some() {
            return;
        }
        if let Some((at, reason)) = self.deferred
            && now >= at
        {
            self.deferred = None;
            self.send_resync(reason, now);
        }
        if self.repair_sent_at.is_some_and(|t| now.saturating_duration_since(t) >= self.cfg.resync_retry) {
            self.repair_sent_at = None; // the repair went unanswered
            self.request_resync(ResyncReason::HashMismatch, now);
        }
        if self.compiled.is_none() {
            match self.hello_sent_at {
                None => self.hello_sent_at = Some(now),
                Some(t) if now.saturating_duration_since(t) >= self.cfg.resync_retry => {
                    self.hello_sent_at = Some(now);
                    self.push_hello();
                }
                Some(_) => {}
            }
        }
        if self.resync_sent_at.is_some_and(|t| now.saturating_duration_since(t) >= self.cfg.resync_retry) {
            self.resync_sent_at = None;
            self.send_resync(ResyncReason::Retry, now);
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) next has work: a
    /// deferred resync (the I/O shell sleeps until then).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let repair = self.repair_sent_at.map(|t| t + self.cfg.resync_retry);
        match (self.deferred.map(|d| d.0), repair) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Asks for a snapshot, through the backoff unless the application asked.
    fn request_resync(&mut self, reason: ResyncReason, now: Instant) {
        if self.resync_sent_at.is_some() || self.deferred.is_some() || self.stats.failure.is_some() {
            return;
        }
        if reason == ResyncReason::Requested {
            self.send_resync(reason, now);
            return;
        }
        let quiet = self.cfg.resync_backoff_max.saturating_mul(2);
        if self.last_auto_resync.is_none_or(|t| now.saturating_duration_since(t) >= quiet) {
            self.streak = 0;
        }
        let delay = match self.streak {
            0 => Duration::ZERO,
            n => {
                let d =
                    self.cfg.resync_backoff_min.saturating_mul(1 << (n - 1).min(20)).min(self.cfg.resync_backoff_max);
                let mirror_id = self.cfg.mirror_id;
                self.rng.get_or_insert_with(|| Jitter::from_clock(mirror_id)).spread(d) // 50..100 % of d
            }
        };
        self.streak = self.streak.saturating_add(1);
        let at = self.last_auto_resync.map_or(now, |t| t + delay);
        self.last_auto_resync = Some(at.max(now));
        if at > now {
            self.stats.resyncs_deferred += 1;
            self.deferred = Some((at, reason));
        } else {
            self.send_resync(reason, now);
        }
    }

    fn send_resync(&mut self, reason: ResyncReason, now: Instant) {
        if self.resync_sent_at.is_some() {
            return;
        }
        let (Some(epoch), Some(_)) = (self.epoch, &self.compiled) else { return };
        self.resync_sent_at = Some(now);
        self.stats.resyncs_requested += 1;
        let r =
            Resync { region_id: self.cfg.region_id, epoch, last_seq: self.applied.unwrap_or(0), reason: reason as u8 };
        self.push(Frame::Resync(r));
    }

    /// Handles one frame from the publisher; `Ok(Some(..))` when an update was
    /// applied. An `Err` is a protocol violation: drop the connection.
    pub fn handle_frame(
        &mut self,
        frame: &Frame<'_>,
        sink: &mut dyn RegionSink,
        wire_len: usize,
        now: Now,
    ) -> Result<Option<Applied>> {
        if let Some(f) = self.stats.failure {
            return Err(Error::MirrorFailed(f));
        }
        self.stats.bytes_received += wire_len as u64;
        match frame {
            Frame::Welcome(w) => {
                if w.region_id != self.cfg.region_id {
                    return Err(Error::Protocol(format!("welcome for region {}", w.region_id)));
                }
                let c = self.sub.compile(w.region_size)?;
                if c.dst_end() > sink.size() as u64 {
                    return Err(Error::OutOfRange {
                        what: "subscription destination",
                        offset: 0,
                        len: c.dst_end(),
                        limit: sink.size() as u64,
                    });
                }
                if self.epoch != Some(w.epoch) {
                    self.applied = None; // new publisher incarnation: wait for its snapshot
                }
                self.epoch = Some(w.epoch);
                // Fresh digests: the local bytes are rehashed after the snapshot that follows.
                self.digests = self.cfg.check_hash.then(|| ChunkDigests::new(c.total_len()));
                self.compiled = Some(c);
                Ok(None)
            }
            Frame::Update(_) => {
                // Borrowed input (tests, fuzzing): copy it into an owned body.
                let mut v = Vec::new();
                frame.encode(&mut v);
                self.stats.bytes_received -= wire_len as u64;
                let h = FrameHeader::decode(v[..HEADER_LEN].try_into().map_err(|_| Error::Closed)?)?;
                self.handle(h, v.split_off(HEADER_LEN), sink, now)
            }
            Frame::Hash(h) => {
                if self.compiled.is_none()
                    || self.digests.is_none()
                    || Some(h.epoch) != self.epoch
                    || self.applied != Some(h.seq)
                {
                    self.stats.stale_frames += 1; // stale, reordered or not asked for
                    return Ok(None);
                }
                if h.scheme != DIGEST_SCHEME_MERKLE16K {
                    return Err(Error::Protocol(format!("unknown digest scheme {}", h.scheme)));
                }
                if let Some(d) = self.digests.as_mut() {
                    d.scrub(self.cfg.scrub_chunks);
                }
                if self.pending_digest.replace(*h).is_some() {
                    self.stats.stale_frames += 1; // superseded before it could be checked
                }
                self.poll_verify(sink, INLINE_VERIFY_CHUNKS, now.mono)?;
                Ok(None)
            }
            _ => Err(Error::Protocol(format!("{:?} frame sent to a mirror", frame.kind()))),
        }
    }

    /// About how many bytes [`handle`](Self::handle) of this frame will
    /// write into the sink: the staged update's bytes plus this frame's when
    /// it is an update's last frame, else 0 (other frames are only staged or
    /// are small). Lets the I/O shell move only big applies off its async
    /// worker.
    pub fn apply_len(&self, h: &FrameHeader, body: &[u8]) -> usize {
        let last = h.kind == FrameType::Update && frame::peek_flags(body).is_some_and(|f| f & FLAG_LAST != 0);
        if !last {
            return 0;
        }
        let staged = self.staging.as_ref().map_or(0, |st| st.body_bytes as usize);
        staged.saturating_add(body.len())
    }

    /// Handles one frame given as its validated header and owned body (the
    /// I/O shell's path: update bodies are staged without copying).
    pub fn handle(
        &mut self,
        h: FrameHeader,
        body: Vec<u8>,
        sink: &mut dyn RegionSink,
        now: Now,
    ) -> Result<Option<Applied>> {
        if let Some(f) = self.stats.failure {
            return Err(Error::MirrorFailed(f));
        }
        let wire_len = HEADER_LEN + body.len();
        let frame = Frame::decode_body(h, &body)?;
        let Frame::Update(u) = frame else { return self.handle_frame(&frame, sink, wire_len, now) };
        self.stats.bytes_received += wire_len as u64;
        if !self.stage(&u, body.as_ptr() as usize, now)? {
            return Ok(None);
        }
        let last = u.flags & FLAG_LAST != 0;
        let total = self.compiled.as_ref().map_or(0, |c| c.total_len());
        let st = self.staging.as_mut().ok_or(Error::Closed)?;
        // Bound what a hostile publisher can make us buffer: every non-last
        // frame carries data, and all staged bodies together stay within
        // twice the subscription size (+1 MiB) — honest deltas use < 1x.
        st.body_bytes += body.len() as u64;
        if (!last && u.run_count() == 0) || st.body_bytes > 2 * total + (1 << 20) {
            return Err(Error::Protocol("update frames exceed the staging bound".into()));
        }
        st.bodies.push(body);
        if !last {
            return Ok(None);
        }
        let st = self.staging.take().ok_or(Error::Closed)?;
        self.finish(st, sink, now)
    }

    /// Validates an update frame and records its runs; false if it was ignored.
    fn stage(&mut self, u: &Update<'_>, body_base: usize, now: Now) -> Result<bool> {
        let Some(c) = &self.compiled else {
            self.stats.stale_frames += 1; // reordered before the welcome (lossy transports)
            return Ok(false);
        };
        if u.region_id != self.cfg.region_id {
            return Err(Error::Protocol(format!("update for region {}", u.region_id)));
        }
        if Some(u.epoch) != self.epoch {
            self.stats.stale_frames += 1;
            return Ok(false);
        }
        if u.part == 0 {
            self.staging = Some(Staging {
                seq: u.seq,
                base_seq: u.base_seq,
                snapshot: u.flags & FLAG_SNAPSHOT != 0,
                repair: u.flags & FLAG_REPAIR != 0,
                captured_ns: u.captured_ns,
                next_part: 0,
                next_virt: 0,
                bytes: 0,
                body_bytes: 0,
                runs: Vec::new(),
                bodies: Vec::new(),
            });
        }
        let st = match self.staging.as_mut() {
            Some(st) if st.seq == u.seq && st.next_part == u.part => st,
            Some(st) if st.seq == u.seq && u.part < st.next_part => {
                self.stats.stale_frames += 1; // duplicate frame
                return Ok(false);
            }
            _ => {
                self.staging = None;
                self.stats.stale_frames += 1;
                self.request_resync(ResyncReason::BrokenUpdate, now.mono);
                return Ok(false);
            }
        };
        let body_index = st.bodies.len();
        for (virt, data) in u.runs() {
            let end = virt.checked_add(data.len() as u64).filter(|&e| e <= c.total_len());
            if virt < st.next_virt || end.is_none() {
                return Err(Error::OutOfRange {
                    what: "update run (overlapping or outside the subscription)",
                    offset: virt,
                    len: data.len() as u64,
                    limit: c.total_len(),
                });
            }
            st.runs.push((virt, data.len(), body_index, data.as_ptr() as usize - body_base));
            st.bytes += data.len() as u64;
            st.next_virt = virt + data.len() as u64;
        }
        st.next_part += 1;
        self.stats.payload_bytes += u.payload_len() as u64;
        Ok(true)
    }

    fn finish(&mut self, st: Staging, sink: &mut dyn RegionSink, now: Now) -> Result<Option<Applied>> {
        let (Some(c), Some(epoch)) = (&self.compiled, self.epoch) else { return Ok(None) };
        if st.snapshot {
            if st.bytes != c.total_len() {
                return Err(Error::Protocol("snapshot does not cover the subscription".into()));
            }
            if self.applied.is_some_and(|a| st.seq < a) {
                self.stats.stale_frames += 1;
                return Ok(None);
            }
        } else if self.applied.is_some_and(|a| st.seq < a || (st.seq == a && !(st.repair && st.base_seq == a))) {
            self.stats.stale_frames += 1; // duplicate or older delta
            return Ok(None);
        } else if self.applied != Some(st.base_seq) || (st.seq <= st.base_seq && !st.repair) {
            self.request_resync(ResyncReason::Gap, now.mono);
            return Ok(None);
        }
        let mut writes: Vec<(usize, &[u8])> = Vec::with_capacity(st.runs.len());
        for &(virt, len, body, at) in &st.runs {
            c.map_virtual(virt, len as u64, |dst, n, skip| {
                let from = at + skip as usize;
                writes.push((dst as usize, &st.bodies[body][from..from + n as usize]));
            })?;
        }
        let tag = UpdateTag { epoch, seq: st.seq, snapshot: st.snapshot, captured_ns: st.captured_ns };
        sink.apply_update(&writes, tag)?;
        drop(writes);
        if self.pending_digest.take().is_some() {
            self.stats.stale_frames += 1; // its seq is no longer the applied one
        }
        if st.repair {
            self.repair_sent_at = None; // answered: the digest that follows decides
        }
        if let Some(d) = self.digests.as_mut() {
            // Only mark here: the hashing happens after the update is visible.
            if st.snapshot {
                d.mark_all();
            } else {
                for &(virt, len, _, _) in &st.runs {
                    d.mark(virt, len as u64);
                }
            }
        }
        self.recycle(st.bodies);
        self.applied = Some(st.seq);
        if st.snapshot {
            self.resync_sent_at = None;
            self.stats.snapshots_applied += 1;
        }
        self.stats.updates_applied += 1;
        self.stats.epoch = epoch;
        self.stats.seq = st.seq;
        self.stats.lag_time = Duration::from_nanos(now.wall_ns.saturating_sub(st.captured_ns));
        self.push(Frame::Ack(Ack { region_id: self.cfg.region_id, epoch, seq: st.seq }));
        Ok(Some(Applied { epoch, seq: st.seq, snapshot: st.snapshot }))
    }

    /// Rehashes up to `max_chunks` dirty digest chunks from the local region
    /// (no-op without `check_hash`) and, once none is dirty, checks a
    /// pending publisher digest for the applied seq. Returns the dirty
    /// chunks left. The I/O shell calls this after each applied update was
    /// published to local waiters, so hashing stays off the
    /// receive-to-visible path. `Err(MirrorFailed)` when this check made
    /// `max_faults`.
    pub fn poll_verify(&mut self, sink: &dyn RegionSink, max_chunks: usize, now: Instant) -> Result<usize> {
        let left = self.rehash(sink, max_chunks)?;
        if left == 0
            && let Some(h) = self.pending_digest.take()
        {
            self.check_digest(h, now)?;
        }
        Ok(left)
    }

    fn check_digest(&mut self, h: HashFrame, now: Instant) -> Result<()> {
        if Some(h.epoch) != self.epoch || self.applied != Some(h.seq) {
            self.stats.stale_frames += 1;
            return Ok(());
        }
        self.repair_sent_at = None; // a digest was checked after it: answered or not, decided now
        if self.digests.as_ref().and_then(ChunkDigests::root) == Some(h.digest) {
            self.stats.hash_matches += 1;
            self.stats.faults = 0;
            self.streak = 0; // verified: the next resync (if any) goes out at once
            self.repair_tried = false;
            if let Some(d) = self.digests.as_mut() {
                d.clear_suspects();
            }
            return Ok(());
        }
        self.stats.hash_mismatches += 1;
        self.record_fault(MirrorFailure::DigestMismatches)?;
        // First answer: resend only the chunks rehashed since the last
        // verified digest (the difference must be among them unless a run
        // landed in the wrong chunk); if that does not verify, a snapshot.
        let suspects = self.digests.as_ref().and_then(|d| d.suspects(MAX_REPAIR_CHUNKS));
        match suspects {
            Some(chunks) if !self.repair_tried && !chunks.is_empty() && self.resync_sent_at.is_none() => {
                self.repair_tried = true;
                self.repair_sent_at = Some(now);
                self.stats.repairs_requested += 1;
                let (region_id, epoch) = (self.cfg.region_id, h.epoch);
                self.push(Frame::Repair(RepairFrame { region_id, epoch, seq: h.seq, chunks }));
            }
            _ => self.request_resync(ResyncReason::HashMismatch, now),
        }
        Ok(())
    }

    fn rehash(&mut self, sink: &dyn RegionSink, max_chunks: usize) -> Result<usize> {
        let (Some(d), Some(c)) = (self.digests.as_mut(), self.compiled.as_ref()) else { return Ok(0) };
        if d.dirty_chunks() == 0 {
            return Ok(0);
        }
        let buf = &mut self.hash_buf;
        buf.resize(DIGEST_CHUNK, 0);
        d.refresh(max_chunks, |virt, len| {
            let mut failed = None;
            c.map_virtual(virt, len as u64, |dst, n, skip| {
                let to = &mut buf[skip as usize..(skip + n) as usize];
                if let Err(e) = sink.read_at(dst as usize, to) {
                    failed.get_or_insert(e);
                }
            })?;
            match failed {
                Some(e) => Err(e),
                None => Ok(ChunkDigests::leaf(&buf[..len])),
            }
        })
    }

    /// Counts one fault; past `max_faults` the mirror fails for good.
    fn record_fault(&mut self, kind: fn(u32) -> MirrorFailure) -> Result<()> {
        self.stats.faults = self.stats.faults.saturating_add(1);
        if self.stats.faults >= self.cfg.max_faults.max(1) {
            let f = kind(self.stats.faults);
            self.stats.failure = Some(f);
            self.out.clear();
            self.deferred = None;
            return Err(Error::MirrorFailed(f));
        }
        Ok(())
    }

    /// The I/O shell reports a connection ended by a publisher protocol
    /// violation; `Err(MirrorFailed)` once that makes `max_faults`.
    pub(crate) fn record_protocol_fault(&mut self) -> Result<()> {
        self.record_fault(MirrorFailure::ProtocolViolations)
    }

    /// The I/O shell reports a connection that stayed healthy for long
    /// (only used without `check_hash`, where no digest can vouch for it).
    pub(crate) fn clear_faults(&mut self) {
        if !self.cfg.check_hash {
            self.stats.faults = 0;
        }
    }

    /// Whether the mirror gave up (see [`MirrorFailure`]).
    pub fn failure(&self) -> Option<MirrorFailure> {
        self.stats.failure
    }

    /// Last applied update, if any in the current epoch.
    pub fn applied(&self) -> Option<Applied> {
        Some(Applied { epoch: self.epoch?, seq: self.applied?, snapshot: false })
    }

    /// The compiled subscription (after the welcome).
    pub fn compiled(&self) -> Option<&CompiledSubscription> {
        self.compiled.as_ref()
    }

    /// Counters.
    pub fn stats(&self) -> &MirrorStats {
        &self.stats
    }

    /// Counters, mutable (the I/O shell adds connection counts).
    pub(crate) fn stats_mut(&mut self) -> &mut MirrorStats {
        &mut self.stats
    }
}

/// blake3 of the subscribed local bytes in virtual (source) order.
pub fn subscribed_hash(c: &CompiledSubscription, sink: &dyn RegionSink) -> Result<[u8; 32]> {
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 64 << 10];
    for r in c.runs() {
        let mut done = 0u64;
        while done < r.len {
            let n = (r.len - done).min(buf.len() as u64) as usize;
            sink.read_at((r.dst + done) as usize, &mut buf[..n])?;
            h.update(&buf[..n]);
            done += n as u64;
        }
    }
    Ok(*h.finalize().as_bytes())
}
