//! The replication backlog: a bounded ring of encoded deltas keyed by
//! `(epoch, seq)` (Redis' repl-backlog, for region versions).
//!
//! The [`RegionEncoder`](crate::proto::encoder::RegionEncoder) computes each
//! region version's changed runs ONCE and appends them here as a [`Delta`]:
//! the update frames of a whole-region subscription, encoded once, plus the
//! run index into those frames. Consecutive deltas form a chain
//! (`deltas[i].base_seq == deltas[i - 1].seq`), so a mirror at any seq of the
//! chain is served from it: the delta that starts at its seq (shared bytes,
//! no per-mirror diff), or the merge of every delta since (a mirror that is
//! behind), cut to its subscription. A mirror older than the oldest delta
//! gets a snapshot.
//!
//! The ring keeps at most `capacity` bytes of deltas, always including the
//! newest one (a single delta larger than the capacity is kept until the
//! next one arrives).

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;

/// One changed run of a [`Delta`]: `len` bytes at region offset `src`,
/// stored at `at` inside the delta's payload buffer (see [`Delta`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeltaRun {
    /// Region offset.
    pub src: u64,
    /// Length in bytes (> 0).
    pub len: u64,
    /// Offset of the bytes inside the delta's payload buffer.
    pub at: usize,
}

/// One piece of an encoded frame: a byte range of one of the delta's
/// buffers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    /// Of `wire`: frame and run headers, and runs copied after them.
    Wire(Range<usize>),
    /// Of the payload buffer: a gathered run's bytes, where they were read.
    Payload(Range<usize>),
}

/// One encoded frame: its segments `segs[start..end]` and the changed
/// bytes it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameSegs {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) payload: u64,
}

/// One region version's changes, encoded once for every mirror.
///
/// Two layouts. *Copied*: `wire` holds the complete frames, run bytes
/// included, and `payload` is `None`. *Gathered* (dense deltas of the
/// publisher's feed): `wire` holds only the frame and run headers and the
/// run bytes stay in the region snapshot they were read into (`payload`):
/// the encoder copies nothing but headers, and the frames go out as
/// header slices interleaved with payload slices.
///
/// Invariants: `runs` are sorted by `src`, disjoint and non-empty, and each
/// one's bytes are `payload_buf()[at..at + len]`; the segments of `frames`
/// concatenate to complete update frames of a whole-region subscription
/// (`virt == src`), in order, the last one flagged `FLAG_LAST`.
#[derive(Debug)]
pub struct Delta {
    /// Epoch of the region incarnation.
    pub epoch: u64,
    /// Region version the delta brings a mirror to.
    pub seq: u64,
    /// Region version it applies on top of.
    pub base_seq: u64,
    /// Wall clock (ns since the Unix epoch) when the bytes were captured.
    pub captured_ns: u64,
    pub(crate) runs: Vec<DeltaRun>,
    pub(crate) wire: Arc<Vec<u8>>,
    pub(crate) payload: Option<Arc<Vec<u8>>>,
    pub(crate) segs: Vec<Segment>,
    pub(crate) frames: Vec<FrameSegs>,
}

impl Delta {
    /// The changed runs, sorted by region offset.
    pub fn runs(&self) -> &[DeltaRun] {
        &self.runs
    }

    /// The buffer the runs' bytes live in.
    pub(crate) fn payload_buf(&self) -> &Arc<Vec<u8>> {
        self.payload.as_ref().unwrap_or(&self.wire)
    }

