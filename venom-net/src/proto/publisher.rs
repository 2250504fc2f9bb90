//! Sans-IO publisher state machine: one [`PublisherSession`] per mirror.
//!
//! No sockets and no implicit clocks: the I/O shell (or a test) feeds
//! decoded frames in with [`handle_frame`](PublisherSession::handle_frame),
//! pulls encoded frames out with [`poll_transmit`](PublisherSession::poll_transmit)
//! and passes the time explicitly.
//!
//! Protocol, per session:
//! 1. The mirror's `Hello` is compiled against the region; a `Welcome`
//!    (epoch, region size) is queued and a full snapshot is due.
//! 2. An update is built from ONE consistent region snapshot taken at
//!    version `v`, and is tagged `(epoch, seq = v, base_seq)`. Deltas are
//!    built from `snapshot_since(last sent version)`: the dirty chunks are
//!    diffed against a per-mirror **shadow** of the subscribed bytes as last
//!    sent, and only the changed runs go out.
//! 3. Conflation: a new update is only started when the bytes in flight
//!    (sent, not acknowledged) are below `max_in_flight` and fewer than
//!    `max_in_flight_updates` updates are unacknowledged. Until then writes
//!    just accumulate in the region's dirty tracking, so a slow mirror
//!    receives the latest values in one later delta, and the writer is never
//!    blocked. In-flight bytes are thus bounded by `max_in_flight` plus one
//!    update (at most the subscription size).
//! 4. On a `Resync` (or an ack timeout, for lossy transports) the session
//!    sends a full snapshot: nothing is silently lost.

use crate::error::{Error, Result};
use crate::proto::Now;
use crate::proto::admission::AdmissionLimits;
use crate::proto::diff::update_shadow;
use crate::proto::digest::{ChunkDigests, DIGEST_CHUNK};
use crate::proto::frame::{
    self, DIGEST_SCHEME_MERKLE16K, FLAG_LAST, FLAG_REPAIR, FLAG_SNAPSHOT, Frame, HashFrame, Hello, RUN_HEAD_LEN,
    UPDATE_HEAD_LEN, Welcome,
};
use crate::proto::policy::{PeerId, Policy};
use crate::proto::region::{RegionSource, Snapshot};
use crate::proto::stats::PublisherStats;
use crate::proto::subscription::CompiledSubscription;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Publisher tuning.
#[derive(Debug, Clone)]
pub struct PublisherConfig {
    /// Do not start a new update while this many bytes are unacknowledged.
    pub max_in_flight: usize,
    /// Nor while this many updates are unacknowledged (bounds how far a
    /// mirror that is slow to *apply* can fall behind before conflation).
    pub max_in_flight_updates: usize,
    /// Treat an update unacknowledged for this long as lost and resync.
    /// `None` (default) for reliable transports such as the QUIC stream,
    /// where a loss surfaces as a connection error instead.
    pub ack_timeout: Option<Duration>,
    /// Target payload bytes per update frame (capped by the frame size cap).
    pub frame_payload: usize,
    /// Changed runs closer than this many bytes are merged.
    pub merge_gap: usize,
    /// With `check_hash`, send a digest (the Merkle root of
    /// [`crate::proto::digest`], keyed by `(epoch, seq)`) at most this often. Keeping
    /// the root current costs O(dirty chunks) and is done between updates,
    /// never while one is being cut into frames. The digest is of the latest
    /// seq sent, so once the region goes quiet the final state is always
    /// checked (the I/O shell polls at least every 100 ms).
    pub hash_interval: Duration,
    /// Most digest chunks ([`crate::proto::digest::DIGEST_CHUNK`] bytes each) hashed
    /// per [`PublisherSession::poll_transmit`] call, so a full rehash after a
    /// snapshot is spread over many calls instead of stalling one.
    pub hash_budget_chunks: usize,
    /// The I/O shell refuses connections beyond this many live sessions
    /// (each holds a shadow and a snapshot buffer of up to the region size).
    pub max_mirrors: usize,
    /// Caps and deadlines of the other connection stages (see [`crate::proto::admission`]).
    pub admission: AdmissionLimits,
    /// Who may subscribe to what (see [`crate::proto::policy`]); checked on the hello.
    pub policy: Arc<Policy>,
}

