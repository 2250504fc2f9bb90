//! The shared encoder state: one shadow of the view, one diff per region
//! version for all browsers, and per-browser conflation.
//!
//! The encoder thread reads the region's dirty chunks once per version
//! ([`RegionSource::snapshot_since`]), diffs them against the shadow
//! (one diff, however many browsers watch) and encodes ONE delta frame.
//! Every browser that has sent everything before gets that same frame
//! (a reference-counted `Bytes`, no copy). A browser still busy sending
//! is conflated: the delta's runs are OR-ed into its dirty bitmap (one bit
//! per [`BLOCK`] bytes of the view) and it later gets one frame with the
//! dirty blocks read from the shadow at the then-current version: latest
//! state wins, memory per browser is bounded (one pending frame plus
//! `view_len / BLOCK` bits), and the writer never waits for anyone.

use super::WebStats;
use super::frame::{FrameBuilder, FrameKind, HEADER_BYTES, RUN_HEADER_BYTES};
use crate::proto::diff::changed_runs;
use crate::{RegionSource, Result, Snapshot};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Notify;

/// Conflation granularity in bytes.
pub const BLOCK: usize = 16;
/// Equal bytes between two changes that still merge them into one run
/// (a run header costs 8 bytes).
const MERGE_GAP: usize = RUN_HEADER_BYTES;

/// One delta, shared by every browser that is caught up.
struct Delta {
    frame: Bytes,
    /// `(offset, len)` of each run, for conflation.
    runs: Vec<(usize, usize)>,
}

struct Slot {
    notify: Arc<Notify>,
    /// The next frame to send as is (the browser is at its `base`).
    ready: Option<Arc<Delta>>,
    /// Blocks changed since `sent`, when `ready` could not be used.
    dirty: Vec<u64>,
    any_dirty: bool,
    /// Version of the last frame handed to this browser.
    sent: u64,
}

/// What a browser session should do next.
pub(crate) enum Next {
    /// Send this frame.
    Send(Bytes),
    /// Nothing new (a stale wakeup).
    Idle,
    /// The view is closing: end the session.
    Closed,
}

pub(crate) struct Hub {
    /// The view (`0..view_len` of the region) at `version`.
    shadow: Vec<u8>,
    version: u64,
    stamp_ms: f64,
    slots: HashMap<u64, Slot>,
    next_id: u64,
    closed: bool,
    /// The hub's counters, in the public shape (the fields it does not
    /// own stay at their defaults; `WebView::stats` fills them).
    pub(crate) counters: WebStats,
}

impl Hub {
    /// Starts from one consistent read of the whole region.
    pub(crate) fn new(src: &dyn RegionSource, view_len: usize, snap: &mut Snapshot, stamp_ms: f64) -> Result<Hub> {
        src.snapshot_all(snap)?;
        let mut hub = Hub {
            shadow: vec![0; view_len],
            version: snap.version,
            stamp_ms,
            slots: HashMap::new(),
            next_id: 0,
            closed: false,
            counters: WebStats::default(),
        };
        for c in &snap.chunks {
            let end = (c.offset + c.len).min(view_len);
            if c.offset < end {
                hub.shadow[c.offset..end].copy_from_slice(&snap.data[c.data_offset..c.data_offset + end - c.offset]);
            }
        }
        Ok(hub)
    }

    pub(crate) fn version(&self) -> u64 {
        self.version
    }

    pub(crate) fn browsers(&self) -> usize {
        self.slots.len()
    }

    /// Registers a browser; returns its id, wakeup and the snapshot frame
    /// (taken under the same lock, so the deltas that follow chain onto it).
    pub(crate) fn register(&mut self) -> (u64, Arc<Notify>, Bytes) {
        let id = self.next_id;
        self.next_id += 1;
        let notify = Arc::new(Notify::new());
        let blocks = self.shadow.len().div_ceil(BLOCK);
        let slot = Slot {
            notify: notify.clone(),
            ready: None,
            dirty: vec![0; blocks.div_ceil(64)],
            any_dirty: false,
            sent: self.version,
        };
        self.slots.insert(id, slot);
        self.counters.snapshot_frames += 1;
        (id, notify, self.snapshot_frame())
    }

    /// Frees everything a browser held.
    pub(crate) fn unregister(&mut self, id: u64) {
        self.slots.remove(&id);
    }

    /// Ends every session.
    pub(crate) fn close(&mut self) {
        self.closed = true;
        for s in self.slots.values() {
            s.notify.notify_one();
        }
    }