    /// The buffer a segment's bytes are in, and their range there.
    pub(crate) fn seg<'a>(&'a self, s: &'a Segment) -> (&'a Arc<Vec<u8>>, &'a Range<usize>) {
        match s {
            Segment::Wire(r) => (&self.wire, r),
            Segment::Payload(r) => (self.payload_buf(), r),
        }
    }

    /// Bytes of a run.
    pub fn bytes(&self, r: &DeltaRun) -> &[u8] {
        &self.payload_buf()[r.at..r.at + r.len as usize]
    }

    /// Changed bytes carried (sum of the run lengths).
    pub fn payload_len(&self) -> u64 {
        self.runs.iter().map(|r| r.len).sum()
    }

    /// Bytes this delta holds in the backlog (its encoded frames, the
    /// payload buffer it references (its capacity), and its run index).
    pub fn wire_len(&self) -> usize {
        self.wire.len()
            + self.payload.as_ref().map_or(0, |p| p.capacity())
            + self.runs.len() * std::mem::size_of::<DeltaRun>()
            + self.segs.len() * std::mem::size_of::<Segment>()
    }

    /// Whether the run bytes are referenced from the region snapshot
    /// (gathered layout) rather than copied into the frames.
    pub fn is_gathered(&self) -> bool {
        self.payload.is_some()
    }

    /// The encoded frames, in order (whole-region subscription).
    pub fn frames(&self) -> impl Iterator<Item = Vec<u8>> + '_ {
        self.frames.iter().map(|f| {
            let mut out = Vec::new();
            for s in &self.segs[f.start..f.end] {
                let (buf, r) = self.seg(s);
                out.extend_from_slice(&buf[r.clone()]);
            }
            out
        })
    }
}

/// Buffers of evicted deltas that nothing holds any more, for reuse.
#[derive(Debug, Default)]
pub(crate) struct Reclaimed {
    /// The largest encoded-frame buffer.
    pub(crate) wire: Option<Vec<u8>>,
    /// The largest payload (region snapshot) buffer.
    pub(crate) payload: Option<Vec<u8>>,
}

/// Counters of a [`Backlog`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BacklogStats {
    /// Deltas held.
    pub deltas: usize,
    /// Bytes held (encoded frames).
    pub bytes: usize,
    /// Configured capacity in bytes.
    pub capacity: usize,
    /// Oldest seq a mirror can resume from (`None`: empty).
    pub oldest_seq: Option<u64>,
    /// Deltas evicted so far (all epochs).
    pub evicted: u64,
}

/// Bounded ring of deltas of one epoch, oldest first.
///
/// Invariant: `entries` form a chain (`entries[i].base_seq ==
/// entries[i - 1].seq`), all of epoch `epoch`; `bytes` is the sum of their
/// `wire_len`; `bytes <= capacity` unless only one delta is held.
#[derive(Debug)]
pub struct Backlog {
    capacity: usize,
    epoch: Option<u64>,
    entries: VecDeque<Arc<Delta>>,
    bytes: usize,
    evicted: u64,
}

