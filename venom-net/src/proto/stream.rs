//! A delta's frames while it is still being encoded: the publisher's
//! encoder hands each update frame to the sessions as soon as it is cut,
//! instead of after the whole delta is diffed and encoded.
//!
//! The encoder thread of the I/O shell:
//! 1. takes the region's dirty pages in one consistent window (no lock);
//! 2. [`RegionEncoder::begin_delta`](crate::proto::encoder::RegionEncoder::begin_delta)
//!    (short write lock): a [`DeltaBuilder`] that diffs against a frozen
//!    [`ShadowView`] and publishes its frames through a [`DeltaStream`];
//! 3. [`DeltaBuilder::run`] (no lock): diffs the fresh bytes read-only
//!    against the view, cuts the changed runs into whole-region update
//!    frames as soon as they are final and pushes each frame to the stream
//!    (sessions of whole-region mirrors at the delta's base send them at
//!    once, see `PublisherSession`);
//! 4. [`RegionEncoder::commit_delta`](crate::proto::encoder::RegionEncoder::commit_delta)
//!    (short write lock): copies the runs into the shadow and appends the
//!    delta, made of the SAME frame buffers, to the backlog.
//!
//! Encode once per version still holds: every session at the head shares
//! the stream's frames, and the backlog stores them as the delta. The
//! frames are byte for byte those of the one-shot encoder
//! ([`FramePlanner`] cuts both; tested).

use crate::proto::backlog::{DeltaRun, EncodedFrame};
use crate::proto::diff::changed_runs;
use crate::proto::encoder::ShadowView;
use crate::proto::frame::{self, FLAG_LAST, RUN_HEAD_LEN, UPDATE_HEAD_LEN};
use crate::proto::region::Snapshot;
use std::sync::{Arc, Mutex};

/// Cuts a delta's changed runs into update frames, greedily (at most the
/// payload budget and 64 runs per frame), the same whether all runs are
/// known up front or they become final one by one.
#[derive(Debug)]
pub(crate) struct FramePlanner {
    budget: u64,
    /// Next run to encode, and its bytes already encoded.
    next: usize,
    within: u64,
    part: u32,
    done: bool,
}

impl FramePlanner {
    pub(crate) fn new(frame_payload: usize) -> Self {
        let budget = frame_payload.clamp(1, frame::MAX_UPDATE_BODY - UPDATE_HEAD_LEN - 64 * RUN_HEAD_LEN) as u64;
        FramePlanner { budget, next: 0, within: 0, part: 0, done: false }
    }

    /// Plans the next frame into `parts` (`(src, len)` run pieces) and
    /// returns whether it is the last. With `finished` (all runs known) a
    /// frame is always planned until the last one; otherwise only a full
    /// frame made of final runs (`runs[..n_final]`, the last run may still
    /// grow), which is then never the last. `None`: no frame now.
    pub(crate) fn plan(
        &mut self,
        runs: &[(u64, u64)],
        n_final: usize,
        finished: bool,
        parts: &mut Vec<(u64, u64)>,
    ) -> Option<(u32, bool)> {
        if self.done {
            return None;
        }
        parts.clear();
        let limit = if finished { runs.len() } else { n_final.min(runs.len()) };
        let (mut i, mut within, mut used) = (self.next, self.within, 0u64);
        while i < limit && used < self.budget && parts.len() < 64 {
            let (src, len) = runs[i];
            let n = (len - within).min(self.budget - used);
            parts.push((src + within, n));
            (used, within) = (used + n, within + n);
            if within == len {
                (i, within) = (i + 1, 0);
            }
        }
        let full = used >= self.budget || parts.len() >= 64;
        if !finished && !full {
            return None;
        }
        let last = finished && i == runs.len();
        (self.next, self.within, self.done) = (i, within, last);
        let part = self.part;
        self.part += 1;
        Some((part, last))
    }
}

/// Tags of the frames a [`FrameWriter`] writes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FrameTags {
    pub(crate) region_id: u32,
    pub(crate) epoch: u64,
    pub(crate) seq: u64,
    pub(crate) base_seq: u64,
    pub(crate) captured_ns: u64,
}

