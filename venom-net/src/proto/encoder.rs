//! The shared encoder of one published region: ONE shadow and ONE diff per
//! region version, whatever the number of mirrors.
//!
//! The encoder keeps a copy-on-write **shadow** of the region (one
//! `Arc`-shared buffer per region chunk) as of its last version. Each step
//! diffs the chunks the region reports dirty against the shadow
//! (`diff::changed_runs`), updates the shadow, encodes the changed runs once as
//! whole-region update frames and appends them to the [`Backlog`]. Sessions
//! ([`PublisherSession`](crate::proto::publisher::PublisherSession)) then only
//! *cut* shared deltas to their subscription; they hold no shadow of their
//! own. A snapshot (or a digest) is served from a [`ShadowView`]: a frozen
//! version of the shadow that costs one `Arc` per chunk, and memory only
//! for the chunks the encoder rewrites while the view is still held (copy
//! on write).
//!
//! Two feeds:
//! * [`RegionEncoder::from_region`] + [`step`](RegionEncoder::step): a
//!   [`RegionSource`] (the publisher), tagged with the region's versions;
//! * [`RegionEncoder::for_relay`] + [`ingest_update`](RegionEncoder::ingest_update):
//!   the updates a relay mirror applies, tagged with the upstream
//!   `(epoch, seq)`, so epochs and seqs are preserved end to end.
//!
//! Memory: shadow = region size (shared by every mirror) + backlog
//! (`backlog_bytes`) + chunks pinned by views that are still held + the
//! step's snapshot buffer (kept up to a quarter of the region, see
//! [`keeps_snapshot_buffer`]) + one evicted gathered delta's snapshot
//! buffer waiting for reuse (same bound). A gathered delta's referenced
//! snapshot buffer counts in the backlog with its capacity.

use crate::error::{Error, Result};
use crate::proto::backlog::{Backlog, BacklogStats, Delta, DeltaRun, FrameSegs, Segment};
use crate::proto::diff::{changed_runs, update_shadow};
use crate::proto::digest::ChunkDigests;
use crate::proto::frame::{self, FLAG_LAST, RUN_HEAD_LEN, UPDATE_HEAD_LEN};
use crate::proto::region::{RegionSink, RegionSource, Snapshot};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};

/// Region versions whose whole-region digest root is kept for sessions
/// that are a little behind.
const ROOTS_KEPT: usize = 64;

/// A whole-region digest root at `(epoch, version)`, or why there is none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootPoll {
    /// The root of the region's bytes at that version.
    Ready([u8; 32]),
    /// Hashing work remains (the first build of the tree): ask again.
    Pending,
    /// Not the current version and no longer kept: wait for the next update.
    Unavailable,
}

/// The whole-region Merkle tree of the shadow, shared by every
/// `check_hash` session with a whole-region subscription (built on first
/// use; then each version costs O(chunks it dirtied), once).
struct SharedDigest {
    tree: ChunkDigests,
    roots: VecDeque<((u64, u64), [u8; 32])>,
}

/// Runs (or run pieces) at least this long are sent from the region
/// snapshot they were read into instead of being copied into a delta's
/// frames. Measured on the `net` bench: scattered 4 KiB runs gain nothing
/// from it (each reference costs the transport about what a copy does),
/// long runs do.
pub const GATHER_MIN: usize = 16 << 10;

/// Shadow bytes prefetched ahead of the diff: one page.
const PREFETCH_BYTES: usize = 4096;

/// Snapshot buffer capacity always kept between steps.
pub const KEEP_SNAPSHOT_BYTES: usize = 4 << 20;

/// Whether a step's snapshot buffer of `capacity` bytes is kept for the
/// next step of a region of `size` bytes: up to [`KEEP_SNAPSHOT_BYTES`] or a
/// quarter of the region, whichever is more (a step that read more, e.g. a
/// rewrite of the whole region, frees its buffer). Steps of the same size
/// then reuse warm memory instead of page-faulting a fresh buffer in each
/// time (a 10 % step of a 64 MiB region: 1600 faults per step).
pub fn keeps_snapshot_buffer(capacity: usize, size: usize) -> bool {
    capacity <= KEEP_SNAPSHOT_BYTES.max(size / 4)
}

/// Chunk size of a relay's shadow (a sink has no dirty tracking of its own).
pub const RELAY_CHUNK: usize = 64 << 10;

