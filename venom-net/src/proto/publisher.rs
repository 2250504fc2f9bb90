//! Sans-IO publisher state machine: one [`PublisherSession`] per mirror,
//! all of a region's sessions fed by ONE shared [`RegionEncoder`].
//!
//! No sockets and no implicit clocks: the I/O shell (or a test) feeds
//! decoded frames in with [`handle_frame`](PublisherSession::handle_frame),
//! pulls encoded frames out with [`poll_transmit`](PublisherSession::poll_transmit)
//! and passes the time explicitly.
//!
//! Protocol, per session:
//! 1. The mirror's `Hello` is compiled against the region; a `Welcome`
//!    (epoch, region size) is queued as soon as the encoder has an epoch,
//!    and a full snapshot is due, unless the hello offers a resume point
//!    `(epoch, seq)` the encoder's backlog still reaches back to: then the
//!    mirror only gets what it missed.
//! 2. Every update brings the mirror to the encoder's current version `v`
//!    and is tagged `(epoch, seq = v, base_seq)`. Snapshots are cut from the
//!    encoder's frozen [`ShadowView`]; deltas from the backlog: a mirror at
//!    the newest delta's base gets that delta (for a whole-region
//!    subscription, its shared frames byte for byte), one that is further
//!    behind gets the merge of every delta since its seq, cut to its
//!    subscription (ranges, n-D slices, named arrays). No per-mirror shadow,
//!    no per-mirror diff.
//! 3. Conflation: a new update is only started when the bytes in flight
//!    (sent, not acknowledged) are below `max_in_flight` and fewer than
//!    `max_in_flight_updates` updates are unacknowledged. Until then the
//!    encoder's deltas just accumulate in the backlog, so a slow mirror
//!    receives the latest values in one later, merged delta (or a snapshot
//!    once it fell out of the backlog), and neither the writer nor the other
//!    mirrors ever wait for it. In-flight bytes are thus bounded by
//!    `max_in_flight` plus one update (at most the subscription size).
//! 4. On a `Resync` (or an ack timeout, for lossy transports) the session
//!    sends a full snapshot: nothing is silently lost.

use crate::error::{Error, Result};
use crate::proto::Now;
use crate::proto::admission::AdmissionLimits;
use crate::proto::backlog::Delta;
use crate::proto::cut::{self, Piece};
use crate::proto::digest::{ChunkDigests, DIGEST_CHUNK};
use crate::proto::encoder::{EncoderConfig, RegionEncoder, RootPoll, ShadowView};
use crate::proto::frame::{
    self, DIGEST_SCHEME_MERKLE16K, FLAG_LAST, FLAG_REPAIR, FLAG_SNAPSHOT, Frame, HashFrame, Hello, RUN_HEAD_LEN,
    UPDATE_HEAD_LEN, Welcome,
};
use crate::proto::policy::{PeerId, Policy};
use crate::proto::stats::PublisherStats;
use crate::proto::subscription::CompiledSubscription;
use crate::proto::transmit::{FrameSink, Transmit};
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
    /// The I/O shell refuses connections beyond this many live sessions.
    /// A session costs no shadow (see the crate's memory model), so this
    /// can be raised well beyond the default; past one host's network or
    /// CPU, fan out through relays (`MirrorConfig::relay`).
    pub max_mirrors: usize,
    /// Bytes of encoded deltas the region's encoder keeps (the replication
    /// backlog): mirrors that are behind, or reconnect, by less than this
    /// get deltas instead of a snapshot.
    pub backlog_bytes: usize,
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
            backlog_bytes: 16 << 20,
            admission: AdmissionLimits::default(),
            policy: Arc::new(Policy::default()),
        }
    }
}

impl PublisherConfig {
    /// The settings of the region's shared encoder (region id `region_id`).
    pub fn encoder(&self, region_id: u32) -> EncoderConfig {
        EncoderConfig {
            region_id,
            frame_payload: self.frame_payload,
            merge_gap: self.merge_gap,
            backlog_bytes: self.backlog_bytes,
        }
    }
}