/// Writes planned frames into their own buffers (reusing warm ones).
pub(crate) struct FrameWriter {
    pub(crate) tags: FrameTags,
    /// Evicted frame buffers for reuse (warm pages).
    pub(crate) pool: Vec<Vec<u8>>,
}

impl FrameWriter {
    /// A buffer of at least `need` bytes: a pooled one when one fits
    /// without wasting more than a quarter, else a fresh one.
    fn buffer(&mut self, need: usize) -> Vec<u8> {
        match self.pool.iter().position(|b| b.capacity() >= need && b.capacity() <= need + need / 4) {
            Some(i) => {
                let mut b = self.pool.swap_remove(i);
                b.clear();
                b
            }
            None => Vec::with_capacity(need),
        }
    }

    /// Writes frame `part` of `parts`; `fill(src, len, out)` appends the
    /// region's new bytes `src..src + len`. Appends the runs' index entries
    /// (frame `index`) to `runs`.
    pub(crate) fn write(
        &mut self,
        index: usize,
        (part, last): (u32, bool),
        parts: &[(u64, u64)],
        runs: &mut Vec<DeltaRun>,
        mut fill: impl FnMut(u64, usize, &mut Vec<u8>),
    ) -> EncodedFrame {
        let payload = parts.iter().map(|p| p.1).sum::<u64>();
        let need = frame::HEADER_LEN + UPDATE_HEAD_LEN + parts.len() * RUN_HEAD_LEN + payload as usize;
        let mut wire = self.buffer(need);
        let t = self.tags;
        let flags = if last { FLAG_LAST } else { 0 };
        let head = frame::update_head(t.region_id, t.epoch, t.seq, t.base_seq, t.captured_ns, part, flags);
        let at = frame::encode_update_head(&mut wire, &head);
        for &(src, n) in parts {
            frame::push_run_head(&mut wire, src, n as u32);
            let data_at = wire.len();
            fill(src, n as usize, &mut wire); // no zero-fill first
            runs.push(DeltaRun { src, len: n, frame: index, at: data_at });
        }
        frame::finish_update(&mut wire, at, parts.len() as u32);
        debug_assert_eq!(wire.len(), need);
        EncodedFrame { buf: Arc::new(wire), payload }
    }
}

/// What a session finds at position `i` of a [`DeltaStream`].
#[derive(Debug, Clone)]
pub enum StreamPoll {
    /// The frame, and whether it is the delta's last.
    Frame(EncodedFrame, bool),
    /// Not encoded yet.
    Pending,
    /// The encoder gave the delta up (its frames will never complete).
    Abandoned,
}

#[derive(Debug, Default)]
struct StreamState {
    frames: Vec<EncodedFrame>,
    last: bool,
    abandoned: bool,
}

/// A delta being encoded: its frames, in order, as they are cut.
#[derive(Debug)]
pub struct DeltaStream {
    /// Epoch.
    pub epoch: u64,
    /// Region version the delta brings a mirror to.
    pub seq: u64,
    /// Region version it applies on top of.
    pub base_seq: u64,
    state: Mutex<StreamState>,
}

impl DeltaStream {
    pub(crate) fn new(epoch: u64, seq: u64, base_seq: u64) -> Self {
        DeltaStream { epoch, seq, base_seq, state: Mutex::new(StreamState::default()) }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, StreamState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Frame `i`, if it was cut already.
    pub fn poll(&self, i: usize) -> StreamPoll {
        let s = self.state();
        match s.frames.get(i) {
            Some(f) => StreamPoll::Frame(f.clone(), s.last && i + 1 == s.frames.len()),
            None if s.abandoned => StreamPoll::Abandoned,
            None => StreamPoll::Pending,
        }
    }

    /// Frames cut so far.
    pub fn frames_ready(&self) -> usize {
        self.state().frames.len()
    }

    fn push(&self, f: EncodedFrame, last: bool) {
        let mut s = self.state();
        s.frames.push(f);
        s.last = last;
    }

    pub(crate) fn abandon(&self) {
        let mut s = self.state();
        if !s.last {
            s.abandoned = true;
        }
    }
}

/// Diffs and encodes one delta outside the encoder's lock, publishing its
/// frames through a [`DeltaStream`] (see the module docs). Dropped before
/// [`finish`](Self::run) completed, it abandons the stream.
pub struct DeltaBuilder {
    pub(crate) stream: Arc<DeltaStream>,
    pub(crate) view: Option<Arc<ShadowView>>,
    pub(crate) merge_gap: usize,
    pub(crate) planner: FramePlanner,
    pub(crate) writer: FrameWriter,
    /// Changed runs `(src, len)` in region order (the last one may still grow while diffing).
    pub(crate) runs: Vec<(u64, u64)>,
    pub(crate) delta_runs: Vec<DeltaRun>,
    pub(crate) frames: Vec<EncodedFrame>,
    pub(crate) finished: bool,
}

impl DeltaBuilder {
    /// The stream sessions read this delta's frames from.
    pub fn stream(&self) -> &Arc<DeltaStream> {
        &self.stream
    }