/// Encoder tuning.
#[derive(Debug, Clone)]
pub struct EncoderConfig {
    /// Region id stamped into the shared frames.
    pub region_id: u32,
    /// Target payload bytes per update frame (capped by the frame size cap).
    pub frame_payload: usize,
    /// Changed runs closer than this many bytes are merged.
    pub merge_gap: usize,
    /// Bytes of encoded deltas kept for mirrors that are behind or reconnect.
    pub backlog_bytes: usize,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        EncoderConfig { region_id: 0, frame_payload: 512 << 10, merge_gap: 16, backlog_bytes: 16 << 20 }
    }
}

/// Encoder counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EncoderStats {
    /// Deltas encoded.
    pub deltas: u64,
    /// Changed bytes encoded (once, for all mirrors).
    pub payload_bytes: u64,
    /// Shadow chunks copied because a view still held the old bytes.
    pub cow_copies: u64,
    /// Bytes of the shadow.
    pub shadow_bytes: u64,
    /// The backlog's counters.
    pub backlog: BacklogStats,
}

/// A frozen version of the shadow (bytes of the whole region at
/// `(epoch, version)`).
#[derive(Debug)]
pub struct ShadowView {
    /// Epoch.
    pub epoch: u64,
    /// Region version.
    pub version: u64,
    chunk_size: usize,
    size: usize,
    pub(crate) chunks: Vec<Arc<Vec<u8>>>,
}

impl ShadowView {
    /// Region size.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Copies region bytes `src..src + buf.len()` (fails outside the region).
    pub fn read(&self, src: u64, buf: &mut [u8]) -> Result<()> {
        let end = src.checked_add(buf.len() as u64).filter(|&e| e <= self.size as u64);
        if end.is_none() {
            return Err(Error::OutOfRange {
                what: "shadow read",
                offset: src,
                len: buf.len() as u64,
                limit: self.size as u64,
            });
        }
        self.for_each_piece(src, buf.len() as u64, |at, chunk, from, n| {
            buf[at..at + n].copy_from_slice(&chunk[from..from + n]);
        });
        Ok(())
    }

    /// Calls `f(offset in the range, chunk, offset in chunk, len)` for the
    /// chunk pieces of region range `src..src + len` (inside the region).
    pub(crate) fn for_each_piece(&self, src: u64, len: u64, mut f: impl FnMut(usize, &Arc<Vec<u8>>, usize, usize)) {
        let (mut pos, end) = (src as usize, (src + len) as usize);
        while pos < end {
            let (k, from) = (pos / self.chunk_size, pos % self.chunk_size);
            let n = (self.chunk_size - from).min(end - pos);
            f(pos - src as usize, &self.chunks[k], from, n);
            pos += n;
        }
    }
}

/// Rehashes up to `budget` dirty chunks of the shared tree from the shadow;
/// once clean, records and returns the root of `key`.
fn root_now(
    d: &mut SharedDigest,
    chunks: &[Arc<Vec<u8>>],
    chunk_size: usize,
    key: (u64, u64),
    budget: usize,
) -> Option<[u8; 32]> {
    let mut buf = vec![0u8; crate::proto::digest::DIGEST_CHUNK];
    let left = d
        .tree
        .refresh(budget.max(1), |virt, len| {
            let (mut pos, end) = (virt as usize, virt as usize + len);
            while pos < end {
                let (k, from) = (pos / chunk_size, pos % chunk_size);
                let n = (chunk_size - from).min(end - pos);
                let at = pos - virt as usize;
                buf[at..at + n].copy_from_slice(&chunks[k][from..from + n]);
                pos += n;
            }
            Ok(ChunkDigests::leaf(&buf[..len]))
        })
        .unwrap_or(usize::MAX); // the closure never fails
    if left != 0 {
        return None;
    }
    let root = d.tree.root()?;
    if d.roots.back().is_none_or(|(k, _)| *k != key) {
        d.roots.push_back((key, root));
        if d.roots.len() > ROOTS_KEPT {
            d.roots.pop_front();
        }
    }
    Some(root)
}

/// Where each run's bytes start in `snap.data`, if every run lies inside
/// one stretch of spans that are contiguous both in the region and in
/// `snap.data` (always, unless `merge_gap` bridged two distant spans).
fn payload_offsets(snap: &Snapshot, runs: &[(u64, u64)]) -> Option<Vec<usize>> {
    // (region offset, data offset, len) of maximal contiguous stretches.
    let mut ext: Vec<(usize, usize, usize)> = Vec::new();
    for c in &snap.chunks {
        match ext.last_mut() {
            Some(e) if e.0 + e.2 == c.offset && e.1 + e.2 == c.data_offset => e.2 += c.len,
            _ => ext.push((c.offset, c.data_offset, c.len)),
        }
    }
    let mut ats = Vec::with_capacity(runs.len());
    for &(src, len) in runs {
        let (src, len) = (src as usize, len as usize);
        let k = ext.partition_point(|e| e.0 + e.2 <= src);
        let e = ext.get(k).filter(|e| e.0 <= src && src + len <= e.0 + e.2)?;
        ats.push(e.1 + (src - e.0));
    }
    Some(ats)
}