impl Default for PublisherConfig {
    fn default() -> Self {
        PublisherConfig {
            max_in_flight: 8 << 20,
            max_in_flight_updates: 4,
            ack_timeout: None,
            frame_payload: 512 << 10,
            merge_gap: 16,
            hash_interval: Duration::from_millis(100),
            hash_budget_chunks: 64,
            max_mirrors: 64,
            admission: AdmissionLimits::default(),
            policy: Arc::new(Policy::default()),
        }
    }
}

/// The update being cut into frames.
/// Invariant: `runs` are `(virt, len)` ranges of the shadow, increasing and
/// disjoint; `(run, within)` is the next byte to send.
struct Outgoing {
    seq: u64,
    base_seq: u64,
    snapshot: bool,
    repair: bool,
    captured_ns: u64,
    runs: Vec<(u64, u64)>,
    run: usize,
    within: u64,
    part: u32,
    bytes: u64,
}

/// Publisher state for one mirror.
pub struct PublisherSession {
    epoch: u64,
    owner_id: u64,
    region_id: u32,
    cfg: PublisherConfig,
    /// Who the mirror is (authorization input; anonymous until told).
    peer: PeerId,
    /// `None` until the hello arrived.
    sub: Option<CompiledSubscription>,
    check_hash: bool,
    /// Digests of the shadow (with `check_hash`): marked dirty as the shadow
    /// changes, rehashed between updates.
    digests: Option<ChunkDigests>,
    /// Digest chunks the mirror asked to get in full with the next delta
    /// (sorted, distinct, each `< digests.chunks()`).
    repair: Vec<u32>,
    /// A digest of the last completed update is owed (since when); when the
    /// last one was sent; whose turn it is while a digest is overdue.
    hash_due: bool,
    hash_due_since: Option<Instant>,
    last_hash: Option<Instant>,
    digest_turn: bool,
    /// The accepted hello and the encoded welcome (to answer a repeated hello).
    hello: Option<Hello>,
    welcome: Vec<u8>,
    /// Subscribed bytes (virtual order) as of `last_version`, once a snapshot was taken.
    shadow: Vec<u8>,
    last_version: u64,
    needs_snapshot: bool,
    outgoing: Option<Outgoing>,
    /// `(seq, bytes, sent_at)` of completed, unacknowledged updates, by seq.
    in_flight: VecDeque<(u64, u64, Instant)>,
    in_flight_bytes: u64,
    control: VecDeque<Vec<u8>>,
    snap: Snapshot,
    stats: PublisherStats,
}

impl PublisherSession {
    /// A session of publisher incarnation `epoch` serving region `region_id`.
    pub fn new(epoch: u64, owner_id: u64, region_id: u32, cfg: PublisherConfig) -> Self {
        PublisherSession {
            epoch,
            owner_id,
            region_id,
            cfg,
            peer: PeerId::Anonymous,
            sub: None,
            check_hash: false,
            digests: None,
            repair: Vec::new(),
            hash_due: false,
            hash_due_since: None,
            last_hash: None,
            digest_turn: false,
            hello: None,
            welcome: Vec::new(),
            shadow: Vec::new(),
            last_version: 0,
            needs_snapshot: true,
            outgoing: None,
            in_flight: VecDeque::new(),
            in_flight_bytes: 0,
            control: VecDeque::new(),
            snap: Snapshot::default(),
            stats: PublisherStats::default(),
        }
    }

    /// Sets who the mirror is (from its TLS certificate); the hello is
    /// authorized against `cfg.policy` for this identity.
    pub fn set_peer(&mut self, peer: PeerId) {
        self.peer = peer;
    }