    fn snapshot_frame(&self) -> Bytes {
        let mut b = FrameBuilder::new(FrameKind::Snapshot, self.version, 0, self.stamp_ms, self.shadow.len() + 8);
        b.run(&self.shadow, 0..self.shadow.len());
        Bytes::from(b.finish())
    }

    /// Folds the dirty chunks of `snap` (read at `snap.version`) into the
    /// shadow, encodes the delta once, and hands it to every browser.
    /// Returns the number of changed bytes.
    pub(crate) fn publish(&mut self, snap: &Snapshot, stamp_ms: f64) -> usize {
        let view_len = self.shadow.len();
        let mut runs: Vec<(usize, usize)> = Vec::new();
        for c in &snap.chunks {
            let end = (c.offset + c.len).min(view_len);
            if c.offset >= end {
                continue;
            }
            let new = &snap.data[c.data_offset..c.data_offset + end - c.offset];
            let old = &mut self.shadow[c.offset..end];
            changed_runs(old, new, MERGE_GAP, |o, l| runs.push((c.offset + o, l)));
            old.copy_from_slice(new);
        }
        let base = self.version;
        self.version = snap.version;
        self.stamp_ms = stamp_ms;
        self.counters.versions += 1;
        // No runs (only bytes outside the view changed, or were rewritten
        // equal) still makes a 32-byte frame: the page's version and lag stay current.
        let changed: usize = runs.iter().map(|r| r.1).sum();
        let frame = self.encode_runs(base, &runs);
        self.counters.delta_frames += 1;
        self.counters.delta_bytes += frame.len() as u64;
        self.counters.changed_bytes += changed as u64;
        self.counters.runs += runs.len() as u64;
        let delta = Arc::new(Delta { frame, runs });
        for slot in self.slots.values_mut() {
            if slot.ready.is_none() && !slot.any_dirty && slot.sent == base {
                slot.ready = Some(delta.clone());
            } else {
                if let Some(old) = slot.ready.take() {
                    mark(&mut slot.dirty, &old.runs);
                }
                mark(&mut slot.dirty, &delta.runs);
                slot.any_dirty = true;
            }
            slot.notify.notify_one();
        }
        changed
    }

    /// The delta frame for `runs` (offsets into the shadow), or a snapshot
    /// when that would be smaller (so no frame exceeds the snapshot size).
    fn encode_runs(&self, base: u64, runs: &[(usize, usize)]) -> Bytes {
        let size: usize = runs.iter().map(|r| r.1 + RUN_HEADER_BYTES).sum();
        if size > self.shadow.len() + RUN_HEADER_BYTES {
            return self.snapshot_frame();
        }
        let mut b = FrameBuilder::new(FrameKind::Delta, self.version, base, self.stamp_ms, size);
        for &(o, l) in runs {
            b.run(&self.shadow, o..o + l);
        }
        debug_assert_eq!(b.len(), HEADER_BYTES + size);
        Bytes::from(b.finish())
    }

    /// The next frame for browser `id`: the shared delta if it is caught
    /// up, else one conflated frame of its dirty blocks at the current version.
    pub(crate) fn next(&mut self, id: u64) -> Next {
        if self.closed {
            return Next::Closed;
        }
        let version = self.version;
        let Some(slot) = self.slots.get_mut(&id) else { return Next::Closed };
        if let Some(d) = slot.ready.take() {
            slot.sent = version;
            return Next::Send(d.frame.clone());
        }
        if !slot.any_dirty {
            return Next::Idle;
        }
        let mut runs = Vec::new();
        let mut words = std::mem::take(&mut slot.dirty);
        let view_len = self.shadow.len();
        let mut open: Option<usize> = None;
        for block in 0..view_len.div_ceil(BLOCK) {
            let set = words[block / 64] & (1 << (block % 64)) != 0;
            match (set, open) {
                (true, None) => open = Some(block * BLOCK),
                (false, Some(s)) => {
                    runs.push((s, block * BLOCK - s));
                    open = None;
                }
                _ => {}
            }
        }
        if let Some(s) = open {
            runs.push((s, view_len - s));
        }
        words.iter_mut().for_each(|w| *w = 0);
        let base = slot.sent;
        slot.dirty = words;
        slot.any_dirty = false;
        slot.sent = version;
        let frame = self.encode_runs(base, &runs);
        self.counters.conflated_frames += 1;
        Next::Send(frame)
    }
}