/// The shared encoder of one region (see the module docs).
///
/// Invariants: `chunks` hold the region's bytes at `version` (chunk `k`
/// covers `k * chunk_size..`, the last one possibly shorter); the
/// backlog's newest delta, if any, ends at `version`; `view`, once set,
/// is a view of exactly these bytes.
pub struct RegionEncoder {
    cfg: EncoderConfig,
    epoch: Option<u64>,
    version: u64,
    size: usize,
    chunk_size: usize,
    chunks: Vec<Arc<Vec<u8>>>,
    backlog: Backlog,
    view: OnceLock<Arc<ShadowView>>,
    /// `None` until a session asks for a whole-region root.
    digest: Mutex<Option<SharedDigest>>,
    stats: EncoderStats,
    snap: Snapshot,
    /// An evicted delta's encoded-frame buffer, reused by the next delta.
    spare_wire: Vec<u8>,
    /// An evicted gathered delta's payload (snapshot) buffer, handed back
    /// as the next snapshot buffer.
    spare_payload: Option<Vec<u8>>,
}

impl RegionEncoder {
    fn empty(size: usize, chunk_size: usize, cfg: EncoderConfig) -> Self {
        let chunk_size = chunk_size.max(1);
        let chunks = (0..size.div_ceil(chunk_size))
            .map(|k| Arc::new(vec![0u8; chunk_size.min(size - k * chunk_size)]))
            .collect();
        let backlog = Backlog::new(cfg.backlog_bytes);
        let stats = EncoderStats { shadow_bytes: size as u64, ..Default::default() };
        RegionEncoder {
            cfg,
            epoch: None,
            version: 0,
            size,
            chunk_size,
            chunks,
            backlog,
            view: OnceLock::new(),
            digest: Mutex::new(None),
            stats,
            snap: Snapshot::default(),
            spare_wire: Vec::new(),
            spare_payload: None,
        }
    }

    /// An encoder of `region`'s incarnation `epoch`, its shadow filled from
    /// one consistent snapshot.
    pub fn from_region(epoch: u64, region: &dyn RegionSource, cfg: EncoderConfig) -> Result<Self> {
        let mut e = Self::empty(region.size(), region.chunk_size(), cfg);
        let mut snap = Snapshot::default();
        region.snapshot_all(&mut snap)?;
        for c in &snap.chunks {
            e.write_shadow(c.offset as u64, &snap.data[c.data_offset..c.data_offset + c.len]);
        }
        e.epoch = Some(epoch);
        e.version = snap.version;
        Ok(e) // (the whole-region snapshot buffer is not kept)
    }

    /// An encoder for a relay mirror's local region `sink` (its shadow read
    /// from it); it serves nothing until the first upstream update sets the
    /// epoch ([`ingest_update`](Self::ingest_update)).
    pub fn for_relay(sink: &dyn RegionSink, cfg: EncoderConfig) -> Result<Self> {
        let mut e = Self::empty(sink.size(), RELAY_CHUNK, cfg);
        // Fresh, unshared chunks: make_mut never copies here.
        let mut buf = vec![0u8; RELAY_CHUNK];
        for k in 0..e.chunks.len() {
            let n = e.chunks[k].len();
            sink.read_at(k * RELAY_CHUNK, &mut buf[..n])?;
            Arc::make_mut(&mut e.chunks[k]).copy_from_slice(&buf[..n]);
        }
        Ok(e)
    }

    /// Copies `data` into the shadow at `src` (no diff), copying chunks a view still holds.
    fn write_shadow(&mut self, src: u64, data: &[u8]) {
        let (mut pos, end) = (src as usize, src as usize + data.len());
        while pos < end {
            let (k, from) = (pos / self.chunk_size, pos % self.chunk_size);
            let n = (self.chunk_size - from).min(end - pos);
            let c = &mut self.chunks[k];
            if Arc::strong_count(c) > 1 {
                self.stats.cow_copies += 1;
            }
            let at = pos - src as usize;
            Arc::make_mut(c)[from..from + n].copy_from_slice(&data[at..at + n]);
            pos += n;
        }
    }