    /// Handles one frame from the mirror. An `Err` is a protocol violation
    /// (or [`Error::Unauthorized`] for a hello the policy refuses): the
    /// caller must drop the connection.
    pub fn handle_frame(&mut self, frame: &Frame<'_>, region: &dyn RegionSource, wire_len: usize) -> Result<()> {
        self.stats.bytes_received += wire_len as u64;
        match frame {
            Frame::Hello(h) => {
                if self.sub.is_some() {
                    // A repeated hello (lossy transports): must be identical.
                    if self.hello.as_ref() != Some(h) {
                        return Err(Error::Protocol("second, different hello".into()));
                    }
                    self.control.push_back(self.welcome.clone());
                    self.start_resync();
                    return Ok(());
                }
                if h.region_id != self.region_id {
                    return Err(Error::Protocol(format!("unknown region id {}", h.region_id)));
                }
                let sub = h.subscription.compile(region.size() as u64)?;
                // Before the shadow is allocated: a refused hello costs nothing.
                self.cfg.policy.authorize(&self.peer, &sub)?;
                self.shadow = vec![0; sub.total_len() as usize];
                self.check_hash = h.check_hash;
                self.digests = h.check_hash.then(|| ChunkDigests::new(sub.total_len()));
                self.sub = Some(sub);
                self.stats.mirror_id = h.mirror_id;
                let w = Welcome {
                    epoch: self.epoch,
                    owner_id: self.owner_id,
                    region_id: self.region_id,
                    chunk_size: region.chunk_size() as u32,
                    region_size: region.size() as u64,
                };
                let mut out = Vec::new();
                Frame::Welcome(w).encode(&mut out);
                self.welcome = out.clone();
                self.hello = Some(h.clone());
                self.control.push_back(out);
                self.needs_snapshot = true;
            }
            Frame::Ack(a) => {
                self.check_region(a.region_id)?;
                if a.epoch != self.epoch {
                    return Ok(()); // stale, from an earlier incarnation
                }
                if a.seq > self.stats.sent_seq {
                    return Err(Error::Protocol(format!("ack of unsent seq {}", a.seq)));
                }
                while let Some(&(seq, bytes, _)) = self.in_flight.front() {
                    if seq > a.seq {
                        break;
                    }
                    self.in_flight.pop_front();
                    self.in_flight_bytes -= bytes;
                }
                self.stats.acked_seq = self.stats.acked_seq.max(a.seq);
            }
            Frame::Resync(r) => {
                self.check_region(r.region_id)?;
                if r.epoch == self.epoch {
                    self.start_resync();
                }
            }
            Frame::Repair(r) => {
                self.check_region(r.region_id)?;
                let chunks = self.digests.as_ref().map(ChunkDigests::chunks).unwrap_or(0);
                if r.chunks.iter().any(|&c| c as usize >= chunks) {
                    return Err(Error::Protocol(
                        "repair of chunks outside the subscription (or without check_hash)".into(),
                    ));
                }
                if r.epoch == self.epoch {
                    self.stats.repairs += 1;
                    self.repair.extend_from_slice(&r.chunks);
                    self.repair.sort_unstable();
                    self.repair.dedup(); // bounded by the chunk count
                }
            }
            _ => return Err(Error::Protocol(format!("{:?} frame sent to a publisher", frame.kind()))),
        }
        Ok(())
    }

    fn check_region(&self, id: u32) -> Result<()> {
        if self.sub.is_none() || id != self.region_id {
            return Err(Error::Protocol("frame before hello or for another region".into()));
        }
        Ok(())
    }

    fn start_resync(&mut self) {
        self.needs_snapshot = true;
        self.outgoing = None; // the mirror discards a half-received update
        // The shadow may now hold an update that was never completed: no
        // digest until the snapshot is out (which makes one due again).
        self.hash_due = false;
        self.hash_due_since = None;
        self.in_flight.clear();
        self.in_flight_bytes = 0;
        self.stats.resyncs += 1;
    }