/// The update being cut into frames.
enum Outgoing {
    /// A delta's shared frames, sent as they are (whole-region subscription
    /// at exactly the delta's base): no per-mirror work (and no copy into a
    /// [`Transmit`]).
    Shared { delta: Arc<Delta>, next: usize, bytes: u64 },
    /// Pieces cut to this mirror's subscription.
    Cut(Cut),
}

/// Invariant: `pieces` are sorted by `virt` and disjoint; the front one's
/// first `within` bytes were sent. Sent pieces are dropped (their chunks or
/// deltas are no longer pinned).
struct Cut {
    seq: u64,
    base_seq: u64,
    snapshot: bool,
    repair: bool,
    captured_ns: u64,
    pieces: VecDeque<Piece>,
    within: u64,
    part: u32,
    bytes: u64,
}

/// Publisher state for one mirror: its subscription, its position in the
/// region's version chain and what is in flight. The bytes come from the
/// region's shared [`RegionEncoder`] (no per-mirror shadow).
pub struct PublisherSession {
    epoch: u64,
    owner_id: u64,
    region_id: u32,
    cfg: PublisherConfig,
    /// Who the mirror is (authorization input; anonymous until told).
    peer: PeerId,
    /// `None` until the hello arrived.
    sub: Option<CompiledSubscription>,
    /// Whether `sub` is the whole region at virtual offset 0 (shared frames fit).
    whole: bool,
    check_hash: bool,
    /// With `check_hash` and a whole-region subscription: roots come from
    /// the encoder's shared tree ([`RegionEncoder::whole_root`]).
    shared_digest: bool,
    /// Digest chunks of the subscription (with `check_hash`; repair bound).
    digest_chunks: usize,
    /// Digests of the subscribed bytes at `sent_seq` (with `check_hash`, not shared):
    /// marked dirty as updates start, rehashed from `view` between updates.
    digests: Option<ChunkDigests>,
    /// The shadow view digests are rehashed from (pinned while digest work is pending).
    view: Option<Arc<ShadowView>>,
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
    /// A welcome was sent for `epoch`.
    welcomed: bool,
    needs_snapshot: bool,
    outgoing: Option<Outgoing>,
    /// `(seq, bytes, sent_at)` of completed, unacknowledged updates, by seq.
    in_flight: VecDeque<(u64, u64, Instant)>,
    in_flight_bytes: u64,
    control: VecDeque<Vec<u8>>,
    stats: PublisherStats,
}