    /// Diffs `pieces` (`(region offset, new bytes)`, increasing, disjoint)
    /// against the shadow, updates it, and appends the delta
    /// `version -> seq` (copied layout) to the backlog.
    fn ingest<'a>(&mut self, seq: u64, captured_ns: u64, pieces: impl Iterator<Item = (u64, &'a [u8])>) {
        let runs = self.diff_into_shadow(pieces);
        let spare = std::mem::take(&mut self.spare_wire);
        let delta = self.encode(seq, captured_ns, &runs, None, spare);
        self.append(delta);
    }

    /// Ingests the region snapshot `snap` (its spans read since the current
    /// version). A dense delta (changed bytes at least 3/4 of the spans
    /// read, with runs of at least [`GATHER_MIN`]) keeps its long runs'
    /// bytes where they are: `snap.data` moves into the delta (gathered
    /// layout) and is replaced by an evicted delta's buffer, if one is free.
    fn ingest_snap(&mut self, snap: &mut Snapshot, captured_ns: u64) {
        let seq = snap.version;
        let runs = {
            let pieces = snap.chunks.iter().map(|c| (c.offset as u64, snap.bytes(c)));
            self.diff_into_shadow(pieces)
        };
        let payload = runs.iter().map(|r| r.1).sum::<u64>();
        let long = runs.iter().any(|r| r.1 as usize >= GATHER_MIN);
        // The delta holds the whole buffer: not a reused one much larger than this read.
        let fits = snap.data.capacity() <= snap.data.len() + snap.data.len() / 4;
        let dense = long && fits && payload * 4 >= snap.data.len() as u64 * 3;
        let spare = std::mem::take(&mut self.spare_wire);
        let delta = match dense.then(|| payload_offsets(snap, &runs)).flatten() {
            Some(ats) => {
                let data = std::mem::replace(&mut snap.data, self.spare_payload.take().unwrap_or_default());
                self.encode(seq, captured_ns, &runs, Some((&ats, data)), spare)
            }
            None => self.encode(seq, captured_ns, &runs, None, spare),
        };
        self.append(delta);
    }

    /// Appends a delta of the shadow's new bytes to the backlog (keeping
    /// the buffers it evicts for reuse) and moves to its version.
    fn append(&mut self, delta: Delta) {
        self.stats.deltas += 1;
        self.stats.payload_bytes += delta.payload_len();
        let seq = delta.seq;
        let r = self.backlog.push_reclaim(Arc::new(delta));
        if let Some(w) = r.wire {
            self.spare_wire = w;
        }
        if let Some(p) = r.payload.filter(|p| keeps_snapshot_buffer(p.capacity(), self.size)) {
            self.spare_payload = Some(p);
        }
        self.version = seq;
        self.digest_now();
    }

    /// Diffs `pieces` against the shadow and updates it; returns the
    /// changed runs `(src, len)` (merged across `merge_gap`), marked in
    /// the shared digest tree.
    fn diff_into_shadow<'a>(&mut self, pieces: impl Iterator<Item = (u64, &'a [u8])>) -> Vec<(u64, u64)> {
        let _ = self.view.take(); // the cached view is of the old version
        let gap = self.cfg.merge_gap;
        let mut runs: Vec<(u64, u64)> = Vec::new();
        let mut pieces = pieces.peekable();
        while let Some((src, new)) = pieces.next() {
            if let Some(&(next, bytes)) = pieces.peek() {
                self.prefetch_shadow(next as usize, bytes.len());
            }
            let (mut pos, end) = (src as usize, src as usize + new.len());
            while pos < end {
                let (k, from) = (pos / self.chunk_size, pos % self.chunk_size);
                let n = (self.chunk_size - from).min(end - pos);
                let at = pos - src as usize;
                let fresh = &new[at..at + n];
                let mut changed = false;
                let mut emit = |o: usize, l: usize| {
                    changed = true;
                    let v = (pos + o) as u64;
                    match runs.last_mut() {
                        // Saturating: `merge_gap` may be any usize (usize::MAX = merge all).
                        Some(last) if (last.0 + last.1).saturating_add(gap as u64) > v => {
                            last.1 = v + l as u64 - last.0
                        }
                        _ => runs.push((v, l as u64)),
                    }
                };
                let c = &mut self.chunks[k];
                if let Some(own) = Arc::get_mut(c) {
                    // No view holds this chunk: diff and update in one pass
                    // (only the differing blocks are written).
                    update_shadow(&mut own[from..from + n], fresh, gap, &mut emit);
                } else {
                    // A view holds it: diff first, copy on write only if it changed.
                    changed_runs(&c[from..from + n], fresh, gap, &mut emit);
                    if changed {
                        self.stats.cow_copies += 1;
                        Arc::make_mut(c)[from..from + n].copy_from_slice(fresh);
                    }
                }
                pos += n;
            }
        }
        if let Some(d) = self.digest.get_mut().unwrap_or_else(|p| p.into_inner()).as_mut() {
            for &(src, len) in &runs {
                d.tree.mark(src, len);
            }
        }
        runs
    }

    /// Starts loading the shadow's first page at `src` (of a piece `len`
    /// bytes long) into the cache while the current piece is diffed: the
    /// shadow is large and cold, and a scattered piece otherwise waits for
    /// memory (and a page walk) before the hardware prefetcher catches up.
    fn prefetch_shadow(&self, src: usize, len: usize) {
        let (k, from) = (src / self.chunk_size, src % self.chunk_size);
        if let Some(c) = self.chunks.get(k) {
            let end = (from + len.min(PREFETCH_BYTES)).min(c.len());
            #[cfg(target_arch = "x86_64")]
            for line in c[from.min(end)..end].chunks(64) {
                // SAFETY: a prefetch is a hint, not a memory access (it
                // cannot fault or race); SSE is part of the x86_64 baseline.
                unsafe {
                    core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(line.as_ptr() as *const i8)
                };
            }
            #[cfg(not(target_arch = "x86_64"))]
            let _ = end;
        }
    }

    /// With a shared digest in use: the root of the new version, computed
    /// now (O(chunks dirtied since the last root)) so sessions that are a
    /// little behind still find the root of the seq they are at.
    fn digest_now(&mut self) {
        let (epoch, version) = (self.epoch.unwrap_or(0), self.version);
        let chunks = &self.chunks;
        let chunk_size = self.chunk_size;
        if let Some(d) = self.digest.get_mut().unwrap_or_else(|p| p.into_inner()).as_mut() {
            let _ = root_now(d, chunks, chunk_size, (epoch, version), usize::MAX);
        }
    }

    /// The root of the whole region's bytes at `(epoch, version)` (the
    /// digest of [`crate::proto::digest`] over the region as one
    /// subscription): cached for the last versions, computed for the
    /// current one (at most `budget` chunks hashed per call while the
    /// tree is first built).
    pub fn whole_root(&self, epoch: u64, version: u64, budget: usize) -> RootPoll {
        let mut g = self.digest.lock().unwrap_or_else(|p| p.into_inner());
        let d =
            g.get_or_insert_with(|| SharedDigest { tree: ChunkDigests::new(self.size as u64), roots: VecDeque::new() });
        if let Some((_, r)) = d.roots.iter().rev().find(|(k, _)| *k == (epoch, version)) {
            return RootPoll::Ready(*r);
        }
        if self.epoch != Some(epoch) || self.version != version {
            return RootPoll::Unavailable;
        }
        match root_now(d, &self.chunks, self.chunk_size, (epoch, version), budget) {
            Some(r) => RootPoll::Ready(r),
            None => RootPoll::Pending,
        }
    }

    /// Encodes the runs as whole-region update frames, into `spare` if it
    /// fits. Copied layout (`gathered` is `None`): every run's bytes are
    /// copied from the updated shadow into the wire buffer. Gathered layout
    /// (`Some((ats, data))`, run `k`'s bytes at `data[ats[k]..]`): runs of at
    /// least [`GATHER_MIN`] stay in `data` and the frames reference them;
    /// shorter ones are copied after their header (a slice of its own would
    /// cost the transport more than the copy saves).
    fn encode(
        &self,
        seq: u64,
        captured_ns: u64,
        runs: &[(u64, u64)],
        gathered: Option<(&[usize], Vec<u8>)>,
        spare: Vec<u8>,
    ) -> Delta {
        let epoch = self.epoch.unwrap_or(0);
        let budget =
            self.cfg.frame_payload.clamp(1, frame::MAX_UPDATE_BODY - UPDATE_HEAD_LEN - 64 * RUN_HEAD_LEN) as u64;
        let payload = runs.iter().map(|r| r.1 as usize).sum::<usize>();
        let frames_max = payload.div_ceil(budget as usize).max(runs.len().div_ceil(64)) + 1;
        let copied = match gathered {
            None => payload,
            Some(_) => runs.iter().filter(|r| (r.1 as usize) < GATHER_MIN).map(|r| r.1 as usize).sum::<usize>(),
        };
        // Runs split at a frame boundary get a second header.
        let need =
            copied + (runs.len() + frames_max) * RUN_HEAD_LEN + frames_max * (frame::HEADER_LEN + UPDATE_HEAD_LEN);
        // A gathered delta's wire buffer holds little (headers, short runs):
        // any warm one that is not wildly larger will do.
        let max_spare = if gathered.is_some() { 4 * need + 4096 } else { need + need / 2 };
        let mut wire = if spare.capacity() >= need && spare.capacity() <= max_spare {
            let mut w = spare; // warm pages: no fault per 4 KiB
            w.clear();
            w
        } else {
            // 1/16 slack, so the buffer still fits a slightly larger delta when reused.
            Vec::with_capacity(need + need / 16)
        };
        let (mut out_runs, mut frames, mut segs) = (Vec::with_capacity(runs.len()), Vec::new(), Vec::new());
        let (mut i, mut within, mut part) = (0usize, 0u64, 0u32);
        loop {
            let first_seg = segs.len();
            let head = frame::update_head(self.cfg.region_id, epoch, seq, self.version, captured_ns, part, 0);
            let at = frame::encode_update_head(&mut wire, &head);
            let mut seg_from = at;
            let (mut used, mut count) = (0u64, 0u32);
            while i < runs.len() && used < budget && count < 64 {
                let (src, len) = runs[i];
                let n = (len - within).min(budget - used);
                let from = src + within;
                frame::push_run_head(&mut wire, from, n as u32);
                let data_at = match &gathered {
                    None => {
                        if within == 0
                            && let Some(&(next, next_len)) = runs.get(i + 1)
                        {
                            self.prefetch_shadow(next as usize, next_len as usize);
                        }
                        let data_at = wire.len();
                        self.extend_from_shadow(from, n as usize, &mut wire); // no zero-fill first
                        data_at
                    }
                    Some((ats, data)) => {
                        let data_at = ats[i] + within as usize;
                        if (n as usize) < GATHER_MIN {
                            wire.extend_from_slice(&data[data_at..data_at + n as usize]);
                        } else {
                            segs.push(Segment::Wire(seg_from..wire.len()));
                            segs.push(Segment::Payload(data_at..data_at + n as usize));
                            seg_from = wire.len();
                        }
                        data_at
                    }
                };
                out_runs.push(DeltaRun { src: from, len: n, at: data_at });
                (used, count, within) = (used + n, count + 1, within + n);
                if within == len {
                    (i, within) = (i + 1, 0);
                }
            }
            if wire.len() > seg_from || count == 0 {
                segs.push(Segment::Wire(seg_from..wire.len()));
            }
            let last = i == runs.len();
            if last {
                wire[at + frame::HEADER_LEN + UPDATE_HEAD_LEN - 5] |= FLAG_LAST;
            }
            frame::set_update_len(&mut wire, at, count, count as usize * RUN_HEAD_LEN + used as usize);
            frames.push(FrameSegs { start: first_seg, end: segs.len(), payload: used });
            part += 1;
            if last {
                break;
            }
        }
        // The backlog counts what it holds: at most 1/4 unused.
        if gathered.is_none() && wire.capacity() > wire.len() + wire.len() / 4 {
            wire.shrink_to_fit();
        }
        Delta {
            epoch,
            seq,
            base_seq: self.version,
            captured_ns,
            runs: out_runs,
            wire: Arc::new(wire),
            payload: gathered.map(|(_, data)| Arc::new(data)),
            segs,
            frames,
        }
    }

    /// Appends shadow bytes `src..src + len` (inside the region) to `out`.
    fn extend_from_shadow(&self, src: u64, len: usize, out: &mut Vec<u8>) {
        let (mut pos, end) = (src as usize, src as usize + len);
        while pos < end {
            let (k, from) = (pos / self.chunk_size, pos % self.chunk_size);
            let n = (self.chunk_size - from).min(end - pos);
            out.extend_from_slice(&self.chunks[k][from..from + n]);
            pos += n;
        }
    }

    /// One step of the publisher feed: if `region` changed since the last
    /// version, reads its dirty chunks in one consistent window, diffs them
    /// and appends the delta. Returns whether a delta was appended.
    pub fn step(&mut self, region: &dyn RegionSource, captured_ns: u64) -> Result<bool> {
        if region.version() == self.version {
            return Ok(false);
        }
        let mut snap = std::mem::take(&mut self.snap);
        let r = region.snapshot_since(self.version, &mut snap);
        if r.is_ok() && snap.version != self.version {
            self.ingest_snap(&mut snap, captured_ns);
        }
        if keeps_snapshot_buffer(snap.data.capacity(), self.size) {
            self.snap = snap; // reused by the next step
        }
        r.map(|()| true)
    }

    /// The version the next [`step`](Self::step) reads changes after (so
    /// an I/O shell can take the snapshot outside its lock, then call
    /// [`ingest_snapshot`](Self::ingest_snapshot)).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Ingests a snapshot `region.snapshot_since(self.version())` taken by
    /// the caller. A dense delta takes `snap.data` over (its bytes are sent
    /// from there, see [`Delta`]) and leaves an evicted delta's buffer, or
    /// an empty one, in its place: keep passing the same `snap`.
    pub fn ingest_snapshot(&mut self, snap: &mut Snapshot, captured_ns: u64) {
        if snap.version == self.version {
            return;
        }
        self.ingest_snap(snap, captured_ns);
    }

    /// The relay feed: the upstream update `(epoch, seq)` wrote `writes`
    /// (local offsets) into the relay's region. The same epoch continues the
    /// chain with a diffed delta; a new epoch (or a seq that does not move
    /// forward) resets the backlog, so mirrors downstream resync from the
    /// shadow instead of applying a delta to the wrong base.
    pub fn ingest_update(&mut self, epoch: u64, seq: u64, writes: &[(usize, &[u8])], captured_ns: u64) -> Result<()> {
        for &(off, d) in writes {
            if off.checked_add(d.len()).is_none_or(|e| e > self.size) {
                return Err(Error::OutOfRange {
                    what: "relay write",
                    offset: off as u64,
                    len: d.len() as u64,
                    limit: self.size as u64,
                });
            }
        }
        let mut sorted: Vec<(usize, &[u8])> = writes.iter().filter(|w| !w.1.is_empty()).copied().collect();
        sorted.sort_unstable_by_key(|w| w.0);
        if self.epoch == Some(epoch) && seq > self.version {
            self.ingest(seq, captured_ns, sorted.iter().map(|&(o, d)| (o as u64, d)));
        } else {
            let _ = self.view.take();
            for (o, d) in sorted {
                self.write_shadow(o as u64, d);
            }
            self.backlog.clear();
            self.epoch = Some(epoch);
            self.version = seq;
            if let Some(d) = self.digest.get_mut().unwrap_or_else(|p| p.into_inner()).as_mut() {
                for &(o, w) in writes {
                    d.tree.mark(o as u64, w.len() as u64);
                }
            }
            self.digest_now();
        }
        Ok(())
    }

    /// The epoch served (`None`: a relay that has no upstream state yet).
    pub fn epoch(&self) -> Option<u64> {
        self.epoch
    }

    /// Region size.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Chunk size of the shadow.
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// The region id stamped into the shared frames.
    pub fn region_id(&self) -> u32 {
        self.cfg.region_id
    }

    /// The backlog.
    pub fn backlog(&self) -> &Backlog {
        &self.backlog
    }

    /// A frozen view of the shadow at the current version (cached until the
    /// next delta: every caller in between shares it).
    pub fn view(&self) -> Arc<ShadowView> {
        self.view
            .get_or_init(|| {
                Arc::new(ShadowView {
                    epoch: self.epoch.unwrap_or(0),
                    version: self.version,
                    chunk_size: self.chunk_size,
                    size: self.size,
                    chunks: self.chunks.clone(),
                })
            })
            .clone()
    }

    /// Counters.
    pub fn stats(&self) -> EncoderStats {
        EncoderStats { backlog: self.backlog.stats(), ..self.stats }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::digest::root_of;
    use crate::proto::region::MemRegion;

    #[test]
    fn shared_root_tracks_every_version_and_cow_keeps_views() {
        let region = MemRegion::new(100_000, 4096);
        region.write_at(5, b"start");
        let mut enc = RegionEncoder::from_region(3, &region, EncoderConfig::default()).unwrap();
        // First use builds the tree within a budget.
        let v0 = enc.version();
        let mut r = enc.whole_root(3, v0, 2);
        while r == RootPoll::Pending {
            r = enc.whole_root(3, v0, 2);
        }
        assert_eq!(r, RootPoll::Ready(root_of(&region.to_vec())));
        let view = enc.view();
        let before = region.to_vec();
        let mut versions = Vec::new();
        for i in 0..5u8 {
            region.write_at(i as usize * 20_000 + 7, &[i + 1; 300]);
            enc.step(&region, 0).unwrap();
            versions.push((enc.version(), root_of(&region.to_vec())));
        }
        // Each version's root was computed at ingest, so older ones are still served.
        for (v, root) in versions {
            assert_eq!(enc.whole_root(3, v, 1), RootPoll::Ready(root));
        }
        assert_eq!(enc.whole_root(4, enc.version(), 1), RootPoll::Unavailable, "another epoch");
        // The view taken before the writes still reads the old bytes (copy on write).
        let mut old = vec![0u8; before.len()];
        view.read(0, &mut old).unwrap();
        assert_eq!(old, before);
        assert!(enc.stats().cow_copies >= 5);
    }

    /// Dense deltas of a region snapshot reference its bytes (gathered
    /// layout); the frames are byte for byte those of the copied layout.
    #[test]
    fn gathered_deltas_equal_copied_ones() {
        for (payload, chunk) in [(4096, 4096), (1000, 16 << 10), (512 << 10, 64 << 10)] {
            let size = 256 << 10;
            let region = MemRegion::new(size, chunk);
            let cfg = EncoderConfig { frame_payload: payload, ..Default::default() };
            let mut gathered = RegionEncoder::from_region(1, &region, cfg.clone()).unwrap();
            let mut copied = RegionEncoder::from_region(1, &region, cfg).unwrap();
            let mut x = payload as u64 | 1;
            let mut next = move || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            };
            let mut kinds = Vec::new();
            for round in 0..16u64 {
                match round % 4 {
                    // sparse: a few bytes per page (copied layout)
                    0 => (0..200).for_each(|_| {
                        let at = (next() % (size as u64 - 8)) as usize;
                        region.write_at(at, &next().to_le_bytes()[..1 + (next() % 7) as usize]);
                    }),
                    // one dense block across chunk boundaries
                    1 => {
                        let len = 70_000 + (next() % 50_000) as usize;
                        let at = (next() % (size - len) as u64) as usize;
                        let data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                        region.write_at(at, &data);
                    }
                    // many dense 4 KiB blocks (more than 64 runs)
                    2 => (0..80).for_each(|k| {
                        let at = (k * 3 + (next() % 2) as usize) * 1024 % (size - 1024);
                        let data: Vec<u8> = (0..1024).map(|_| next() as u8 | 1).collect();
                        region.write_at(at, &data);
                    }),
                    // dirty but unchanged: an empty delta
                    _ => {
                        let same = region.to_vec()[500..600].to_vec();
                        region.write_at(500, &same);
                    }
                }
                let mut snap = Snapshot::default();
                region.snapshot_since(copied.version(), &mut snap).unwrap();
                let pieces = snap.chunks.iter().map(|c| (c.offset as u64, snap.bytes(c)));
                copied.ingest(snap.version, 7, pieces);
                gathered.ingest_snap(&mut snap.clone(), 7);
                let (a, b) = (copied.backlog().newest().unwrap(), gathered.backlog().newest().unwrap());
                assert!(!a.is_gathered());
                kinds.push(b.is_gathered());
                assert_eq!(a.frames().collect::<Vec<_>>(), b.frames().collect::<Vec<_>>(), "round {round}");
                assert_eq!(a.runs().len(), b.runs().len());
                for (ra, rb) in a.runs().iter().zip(b.runs()) {
                    assert_eq!((ra.src, ra.len), (rb.src, rb.len));
                    assert_eq!(a.bytes(ra), b.bytes(rb));
                }
                let mut v = vec![0u8; size];
                gathered.view().read(0, &mut v).unwrap();
                assert_eq!(v, region.to_vec(), "the shadow follows the region");
            }
            assert!(kinds.contains(&true) && kinds.contains(&false), "both layouts exercised: {kinds:?}");
        }
    }

    /// A gathered delta takes the step's snapshot buffer over; once it is
    /// evicted (and unshared) its buffer becomes a later step's snapshot buffer.
    #[test]
    fn gathered_snapshot_buffers_are_reused() {
        let region = MemRegion::new(1 << 20, 64 << 10);
        let cfg = EncoderConfig { backlog_bytes: 300 << 10, ..Default::default() };
        let mut enc = RegionEncoder::from_region(1, &region, cfg).unwrap();
        for i in 0..6u8 {
            region.write_at(4096, &vec![i + 1; 200 << 10]);
            assert!(enc.step(&region, 0).unwrap());
            assert!(enc.backlog().newest().unwrap().is_gathered());
            assert_eq!(enc.backlog().stats().deltas, 1, "the backlog holds one 200 KiB delta");
        }
        assert!(enc.snap.data.capacity() >= 200 << 10, "an evicted delta's buffer came back");
    }
}