    /// Checks the ack timeout (if configured).
    pub fn handle_timeout(&mut self, now: Instant) {
        if let (Some(t), Some(f)) = (self.cfg.ack_timeout, self.in_flight.front())
            && now.saturating_duration_since(f.2) > t
        {
            self.start_resync();
        }
    }

    /// Appends the next frame to send to `out`; returns false when there is
    /// nothing to do now (no change, no hello yet, or in-flight cap reached).
    /// With `check_hash`, `true` may also mean that a bounded slice of digest
    /// work was done without appending a frame: call again.
    pub fn poll_transmit(&mut self, region: &dyn RegionSource, now: Now, out: &mut Vec<u8>) -> Result<bool> {
        if let Some(f) = self.control.pop_front() {
            self.stats.bytes_sent += f.len() as u64;
            out.extend_from_slice(&f);
            return Ok(true);
        }
        if self.sub.is_none() {
            return Ok(false);
        }
        // Updates go first; digest work fills the idle time. A digest owed
        // for 4 intervals (a writer that never pauses) alternates with updates.
        let overdue = self.outgoing.is_none()
            && self.hash_due
            && self
                .hash_due_since
                .is_some_and(|t| now.mono.saturating_duration_since(t) >= self.cfg.hash_interval.saturating_mul(4));
        self.digest_turn = overdue && !self.digest_turn;
        if self.digest_turn {
            if let Some(sent) = self.poll_digest(now, out)? {
                return Ok(sent);
            }
        }
        if self.outgoing.is_none() {
            let capped = self.in_flight_bytes >= self.cfg.max_in_flight as u64
                || self.in_flight.len() >= self.cfg.max_in_flight_updates.max(1);
            let started = !capped
                && if self.needs_snapshot {
                    self.start_snapshot(region, now).map(|()| true)?
                } else {
                    self.start_delta(region, now)?
                };
            if !started {
                // Idle: spend the time on the digest (bounded work per call).
                return Ok(self.poll_digest(now, out)?.unwrap_or(false));
            }
        }
        self.emit_frame(now, out);
        Ok(true)
    }

    /// Digest work between updates: rehashes up to `hash_budget_chunks`
    /// dirty chunks of the shadow; once none is dirty and a digest is due
    /// (and `hash_interval` passed), appends the hash frame. `Some(true)`: a
    /// frame was appended or hashing work remains (call again); `None`:
    /// nothing to do.
    fn poll_digest(&mut self, now: Now, out: &mut Vec<u8>) -> Result<Option<bool>> {
        let Some(d) = self.digests.as_mut() else { return Ok(None) };
        if d.dirty_chunks() > 0 {
            let shadow = &self.shadow;
            d.refresh(self.cfg.hash_budget_chunks.max(1), |virt, len| {
                Ok(ChunkDigests::leaf(&shadow[virt as usize..virt as usize + len]))
            })?;
            return Ok(Some(true));
        }
        if !self.hash_due
            || self.last_hash.is_some_and(|t| now.mono.saturating_duration_since(t) < self.cfg.hash_interval)
        {
            return Ok(None);
        }
        let Some(root) = d.root() else { return Ok(None) };
        self.hash_due = false;
        self.hash_due_since = None;
        self.last_hash = Some(now.mono);
        // The shadow holds exactly the subscribed bytes of the last completed
        // update (no update is being cut into frames here).
        let h = HashFrame {
            region_id: self.region_id,
            epoch: self.epoch,
            seq: self.stats.sent_seq,
            scheme: DIGEST_SCHEME_MERKLE16K,
            digest: root,
        };
        let start = out.len();
        Frame::Hash(h).encode(out);
        self.stats.bytes_sent += (out.len() - start) as u64;
        Ok(Some(true))
    }

