//! Streams a delta's whole-region update frames into one buffer while its
//! runs are still being found (the encoder's one-pass diff + encode,
//! `RegionEncoder::diff_encode`): run lengths and frame lengths are
//! patched when they end, so the frames are byte for byte those the encoder
//! builds from a finished run list (copied layout: headers and run bytes in
//! one `wire` buffer).
//!
//! Frame cut rules, the same as the encoder's: at most `budget` payload
//! bytes and 64 run pieces per frame; a run that crosses the budget is split
//! and continues as a new piece in the next frame; a frame is only closed
//! when more bytes follow, and the last one is flagged `FLAG_LAST`.

use crate::proto::backlog::{DeltaRun, FrameSegs, Segment};
use crate::proto::frame::{self, FLAG_LAST, RUN_HEAD_LEN, UPDATE_HEAD_LEN};

/// Run pieces per frame.
const RUNS_PER_FRAME: u32 = 64;

/// The frame header fields of one delta.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DeltaHead {
    pub(crate) region_id: u32,
    pub(crate) epoch: u64,
    pub(crate) seq: u64,
    pub(crate) base_seq: u64,
    pub(crate) captured_ns: u64,
}

/// A delta's frames being written. Invariant: a frame is open (its header
/// is in `wire` at `frame_at`), and at most one run piece is open (its
/// header at `piece.head_at`, its bytes from `piece.at` to the end).
pub(crate) struct DeltaWriter {
    head: DeltaHead,
    budget: u64,
    wire: Vec<u8>,
    frame_at: usize,
    part: u32,
    used: u64,
    count: u32,
    piece: Option<Piece>,
    /// Region offset of the next byte of the open run.
    pos: u64,
    runs: Vec<DeltaRun>,
    segs: Vec<Segment>,
    frames: Vec<FrameSegs>,
}

#[derive(Clone, Copy)]
struct Piece {
    src: u64,
    head_at: usize,
    at: usize,
}

/// What a finished [`DeltaWriter`] produced.
pub(crate) struct Written {
    pub(crate) wire: Vec<u8>,
    pub(crate) runs: Vec<DeltaRun>,
    pub(crate) segs: Vec<Segment>,
    pub(crate) frames: Vec<FrameSegs>,
}

impl DeltaWriter {
    /// Starts the first frame of `head` in `wire` (cleared), with at most
    /// `budget` (> 0) payload bytes per frame.
    pub(crate) fn new(head: DeltaHead, budget: u64, mut wire: Vec<u8>) -> Self {
        wire.clear();
        let mut w = DeltaWriter {
            head,
            budget: budget.max(1),
            wire,
            frame_at: 0,
            part: 0,
            used: 0,
            count: 0,
            piece: None,
            pos: 0,
            runs: Vec::new(),
            segs: Vec::new(),
            frames: Vec::new(),
        };
        w.open_frame();
        w
    }

    fn open_frame(&mut self) {
        let h = self.head;
        let u = frame::update_head(h.region_id, h.epoch, h.seq, h.base_seq, h.captured_ns, self.part, 0);
        self.frame_at = frame::encode_update_head(&mut self.wire, &u);
        (self.used, self.count) = (0, 0);
    }

    fn close_frame(&mut self, last: bool) {
        if last {
            self.wire[self.frame_at + frame::HEADER_LEN + UPDATE_HEAD_LEN - 5] |= FLAG_LAST;
        }
        let runs_len = self.count as usize * RUN_HEAD_LEN + self.used as usize;
        frame::set_update_len(&mut self.wire, self.frame_at, self.count, runs_len);
        let start = self.segs.len();
        self.segs.push(Segment::Wire(self.frame_at..self.wire.len()));
        self.frames.push(FrameSegs { start, end: start + 1, payload: self.used });
        self.part += 1;
    }

    /// Closes the full frame and opens the next one.
    fn next_frame(&mut self) {
        self.close_frame(false);
        self.open_frame();
    }

    fn open_piece(&mut self, src: u64) {
        if self.used >= self.budget || self.count >= RUNS_PER_FRAME {
            self.next_frame();
        }
        let head_at = self.wire.len();
        frame::push_run_head(&mut self.wire, src, 0); // length patched when the piece ends
        self.piece = Some(Piece { src, head_at, at: self.wire.len() });
        self.count += 1;
    }

    fn close_piece(&mut self) {
        if let Some(p) = self.piece.take() {
            let len = self.wire.len() - p.at;
            // Pieces are at most `budget` (< 4 GiB) bytes.
            self.wire[p.head_at + 8..p.head_at + RUN_HEAD_LEN].copy_from_slice(&(len as u32).to_le_bytes());
            self.runs.push(DeltaRun { src: p.src, len: len as u64, at: p.at });
        }
    }

    /// Starts a run at region offset `src` (after the end of the previous
    /// one), closing the open run if any.
    pub(crate) fn open_run(&mut self, src: u64) {
        self.close_piece();
        self.pos = src;
        self.open_piece(src);
    }

    /// Appends `bytes` to the open run (the region bytes at its current
    /// end), splitting it at frame boundaries.
    pub(crate) fn push(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.used >= self.budget {
                self.close_piece();
                self.open_piece(self.pos);
            }
            let k = ((self.budget - self.used) as usize).min(bytes.len());
            self.wire.extend_from_slice(&bytes[..k]);
            (self.used, self.pos, bytes) = (self.used + k as u64, self.pos + k as u64, &bytes[k..]);
        }
    }

    /// Ends the last run and the last frame.
    pub(crate) fn finish(mut self) -> Written {
        self.close_piece();
        self.close_frame(true);
        Written { wire: self.wire, runs: self.runs, segs: self.segs, frames: self.frames }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The frames of a finished writer decode to the runs pushed, cut at
    /// the budget and at 64 pieces per frame.
    #[test]
    fn cuts_frames_at_the_budget_and_the_piece_limit() {
        let head = DeltaHead { region_id: 3, epoch: 1, seq: 8, base_seq: 6, captured_ns: 5 };
        let mut w = DeltaWriter::new(head, 100, vec![9; 50]); // a reused buffer is cleared
        w.open_run(0);
        w.push(&[1; 250]); // 100 + 100 + 50
        for k in 0..70u64 {
            w.open_run(1000 + k * 10);
            w.push(&[2]);
        }
        let out = w.finish();
        let total: u64 = out.runs.iter().map(|r| r.len).sum();
        assert_eq!(total, 250 + 70);
        assert_eq!(
            out.runs[..3].iter().map(|r| (r.src, r.len)).collect::<Vec<_>>(),
            vec![(0, 100), (100, 100), (200, 50)]
        );
        // 3 frames for the long run (the third shared with 63 one-byte runs), then one more.
        assert_eq!(out.frames.len(), 4);
        assert_eq!(out.frames.iter().map(|f| f.payload).sum::<u64>(), total);
        for r in &out.runs {
            assert!(out.wire[r.at..r.at + r.len as usize].iter().all(|&b| b == 1 || b == 2));
        }
    }
}
