//! The fused read + diff + encode of a publisher step: a
//! [`DirtyVisitor`] that compares each dirty block of the region, as
//! loaded inside the region's consistent read window, with the encoder's
//! shadow and writes only the changed runs' bytes straight into the
//! delta's frames ([`DeltaWriter`]). No snapshot copy of the dirty pages,
//! no separate encode copy: the region's bytes go from a private L1 block
//! to the frames.
//!
//! The shadow is only read here. The runs are copied into it by the
//! encoder after the window validated (a torn window restarts the writer
//! and leaves the shadow untouched, so no change is lost).
//!
//! The runs are exactly [`changed_runs`] over the dirty bytes against the
//! shadow, merged across `merge_gap` like the encoder's copied path
//! (tested against it): runs found in one block are merged with the open
//! run when fewer than `merge_gap` bytes lie between them, the bytes in
//! between coming from the shadow (they are equal, or outside the dirty
//! pages and therefore unchanged).

use crate::proto::delta_writer::{DeltaHead, DeltaWriter, Written};
use crate::proto::diff::changed_runs;
use std::sync::Arc;
use venom_core::DirtyVisitor;

/// The fused diff of one step (see the module docs).
pub(crate) struct FusedDiff<'a> {
    chunks: &'a [Arc<Vec<u8>>],
    chunk_size: usize,
    gap: usize,
    head: DeltaHead,
    out: DeltaWriter,
    /// End (exclusive) of the open run, if any.
    open: Option<u64>,
}

impl<'a> FusedDiff<'a> {
    /// A diff against the shadow `chunks` (chunk `k` covers
    /// `k * chunk_size..`), writing frames of `head` (its `seq` set by each
    /// window) with `budget` payload bytes each into `wire`.
    pub(crate) fn new(
        chunks: &'a [Arc<Vec<u8>>],
        chunk_size: usize,
        gap: usize,
        head: DeltaHead,
        budget: u64,
        wire: Vec<u8>,
    ) -> Self {
        let out = DeltaWriter::new(head, budget, wire);
        FusedDiff { chunks, chunk_size, gap, head, out, open: None }
    }

    /// The frames of the last window (call after it validated).
    pub(crate) fn finish(self) -> Written {
        self.out.finish()
    }

    /// Appends shadow bytes `from..to` to the open run.
    fn bridge(out: &mut DeltaWriter, chunks: &[Arc<Vec<u8>>], chunk_size: usize, from: u64, to: u64) {
        let (mut pos, end) = (from as usize, to as usize);
        while pos < end {
            let (k, at) = (pos / chunk_size, pos % chunk_size);
            let n = (chunk_size - at).min(end - pos);
            out.push(&chunks[k][at..at + n]);
            pos += n;
        }
    }
}

impl DirtyVisitor for FusedDiff<'_> {
    fn begin(&mut self, version: u64, dirty: usize) {
        // The seq is known only now; a torn window's frames are dropped.
        self.head.seq = version;
        self.out.restart(self.head);
        self.open = None;
        // Frames and run headers on top of the bytes: warm buffers reused,
        // and no reallocation (a copy of everything so far) inside the window.
        let need = dirty + dirty / 32 + 4096;
        if self.out.capacity() < need {
            self.out.reserve(need);
        }
    }

    fn block(&mut self, offset: usize, bytes: &[u8]) {
        // A block lies inside one page, and a page inside one shadow chunk.
        let (k, at) = (offset / self.chunk_size, offset % self.chunk_size);
        let shadow = &self.chunks[k][at..at + bytes.len()];
        prefetch(shadow);
        let (out, open, chunks, chunk_size, gap) =
            (&mut self.out, &mut self.open, self.chunks, self.chunk_size, self.gap);
        changed_runs(shadow, bytes, gap, |o, l| {
            let v = (offset + o) as u64;
            match *open {
                // Saturating: `merge_gap` may be usize::MAX (merge all).
                Some(end) if end.saturating_add(gap as u64) > v => Self::bridge(out, chunks, chunk_size, end, v),
                _ => out.open_run(v),
            }
            out.push(&bytes[o..o + l]);
            *open = Some(v + l as u64);
        });
    }
}

/// Asks for every cache line of `bytes` at once: the shadow is large and
/// cold, and a dirty page of it is otherwise fetched line by line as the
/// diff reaches it (latency-bound, the diff's main cost).
#[inline(always)]
fn prefetch(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    for line in bytes.chunks(64) {
        // A hint only (no access in the memory model); `line` is in bounds.
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(line.as_ptr() as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}