    /// Diffs `snap` (the region's dirty spans, read since the base version)
    /// against the view and cuts the frames, pushing each one to the stream
    /// as soon as it is complete and calling `progress` after it.
    pub fn run(&mut self, snap: &Snapshot, mut progress: impl FnMut()) {
        let Some(view) = self.view.clone() else { return };
        let gap = self.merge_gap;
        let mut parts = Vec::new();
        for c in &snap.chunks {
            let fresh = snap.bytes(c);
            view.for_each_piece(c.offset as u64, c.len as u64, |at, chunk, from, n| {
                let base = (c.offset + at) as u64;
                let runs = &mut self.runs;
                changed_runs(&chunk[from..from + n], &fresh[at..at + n], gap, &mut |o: usize, l: usize| {
                    let v = base + o as u64;
                    match runs.last_mut() {
                        // Saturating: `merge_gap` may be any usize (usize::MAX = merge all).
                        Some(last) if (last.0 + last.1).saturating_add(gap as u64) > v => {
                            last.1 = v + l as u64 - last.0
                        }
                        _ => runs.push((v, l as u64)),
                    }
                });
            });
            // Every run but the last is final: cut the full frames now.
            let n_final = self.runs.len().saturating_sub(1);
            while let Some(plan) = self.planner.plan(&self.runs, n_final, false, &mut parts) {
                self.emit(plan, &parts, snap, &view);
                progress();
            }
        }
        while let Some(plan) = self.planner.plan(&self.runs, self.runs.len(), true, &mut parts) {
            self.emit(plan, &parts, snap, &view);
            progress();
        }
        self.finished = true;
    }

    fn emit(&mut self, plan: (u32, bool), parts: &[(u64, u64)], snap: &Snapshot, view: &ShadowView) {
        let f = self.writer.write(self.frames.len(), plan, parts, &mut self.delta_runs, |src, n, out| {
            extend_new_bytes(snap, view, src, n, out)
        });
        self.frames.push(f.clone());
        self.stream.push(f, plan.1);
    }
}

impl Drop for DeltaBuilder {
    fn drop(&mut self) {
        // Committed builders leave the stream complete; any other end abandons it.
        self.stream.abandon();
    }
}

/// Appends the region's new bytes `src..src + len`: from the snapshot's
/// spans where they cover it, from the (unchanged) shadow elsewhere (the
/// equal bytes a merged run spans between two dirty spans).
fn extend_new_bytes(snap: &Snapshot, view: &ShadowView, src: u64, len: usize, out: &mut Vec<u8>) {
    let (mut pos, end) = (src as usize, src as usize + len);
    let mut k = snap.chunks.partition_point(|c| c.offset + c.len <= pos);
    while pos < end {
        match snap.chunks.get(k) {
            Some(c) if c.offset <= pos => {
                let n = (c.offset + c.len).min(end) - pos;
                let from = c.data_offset + (pos - c.offset);
                out.extend_from_slice(&snap.data[from..from + n]);
                pos += n;
                k += 1;
            }
            next => {
                let n = next.map_or(end, |c| c.offset.min(end)) - pos;
                view.for_each_piece(pos as u64, n as u64, |_, chunk, from, k| out.extend_from_slice(&chunk[from..from + k]));
                pos += n;
            }
        }
    }
}