    fn start_snapshot(&mut self, region: &dyn RegionSource, now: Now) -> Result<()> {
        region.snapshot_all(&mut self.snap)?;
        let sub = self.sub.as_ref().ok_or(Error::Closed)?;
        let identity = sub.runs().len() == 1
            && sub.runs()[0].src == 0
            && self.snap.chunks.first().is_some_and(|c| c.offset == 0 && c.data_offset == 0)
            && self.snap.data.len() as u64 == sub.total_len();
        if identity {
            // Whole-region subscription: the snapshot buffer IS the new shadow (no copy).
            std::mem::swap(&mut self.shadow, &mut self.snap.data);
        } else {
            let shadow = &mut self.shadow;
            for_each_overlap(sub, &self.snap, |virt, new| {
                shadow[virt as usize..virt as usize + new.len()].copy_from_slice(new);
            });
        }
        if let Some(d) = self.digests.as_mut() {
            d.mark_all();
        }
        self.repair.clear(); // the snapshot resends everything
        self.last_version = self.snap.version;
        self.needs_snapshot = false;
        self.outgoing = Some(Outgoing::new(self.snap.version, 0, true, now, vec![(0, sub.total_len())]));
        Ok(())
    }

    /// Starts a delta; false if the region did not change.
    fn start_delta(&mut self, region: &dyn RegionSource, now: Now) -> Result<bool> {
        if region.version() == self.last_version && self.repair.is_empty() {
            return Ok(false);
        }
        region.snapshot_since(self.last_version, &mut self.snap)?;
        let sub = self.sub.as_ref().ok_or(Error::Closed)?;
        let (shadow, gap, mut digests) = (&mut self.shadow, self.cfg.merge_gap, self.digests.as_mut());
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for_each_overlap(sub, &self.snap, |virt, new| {
            let old = &mut shadow[virt as usize..virt as usize + new.len()];
            update_shadow(old, new, gap, |o, l| {
                let v = virt + o as u64;
                if let Some(d) = digests.as_mut() {
                    d.mark(v, l as u64); // only the changed bytes' chunks get rehashed
                }
                match runs.last_mut() {
                    // Saturating: `merge_gap` may be any usize (usize::MAX = merge all).
                    Some(last) if (last.0 + last.1).saturating_add(gap as u64) > v => last.1 = v + l as u64 - last.0,
                    _ => runs.push((v, l as u64)),
                }
            }); // `old` now equals `new`
        });
        self.last_version = self.snap.version;
        let repair = !self.repair.is_empty();
        if repair {
            // Whole repaired chunks ride along (from the shadow, now at this seq).
            let total = sub.total_len();
            let forced = self.repair.drain(..).map(|k| {
                let v = k as u64 * DIGEST_CHUNK as u64;
                (v, (total - v).min(DIGEST_CHUNK as u64))
            });
            runs = union_ranges(runs, forced);
        }
        // Even with no subscribed byte changed, an (empty) update goes out so
        // the mirror's seq keeps tracking the region version it is consistent at.
        let mut o = Outgoing::new(self.snap.version, self.stats.sent_seq, false, now, runs);
        o.repair = repair;
        self.outgoing = Some(o);
        Ok(true)
    }