impl Backlog {
    /// An empty backlog holding at most `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        Backlog { capacity, epoch: None, entries: VecDeque::new(), bytes: 0, evicted: 0 }
    }

    /// Appends the next delta. A delta of another epoch or one that does
    /// not continue the chain clears the ring first.
    pub fn push(&mut self, d: Arc<Delta>) {
        let _ = self.push_reclaim(d);
    }

    /// [`push`](Self::push), returning the largest encoded-frame buffer
    /// and the largest payload buffer of the deltas it evicted that nothing
    /// else holds any more (no session, no transport slice), for the
    /// encoder to reuse: their pages are already faulted in, a fresh buffer
    /// of a few MiB is not.
    pub(crate) fn push_reclaim(&mut self, d: Arc<Delta>) -> Reclaimed {
        let continues = self.entries.back().is_none_or(|last| last.seq == d.base_seq);
        if self.epoch != Some(d.epoch) || !continues {
            self.clear();
            self.epoch = Some(d.epoch);
        }
        self.bytes += d.wire_len();
        self.entries.push_back(d);
        let mut reclaimed = Reclaimed::default();
        fn larger(kept: &mut Option<Vec<u8>>, b: Option<Arc<Vec<u8>>>) {
            if let Some(w) = b.and_then(|b| Arc::try_unwrap(b).ok())
                && kept.as_ref().is_none_or(|r| r.capacity() < w.capacity())
            {
                *kept = Some(w);
            }
        }
        while self.bytes > self.capacity && self.entries.len() > 1 {
            if let Some(old) = self.entries.pop_front() {
                self.bytes -= old.wire_len();
                self.evicted += 1;
                if let Ok(d) = Arc::try_unwrap(old) {
                    larger(&mut reclaimed.wire, Some(d.wire));
                    larger(&mut reclaimed.payload, d.payload);
                }
            }
        }
        reclaimed
    }

    /// Drops every delta (an epoch change, or a state not reachable by deltas).
    pub fn clear(&mut self) {
        self.evicted += self.entries.len() as u64;
        self.entries.clear();
        self.bytes = 0;
    }

    /// The deltas that bring a mirror at `(epoch, seq)` to the newest
    /// version, oldest first: empty if it is there already (`seq` is the
    /// newest delta's seq), `None` if the ring does not reach back to it
    /// (another epoch, evicted, or never a version of the chain).
    pub fn since(&self, epoch: u64, seq: u64) -> Option<Vec<Arc<Delta>>> {
        if self.epoch != Some(epoch) {
            return None;
        }
        let last = self.entries.back()?;
        if last.seq == seq {
            return Some(Vec::new());
        }
        // base_seq increases along the chain: binary search.
        let i = self.entries.partition_point(|d| d.base_seq < seq);
        match self.entries.get(i) {
            Some(d) if d.base_seq == seq => Some(self.entries.range(i..).cloned().collect()),
            _ => None,
        }
    }

    /// The newest delta.
    pub fn newest(&self) -> Option<&Arc<Delta>> {
        self.entries.back()
    }

    /// Counters.
    pub fn stats(&self) -> BacklogStats {
        BacklogStats {
            deltas: self.entries.len(),
            bytes: self.bytes,
            capacity: self.capacity,
            oldest_seq: self.entries.front().map(|d| d.base_seq),
            evicted: self.evicted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta(epoch: u64, base_seq: u64, seq: u64, wire: usize) -> Arc<Delta> {
        Arc::new(Delta {
            epoch,
            seq,
            base_seq,
            captured_ns: 0,
            runs: Vec::new(),
            wire: Arc::new(vec![0; wire]),
            payload: None,
            segs: Vec::new(),
            frames: Vec::new(),
        })
    }

    #[test]
    fn chain_lookup_eviction_and_epochs() {
        let mut b = Backlog::new(100);
        for s in 1..=5u64 {
            b.push(delta(1, 2 * s - 2, 2 * s, 30));
        }
        // 5 x 30 bytes > 100: the two oldest were evicted.
        assert_eq!(b.stats().deltas, 3);
        assert_eq!(b.stats().oldest_seq, Some(4));
        assert_eq!(b.since(1, 10).unwrap().len(), 0);
        assert_eq!(b.since(1, 6).unwrap().len(), 2);
        assert_eq!(b.since(1, 4).unwrap().len(), 3);
        assert!(b.since(1, 2).is_none(), "evicted");
        assert!(b.since(1, 5).is_none(), "not a version of the chain");
        assert!(b.since(2, 10).is_none(), "another epoch");
        // A new epoch or a broken chain starts over.
        b.push(delta(1, 99, 100, 1));
        assert_eq!(b.stats().deltas, 1);
        b.push(delta(3, 100, 102, 500));
        assert_eq!(b.stats().deltas, 1, "the newest is kept even above the capacity");
        assert!(b.since(3, 100).is_some());
    }

    #[test]
    fn evicted_buffers_are_reclaimed_only_when_unshared() {
        let mut b = Backlog::new(100);
        assert!(b.push_reclaim(delta(1, 0, 2, 60)).wire.is_none());
        let held = b.since(1, 0).unwrap(); // a session still sends the first delta
        assert!(b.push_reclaim(delta(1, 2, 4, 60)).wire.is_none(), "evicted but still held");
        drop(held);
        let w = b.push_reclaim(delta(1, 4, 6, 60)).wire.expect("evicted and unshared");
        assert_eq!(w.len(), 60);
        let d = delta(1, 6, 8, 60);
        let slice = d.wire.clone(); // a transport slice of the newest delta
        b.push(d);
        assert!(b.push_reclaim(delta(1, 8, 10, 60)).wire.is_none(), "its bytes are still referenced");
        drop(slice);
    }
}
