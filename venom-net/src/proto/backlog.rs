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
use std::sync::Arc;

/// One changed run of a [`Delta`]: `len` bytes at region offset `src`,
/// stored at `at` inside the delta's encoded frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeltaRun {
    /// Region offset.
    pub src: u64,
    /// Length in bytes (> 0).
    pub len: u64,
    /// Offset of the bytes inside the delta's encoded frames.
    pub at: usize,
}

/// One region version's changes, encoded once for every mirror.
///
/// Invariants: `runs` are sorted by `src`, disjoint and non-empty, and each
/// one's bytes are `wire[at..at + len]`; `frames` partition `wire` into
/// complete update frames `(start, end, payload bytes)` of a whole-region
/// subscription (`virt == src`), the last one flagged `FLAG_LAST`.
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
    pub(crate) frames: Vec<(usize, usize, u64)>,
}

impl Delta {
    /// The changed runs, sorted by region offset.
    pub fn runs(&self) -> &[DeltaRun] {
        &self.runs
    }

    /// Bytes of a run.
    pub fn bytes(&self, r: &DeltaRun) -> &[u8] {
        &self.wire[r.at..r.at + r.len as usize]
    }

    /// Changed bytes carried (sum of the run lengths).
    pub fn payload_len(&self) -> u64 {
        self.runs.iter().map(|r| r.len).sum()
    }

    /// Bytes this delta holds in the backlog (its encoded frames and run index).
    pub fn wire_len(&self) -> usize {
        self.wire.len() + self.runs.len() * std::mem::size_of::<DeltaRun>()
    }

    /// The encoded frames, in order (whole-region subscription).
    pub fn frames(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.frames.iter().map(|&(s, e, _)| &self.wire[s..e])
    }
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

    /// [`push`](Self::push), returning the largest encoded-frame buffer of
    /// the deltas it evicted that nothing else holds any more (no session,
    /// no transport slice), for the encoder to reuse: its pages are already
    /// faulted in, a fresh buffer of a few MiB is not.
    pub(crate) fn push_reclaim(&mut self, d: Arc<Delta>) -> Option<Vec<u8>> {
        let continues = self.entries.back().is_none_or(|last| last.seq == d.base_seq);
        if self.epoch != Some(d.epoch) || !continues {
            self.clear();
            self.epoch = Some(d.epoch);
        }
        self.bytes += d.wire_len();
        self.entries.push_back(d);
        let mut reclaimed: Option<Vec<u8>> = None;
        while self.bytes > self.capacity && self.entries.len() > 1 {
            if let Some(old) = self.entries.pop_front() {
                self.bytes -= old.wire_len();
                self.evicted += 1;
                let wire = Arc::try_unwrap(old).ok().and_then(|d| Arc::try_unwrap(d.wire).ok());
                if let Some(w) = wire
                    && reclaimed.as_ref().is_none_or(|r| r.capacity() < w.capacity())
                {
                    reclaimed = Some(w);
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
        assert!(b.push_reclaim(delta(1, 0, 2, 60)).is_none());
        let held = b.since(1, 0).unwrap(); // a session still sends the first delta
        assert!(b.push_reclaim(delta(1, 2, 4, 60)).is_none(), "evicted but still held");
        drop(held);
        let w = b.push_reclaim(delta(1, 4, 6, 60)).expect("evicted and unshared");
        assert_eq!(w.len(), 60);
        let d = delta(1, 6, 8, 60);
        let slice = d.wire.clone(); // a transport slice of the newest delta
        b.push(d);
        assert!(b.push_reclaim(delta(1, 8, 10, 60)).is_none(), "its bytes are still referenced");
        drop(slice);
    }
}