impl PublisherSession {
    /// A session serving region `region_id` to one mirror. `epoch` is the
    /// initial epoch; the session follows its encoder's epoch (a relay's
    /// upstream may change it), re-welcoming the mirror when it changes.
    pub fn new(epoch: u64, owner_id: u64, region_id: u32, cfg: PublisherConfig) -> Self {
        PublisherSession {
            epoch,
            owner_id,
            region_id,
            cfg,
            peer: PeerId::Anonymous,
            sub: None,
            whole: false,
            check_hash: false,
            shared_digest: false,
            digest_chunks: 0,
            digests: None,
            view: None,
            repair: Vec::new(),
            hash_due: false,
            hash_due_since: None,
            last_hash: None,
            digest_turn: false,
            hello: None,
            welcome: Vec::new(),
            welcomed: false,
            needs_snapshot: true,
            outgoing: None,
            in_flight: VecDeque::new(),
            in_flight_bytes: 0,
            control: VecDeque::new(),
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
    pub fn handle_frame(&mut self, frame: &Frame<'_>, enc: &RegionEncoder, wire_len: usize) -> Result<()> {
        self.stats.bytes_received += wire_len as u64;
        match frame {
            Frame::Hello(h) => {
                if self.sub.is_some() {
                    // A repeated hello (lossy transports): must be identical.
                    if self.hello.as_ref() != Some(h) {
                        return Err(Error::Protocol("second, different hello".into()));
                    }
                    if self.welcomed {
                        self.control.push_back(self.welcome.clone());
                        self.start_resync();
                    }
                    return Ok(());
                }
                if h.region_id != self.region_id {
                    return Err(Error::Protocol(format!("unknown region id {}", h.region_id)));
                }
                let sub = h.subscription.compile(enc.size() as u64)?;
                // Before anything is allocated for it: a refused hello costs nothing.
                self.cfg.policy.authorize(&self.peer, &sub)?;
                self.whole = sub.runs().len() == 1 && sub.runs()[0].src == 0 && sub.total_len() == enc.size() as u64;
                self.check_hash = h.check_hash;
                // Whole-region mirrors share the encoder's digest tree; the
                // others keep one over their subscription.
                self.shared_digest = h.check_hash && self.whole && enc.region_id() == self.region_id;
                self.digest_chunks =
                    if h.check_hash { sub.total_len().div_ceil(DIGEST_CHUNK as u64) as usize } else { 0 };
                self.digests = (h.check_hash && !self.shared_digest).then(|| ChunkDigests::new(sub.total_len()));
                self.sub = Some(sub);
                self.stats.mirror_id = h.mirror_id;
                self.hello = Some(h.clone());
                // The welcome goes out from poll_transmit once the encoder
                // has an epoch (a relay waits for its upstream).
            }
            Frame::Ack(a) => {
                self.check_region(a.region_id)?;
                if a.epoch != self.epoch || !self.welcomed {
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
                if r.epoch == self.epoch && self.welcomed {
                    self.start_resync();
                }
            }
            Frame::Repair(r) => {
                self.check_region(r.region_id)?;
                let chunks = self.digest_chunks;
                if r.chunks.iter().any(|&c| c as usize >= chunks) {
                    return Err(Error::Protocol(
                        "repair of chunks outside the subscription (or without check_hash)".into(),
                    ));
                }
                if r.epoch == self.epoch && self.welcomed {
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
        // The digests may now cover an update that was never completed: no
        // digest until the snapshot is out (which makes one due again).
        self.hash_due = false;
        self.hash_due_since = None;
        self.in_flight.clear();
        self.in_flight_bytes = 0;
        self.stats.resyncs += 1;
    }

    /// Queues the welcome for the encoder's epoch: the first one (where a
    /// hello's resume point is honoured if the backlog reaches back to it),
    /// or a new one after the encoder's epoch changed (a relay whose
    /// upstream restarted): then the mirror gets a snapshot of the new epoch.
    fn welcome(&mut self, enc: &RegionEncoder, epoch: u64) {
        let first = !self.welcomed;
        self.epoch = epoch;
        self.welcomed = true;
        let w = Welcome {
            epoch,
            owner_id: self.owner_id,
            region_id: self.region_id,
            chunk_size: enc.chunk_size() as u32,
            region_size: enc.size() as u64,
        };
        let mut out = Vec::new();
        Frame::Welcome(w).encode(&mut out);
        self.welcome = out.clone();
        self.control.push_back(out);
        if !first {
            self.start_resync();
            if let Some(d) = self.digests.as_mut() {
                d.mark_all();
            }
        }
        let resume = self.hello.as_ref().and_then(|h| h.resume);
        if let Some(r) = resume.filter(|r| first && r.epoch == epoch)
            && (enc.version() == r.seq || enc.backlog().since(epoch, r.seq).is_some())
        {
            // The mirror holds the bytes at r.seq: it gets only what it missed.
            self.needs_snapshot = false;
            self.stats.sent_seq = r.seq;
            self.stats.acked_seq = r.seq;
            self.stats.resumed += 1;
            if self.check_hash && enc.version() == r.seq {
                // Nothing to send: verify the resumed bytes right away.
                if self.digests.is_some() {
                    self.view = Some(enc.view());
                }
                self.hash_due = true;
            }
        }
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
    ///
    /// Only reads `enc` (the I/O shell holds its read lock): the encoder's
    /// deltas and views are shared, so any number of sessions poll at once.
    pub fn poll_transmit(&mut self, enc: &RegionEncoder, now: Now, out: &mut Vec<u8>) -> Result<bool> {
        self.poll(enc, now, out)
    }

    /// [`poll_transmit`](Self::poll_transmit) into a [`Transmit`]: the same
    /// bytes, but payload slices reference the encoder's shared buffers
    /// instead of being copied (for a zero-copy transport write).
    pub fn poll_transmit_chunks(&mut self, enc: &RegionEncoder, now: Now, out: &mut Transmit) -> Result<bool> {
        self.poll(enc, now, out)
    }

    fn poll(&mut self, enc: &RegionEncoder, now: Now, out: &mut impl FrameSink) -> Result<bool> {
        if self.sub.is_some()
            && let Some(e) = enc.epoch()
            && (!self.welcomed || e != self.epoch)
        {
            self.welcome(enc, e);
        }
        if let Some(f) = self.control.pop_front() {
            self.stats.bytes_sent += f.len() as u64;
            out.head().extend_from_slice(&f);
            return Ok(true);
        }
        if self.sub.is_none() || !self.welcomed {
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
        if self.digest_turn
            && let Some(sent) = self.poll_digest(enc, now, out.head())?
        {
            return Ok(sent);
        }
        if self.outgoing.is_none() {
            let capped = self.in_flight_bytes >= self.cfg.max_in_flight as u64
                || self.in_flight.len() >= self.cfg.max_in_flight_updates.max(1);
            let started = !capped
                && if self.needs_snapshot {
                    self.start_snapshot(enc, now);
                    true
                } else {
                    self.start_delta(enc, now)
                };
            if !started {
                // Idle: spend the time on the digest (bounded work per call).
                return Ok(self.poll_digest(enc, now, out.head())?.unwrap_or(false));
            }
        }
        self.emit_frame(now, out);
        Ok(true)
    }

    /// Digest work between updates: rehashes up to `hash_budget_chunks`
    /// dirty chunks from the pinned view; once none is dirty and a digest is
    /// due (and `hash_interval` passed), appends the hash frame and unpins
    /// the view. `Some(true)`: a frame was appended or hashing work remains
    /// (call again); `None`: nothing to do.
    fn poll_digest(&mut self, enc: &RegionEncoder, now: Now, out: &mut Vec<u8>) -> Result<Option<bool>> {
        if self.shared_digest {
            return Ok(self.poll_shared_digest(enc, now, out));
        }
        let (Some(d), Some(sub)) = (self.digests.as_mut(), self.sub.as_ref()) else { return Ok(None) };
        if d.dirty_chunks() > 0 {
            let Some(view) = self.view.as_ref() else { return Ok(None) }; // a snapshot will mark and pin
            let mut buf = vec![0u8; DIGEST_CHUNK];
            d.refresh(self.cfg.hash_budget_chunks.max(1), |virt, len| {
                read_virtual(view, sub, virt, &mut buf[..len])?;
                Ok(ChunkDigests::leaf(&buf[..len]))
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
        self.view = None; // digests are current: release the pinned chunks
        // The view was pinned at the seq of the last completed update (no
        // update is being cut into frames here).
        self.push_hash(root, out);
        Ok(Some(true))
    }

    /// Whole-region subscriptions: the root comes from the encoder, computed
    /// once per region version for every such session (no per-mirror tree).
    fn poll_shared_digest(&mut self, enc: &RegionEncoder, now: Now, out: &mut Vec<u8>) -> Option<bool> {
        if !self.hash_due
            || self.last_hash.is_some_and(|t| now.mono.saturating_duration_since(t) < self.cfg.hash_interval)
        {
            return None;
        }
        match enc.whole_root(self.epoch, self.stats.sent_seq, self.cfg.hash_budget_chunks) {
            RootPoll::Ready(root) => {
                self.hash_due = false;
                self.hash_due_since = None;
                self.last_hash = Some(now.mono);
                self.push_hash(root, out);
                Some(true)
            }
            RootPoll::Pending => Some(true),
            // The encoder moved on and no longer keeps that root: the
            // digest of the next completed update will be checked instead.
            RootPoll::Unavailable => None,
        }
    }

    fn push_hash(&mut self, root: [u8; 32], out: &mut Vec<u8>) {
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
    }

    /// Starts a snapshot of the subscription from the encoder's current view.
    fn start_snapshot(&mut self, enc: &RegionEncoder, now: Now) {
        let Some(sub) = self.sub.as_ref() else { return };
        let view = enc.view();
        let pieces = cut::from_view(&view, sub, &[(0, sub.total_len())]);
        if let Some(d) = self.digests.as_mut() {
            d.mark_all();
            self.view = Some(view.clone());
        }
        self.repair.clear(); // the snapshot resends everything
        self.needs_snapshot = false;
        self.outgoing = Some(Outgoing::Cut(Cut::new(view.version, 0, true, now.wall_ns, pieces)));
    }

    /// Starts a delta from the backlog; false if there is nothing to send.
    /// A mirror the backlog no longer reaches back to gets a snapshot.
    fn start_delta(&mut self, enc: &RegionEncoder, now: Now) -> bool {
        let base = self.stats.sent_seq;
        if enc.version() == base && self.repair.is_empty() {
            return false;
        }
        let Some(deltas) = enc.backlog().since(self.epoch, base) else {
            self.stats.backlog_misses += 1;
            self.start_snapshot(enc, now);
            return true;
        };
        let Some(sub) = self.sub.as_ref() else { return false };
        let captured_ns = deltas.last().map_or(now.wall_ns, |d| d.captured_ns);
        if let [d] = deltas.as_slice()
            && self.whole
            && self.repair.is_empty()
            && enc.region_id() == self.region_id
        {
            // Encode once: the shared frames go out as they are.
            if let Some(g) = self.digests.as_mut() {
                for r in d.runs() {
                    g.mark(r.src, r.len);
                }
                self.view = Some(enc.view());
            }
            self.outgoing = Some(Outgoing::Shared { delta: d.clone(), next: 0, bytes: 0 });
            return true;
        }
        let mut pieces = cut::cut_merged(&deltas, sub);
        if deltas.len() > 1 && pieces.iter().map(|p| p.len).sum::<u64>() >= sub.total_len() {
            // Catching up would resend more than a snapshot: send the snapshot.
            self.start_snapshot(enc, now);
            return true;
        }
        let repair = !self.repair.is_empty();
        if repair {
            // Whole repaired chunks ride along, all bytes read from the view
            // at the new seq (the newest delta's).
            let total = sub.total_len();
            let forced = self.repair.drain(..).map(|k| {
                let v = k as u64 * DIGEST_CHUNK as u64;
                (v, (total - v).min(DIGEST_CHUNK as u64))
            });
            let ranges = union_ranges(cut::ranges_of(&pieces), forced);
            pieces = cut::from_view(&enc.view(), sub, &ranges);
        }
        if let Some(g) = self.digests.as_mut() {
            for p in &pieces {
                g.mark(p.virt, p.len); // only the changed bytes' chunks get rehashed
            }
            self.view = Some(enc.view());
        }
        // Even with no subscribed byte changed, an (empty) update goes out so
        // the mirror's seq keeps tracking the region version it is consistent at.
        let mut c = Cut::new(enc.version(), base, false, captured_ns, pieces);
        c.repair = repair;
        self.outgoing = Some(Outgoing::Cut(c));
        true
    }

    fn emit_frame(&mut self, now: Now, out: &mut impl FrameSink) {
        let done = match self.outgoing.as_mut() {
            None => return,
            Some(Outgoing::Shared { delta, next, bytes }) => {
                let f = delta.frames[*next];
                let mut len = 0;
                for seg in &delta.segs[f.start..f.end] {
                    let (buf, r) = delta.seg(seg);
                    out.shared(buf, r.start, r.len());
                    len += r.len() as u64;
                }
                *next += 1;
                *bytes += len;
                self.stats.bytes_sent += len;
                self.stats.payload_bytes += f.payload;
                (*next == delta.frames.len()).then(|| (delta.seq, *bytes, false))
            }
            Some(Outgoing::Cut(o)) => {
                let (wire, used) = o.emit(self.region_id, self.epoch, self.cfg.frame_payload, out);
                self.stats.bytes_sent += wire;
                self.stats.payload_bytes += used;
                o.pieces.is_empty().then_some((o.seq, o.bytes, o.snapshot))
            }
        };
        if let Some((seq, bytes, snapshot)) = done {
            self.outgoing = None;
            self.in_flight.push_back((seq, bytes, now.mono));
            self.in_flight_bytes += bytes;
            self.stats.sent_seq = seq;
            self.stats.updates_sent += 1;
            self.stats.snapshots_sent += snapshot as u64;
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

impl Cut {
    fn new(seq: u64, base_seq: u64, snapshot: bool, captured_ns: u64, pieces: Vec<Piece>) -> Self {
        Cut { seq, base_seq, snapshot, repair: false, captured_ns, pieces: pieces.into(), within: 0, part: 0, bytes: 0 }
    }

    /// Appends the next frame of this update; returns (wire bytes, payload bytes).
    /// The frame head is written first with its final length, run count and
    /// flags, so the payload slices can follow without being copied.
    fn emit(&mut self, region_id: u32, epoch: u64, frame_payload: usize, out: &mut impl FrameSink) -> (u64, u64) {
        let budget = frame_payload.clamp(1, frame::MAX_UPDATE_BODY - UPDATE_HEAD_LEN - 64 * RUN_HEAD_LEN) as u64;
        // Plan: the runs (at most 64, at most `budget` payload bytes) and
        // whether they finish the update.
        let (mut used, mut count, mut within, mut last) = (0u64, 0u32, self.within, true);
        for p in &self.pieces {
            if used >= budget || count >= 64 {
                last = false;
                break;
            }
            let n = (p.len - within).min(budget - used);
            used += n;
            count += 1;
            if within + n < p.len {
                last = false; // the budget ends inside this piece
                break;
            }
            within = 0;
        }
        let flags = if self.snapshot { FLAG_SNAPSHOT } else { 0 }
            | if self.repair { FLAG_REPAIR } else { 0 }
            | if last { FLAG_LAST } else { 0 };
        let head = frame::update_head(region_id, epoch, self.seq, self.base_seq, self.captured_ns, self.part, flags);
        let h = out.head();
        let at = frame::encode_update_head(h, &head);
        frame::set_update_len(h, at, count, count as usize * RUN_HEAD_LEN + used as usize);
        let mut sent = 0u64;
        for _ in 0..count {
            let Some(p) = self.pieces.front() else { break }; // planned above: never hit
            let n = (p.len - self.within).min(budget - sent);
            sent += n;
            frame::push_run_head(out.head(), p.virt + self.within, n as u32);
            out.shared(&p.buf, p.at + self.within as usize, n as usize);
            self.within += n;
            if self.within == p.len {
                self.pieces.pop_front(); // unpins its chunk or delta (unless the sink shares it)
                self.within = 0;
            }
        }
        let wire = (frame::HEADER_LEN + UPDATE_HEAD_LEN + count as usize * RUN_HEAD_LEN) as u64 + used;
        self.part += 1;
        self.bytes += wire;
        (wire, used)
    }
}

/// Reads the subscription's virtual bytes `virt..virt + buf.len()` from a view.
fn read_virtual(view: &ShadowView, sub: &CompiledSubscription, virt: u64, buf: &mut [u8]) -> Result<()> {
    let mut failed = Ok(());
    let (mut pos, end) = (virt, virt + buf.len() as u64);
    let mut i = sub.runs().partition_point(|r| r.virt + r.len <= virt);
    while pos < end && failed.is_ok() {
        let Some(r) = sub.runs().get(i) else { break };
        let within = pos - r.virt;
        let n = (r.len - within).min(end - pos);
        let at = (pos - virt) as usize;
        failed = view.read(r.src + within, &mut buf[at..at + n as usize]);
        pos += n;
        i += 1;
    }
    failed
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