    fn emit_frame(&mut self, now: Now, out: &mut Vec<u8>) {
        let Some(o) = self.outgoing.as_mut() else { return };
        let budget =
            self.cfg.frame_payload.clamp(1, frame::MAX_UPDATE_BODY - UPDATE_HEAD_LEN - 64 * RUN_HEAD_LEN) as u64;
        let start = out.len();
        let flags = if o.snapshot { FLAG_SNAPSHOT } else { 0 } | if o.repair { FLAG_REPAIR } else { 0 };
        let head = frame::update_head(self.region_id, self.epoch, o.seq, o.base_seq, o.captured_ns, o.part, flags);
        let at = frame::encode_update_head(out, &head);
        let (mut used, mut count) = (0u64, 0u32);
        while o.run < o.runs.len() && used < budget && count < 64 {
            let (virt, len) = o.runs[o.run];
            let n = (len - o.within).min(budget - used);
            let from = (virt + o.within) as usize;
            frame::push_run(out, virt + o.within, &self.shadow[from..from + n as usize]);
            used += n;
            count += 1;
            o.within += n;
            if o.within == len {
                o.run += 1;
                o.within = 0;
            }
        }
        let last = o.run == o.runs.len();
        if last {
            out[at + frame::HEADER_LEN + UPDATE_HEAD_LEN - 5] |= FLAG_LAST;
        }
        frame::finish_update(out, at, count);
        let wire = (out.len() - start) as u64;
        o.part += 1;
        o.bytes += wire;
        self.stats.bytes_sent += wire;
        self.stats.payload_bytes += used;
        if last {
            let o = self.outgoing.take().unwrap_or_else(|| unreachable!());
            self.in_flight.push_back((o.seq, o.bytes, now.mono));
            self.in_flight_bytes += o.bytes;
            self.stats.sent_seq = o.seq;
            self.stats.updates_sent += 1;
            self.stats.snapshots_sent += o.snapshot as u64;
            if self.check_hash && !self.hash_due {
                self.hash_due = true;
                self.hash_due_since = Some(now.mono);
            }
        }
    }

    /// The session's counters; `region_version` is the region's current version.
    pub fn stats(&self, now: Instant, region_version: u64) -> PublisherStats {
        let mut s = self.stats.clone();
        s.in_flight_bytes = self.in_flight_bytes;
        s.lag_seq = region_version.saturating_sub(s.acked_seq) / 2;
        s.lag_time = self.in_flight.front().map(|f| now.saturating_duration_since(f.2)).unwrap_or_default();
        s
    }

    /// True once the mirror acknowledged everything sent and no update is pending.
    pub fn is_idle(&self) -> bool {
        self.outgoing.is_none()
            && self.in_flight.is_empty()
            && self.control.is_empty()
            && !self.needs_snapshot
            && !self.hash_due
    }

    /// The publisher epoch of this session.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
}

impl Outgoing {
    fn new(seq: u64, base_seq: u64, snapshot: bool, now: Now, runs: Vec<(u64, u64)>) -> Self {
        Outgoing {
            seq,
            base_seq,
            snapshot,
            repair: false,
            captured_ns: now.wall_ns,
            runs,
            run: 0,
            within: 0,
            part: 0,
            bytes: 0,
        }
    }
}

/// The union of two sets of `(start, len)` ranges, sorted and disjoint
/// (touching ranges merged).
fn union_ranges(a: Vec<(u64, u64)>, b: impl Iterator<Item = (u64, u64)>) -> Vec<(u64, u64)> {
    let mut all: Vec<(u64, u64)> = a.into_iter().chain(b).collect();
    all.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(all.len());
    for (s, l) in all {
        match out.last_mut() {
            Some(last) if last.0 + last.1 >= s => last.1 = last.1.max(s + l - last.0),
            _ => out.push((s, l)),
        }
    }
    out
}

/// Calls `f(virt, bytes)` for every piece of a snapshot chunk that is subscribed.
fn for_each_overlap(sub: &CompiledSubscription, snap: &Snapshot, mut f: impl FnMut(u64, &[u8])) {
    for c in &snap.chunks {
        let (c_start, c_end) = (c.offset as u64, (c.offset + c.len) as u64);
        for r in &sub.runs()[sub.first_run_ending_after(c_start)..] {
            if r.src >= c_end {
                break;
            }
            let lo = r.src.max(c_start);
            let hi = (r.src + r.len).min(c_end);
            let d = c.data_offset + (lo - c_start) as usize;
            f(r.virt + (lo - r.src), &snap.data[d..d + (hi - lo) as usize]);
        }
    }
}