/// Sets the bits of every block `runs` touch.
fn mark(words: &mut [u64], runs: &[(usize, usize)]) {
    for &(o, l) in runs.iter().filter(|r| r.1 > 0) {
        for block in o / BLOCK..=(o + l - 1) / BLOCK {
            words[block / 64] |= 1 << (block % 64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::frame::WebFrame;
    use super::*;
    use crate::MemRegion;

    fn apply(view: &mut [u8], frame: &Bytes) -> (u64, u64) {
        let f = WebFrame::decode(frame, view.len()).unwrap();
        f.apply(view).unwrap();
        (f.base, f.version)
    }

    fn step(hub: &mut Hub, region: &MemRegion, snap: &mut Snapshot) {
        let v = hub.version();
        region.snapshot_since(v, snap).unwrap();
        hub.publish(snap, 0.0);
    }

    #[test]
    fn caught_up_browsers_share_one_frame_and_slow_ones_conflate() {
        let region = MemRegion::new(4096, 512);
        let mut snap = Snapshot::default();
        let mut hub = Hub::new(&region, 4096, &mut snap, 0.0).unwrap();
        let (a, _, snap_a) = hub.register();
        let (b, _, snap_b) = hub.register();
        let (mut view_a, mut view_b) = (vec![0u8; 4096], vec![0u8; 4096]);
        apply(&mut view_a, &snap_a);
        apply(&mut view_b, &snap_b);

        region.write_at(100, &[1, 2, 3]);
        step(&mut hub, &region, &mut snap);
        let (Next::Send(fa), Next::Send(fb)) = (hub.next(a), hub.next(b)) else { panic!("both caught up") };
        assert_eq!(fa.as_ptr(), fb.as_ptr(), "one encoded frame for both");
        assert_eq!(fa.len(), HEADER_BYTES + RUN_HEADER_BYTES + 3);
        apply(&mut view_a, &fa);
        apply(&mut view_b, &fb);
        assert!(matches!(hub.next(a), Next::Idle));

        // b stops reading: many versions later it gets one conflated frame, exact at the latest.
        for i in 0..50u8 {
            region.write_at(200 + 37 * i as usize, &[i + 1]);
            step(&mut hub, &region, &mut snap);
            let Next::Send(frame) = hub.next(a) else { panic!() };
            apply(&mut view_a, &frame);
        }
        assert_eq!(hub.counters.conflated_frames, 0);
        let Next::Send(frame) = hub.next(b) else { panic!("conflated") };
        assert_eq!(hub.counters.conflated_frames, 1);
        let (base, version) = apply(&mut view_b, &frame);
        assert_eq!(version, hub.version());
        assert!(base < version);
        assert_eq!(view_b, region.to_vec());
        assert_eq!(view_a, region.to_vec());
        hub.unregister(b);
        assert_eq!(hub.browsers(), 1);
    }

    proptest::proptest! {
        /// Any interleaving of writes, encoder steps and browser reads: every
        /// frame applies on the version the browser is at, and once drained
        /// every browser holds exactly the region at the hub's version.
        #[test]
        fn any_interleaving_converges(ops in proptest::collection::vec((0u8..4, 0usize..3000, 1usize..700, proptest::prelude::any::<u8>()), 1..120)) {
            let region = MemRegion::new(3000, 256);
            let mut snap = Snapshot::default();
            let mut hub = Hub::new(&region, 2900, &mut snap, 0.0).unwrap();
            let mut browsers: Vec<(u64, Vec<u8>, u64)> = (0..2).map(|_| {
                let (id, _, f) = hub.register();
                let mut view = vec![0u8; 2900];
                let (_, v) = apply(&mut view, &f);
                (id, view, v)
            }).collect();
            let take = |hub: &mut Hub, b: &mut (u64, Vec<u8>, u64)| {
                if let Next::Send(f) = hub.next(b.0) {
                    let (base, v) = apply(&mut b.1, &f);
                    assert!(base == b.2 || base == 0, "frame on v{base}, browser at v{}", b.2);
                    b.2 = v;
                }
            };
            for (op, off, len, val) in ops {
                match op {
                    0 => { let len = len.min(3000 - off); if len > 0 { region.write_at(off, &vec![val; len]); } }
                    1 => step(&mut hub, &region, &mut snap),
                    2 => take(&mut hub, &mut browsers[0]),
                    _ => take(&mut hub, &mut browsers[1]),
                }
            }
            step(&mut hub, &region, &mut snap);
            for b in &mut browsers {
                take(&mut hub, b);
                take(&mut hub, b);
                proptest::prop_assert_eq!(&b.1[..], &region.to_vec()[..2900]);
            }
        }
    }
}
