//! Receiving a large update frame without copying its payload.
//!
//! The transport hands received stream data over as [`Bytes`] (quinn:
//! `RecvStream::read_chunk`, slices of the decrypted datagrams). A
//! [`Gather`] parses an update frame's body as it arrives: the fixed update
//! head and the run heads (small) are read into a buffer, the run payloads
//! are kept as the transport's own `Bytes`, so the mirror stages them and
//! later applies them to its region straight from the datagram buffers (one
//! copy, transport → region, instead of transport → frame body → region; and
//! no frame-body allocations whose first touch page-faults).
//!
//! Sans-IO: the I/O shell asks [`Gather::want`] what to read next, reads it
//! with one cancel-safe read, and feeds it back. The structure checks are
//! those of the contiguous decoder ([`crate::proto::frame`]): run count
//! against the body, no empty run, no offset overflow, the runs exactly
//! fill the body; the range checks against the subscription are the mirror
//! state machine's, as for every update.

use crate::error::{Error, Result};
use crate::proto::frame::{Frame, FrameHeader, FrameType, RUN_HEAD_LEN, UPDATE_HEAD_LEN, Update};
use bytes::Bytes;

/// Update frame bodies of at least this many bytes are gathered (smaller
/// ones are read contiguously: their copy costs less than the pieces).
pub const GATHER_MIN: usize = 64 << 10;

/// What the I/O shell reads next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Head bytes: fill (a prefix of) [`Gather::head_buf`], then call [`Gather::head_filled`].
    Head,
    /// Up to this many payload bytes, as transport chunks ([`Gather::data`]).
    Data(usize),
    /// The body is complete: call [`Gather::finish`].
    Done,
}

/// An update frame body received as head bytes plus payload pieces.
#[derive(Debug)]
pub struct GatheredUpdate {
    /// The update head with its run count zeroed (the runs are the pieces).
    head: [u8; UPDATE_HEAD_LEN],
    body_len: usize,
    run_count: u32,
    /// `(virtual offset, bytes)`, in wire order (each run split at the
    /// transport's chunk boundaries).
    pub(crate) pieces: Vec<(u64, Bytes)>,
}

impl GatheredUpdate {
    /// The frame's body length on the wire.
    pub fn body_len(&self) -> usize {
        self.body_len
    }

    /// Runs the frame carried (as on the wire).
    pub fn run_count(&self) -> u32 {
        self.run_count
    }

    /// Payload bytes carried.
    pub fn payload_len(&self) -> usize {
        self.pieces.iter().map(|p| p.1.len()).sum()
    }

    /// The update's head fields (decoded and validated like a contiguous
    /// frame's; the returned value carries no runs: they are the pieces).
    pub fn update(&self) -> Result<Update<'_>> {
        let h = FrameHeader { kind: FrameType::Update, body_len: UPDATE_HEAD_LEN };
        match Frame::decode_body(h, &self.head)? {
            Frame::Update(u) => Ok(u),
            _ => Err(Error::Malformed("not an update")),
        }
    }

    /// The update flags byte.
    pub fn flags(&self) -> u8 {
        self.head[UPDATE_HEAD_LEN - 5]
    }
}

/// Parser state of one update body being gathered (see the module docs).
///
/// Invariant: `taken <= body_len`; `head_len` bytes of the current head
/// (the update head while `update_head` is `None`, else a run head) are in
/// `buf`; `run_left > 0` only while a run's payload is being received.
#[derive(Debug)]
pub struct Gather {
    body_len: usize,
    taken: usize,
    buf: [u8; UPDATE_HEAD_LEN],
    head_len: usize,
    update_head: Option<[u8; UPDATE_HEAD_LEN]>,
    run_count: u32,
    runs_left: u32,
    run_left: u64,
    virt: u64,
    pieces: Vec<(u64, Bytes)>,
}

impl Gather {
    /// Starts gathering an update body of `body_len` bytes (the header was
    /// validated against the cap already).
    pub fn new(body_len: usize) -> Self {
        Gather {
            body_len,
            taken: 0,
            buf: [0; UPDATE_HEAD_LEN],
            head_len: 0,
            update_head: None,
            run_count: 0,
            runs_left: 0,
            run_left: 0,
            virt: 0,
            pieces: Vec::new(),
        }
    }

    fn head_need(&self) -> usize {
        if self.update_head.is_none() { UPDATE_HEAD_LEN } else { RUN_HEAD_LEN }
    }

    /// Body bytes received so far.
    pub fn received(&self) -> usize {
        self.taken
    }

    /// What to read next.
    pub fn want(&self) -> Want {
        if self.run_left > 0 {
            Want::Data(self.run_left.min(usize::MAX as u64) as usize)
        } else if self.update_head.is_none() || self.runs_left > 0 {
            Want::Head
        } else {
            Want::Done
        }
    }

    /// Where the next head bytes go (non-empty while [`want`](Self::want) is `Head`).
    pub fn head_buf(&mut self) -> &mut [u8] {
        let need = self.head_need();
        &mut self.buf[self.head_len..need]
    }

    /// Records `n` bytes written to the front of [`head_buf`](Self::head_buf).
    pub fn head_filled(&mut self, n: usize) -> Result<()> {
        let need = self.head_need();
        if n > need - self.head_len {
            return Err(Error::Malformed("head overfilled"));
        }
        self.head_len += n;
        self.taken += n;
        if self.taken > self.body_len {
            return Err(Error::Malformed("run count exceeds body"));
        }
        if self.head_len < need {
            return Ok(());
        }
        self.head_len = 0;
        if self.update_head.is_none() {
            let count = u32::from_le_bytes(self.buf[UPDATE_HEAD_LEN - 4..].try_into().unwrap_or_default());
            if count as usize > self.body_len.saturating_sub(UPDATE_HEAD_LEN) / RUN_HEAD_LEN {
                return Err(Error::Malformed("run count exceeds body"));
            }
            (self.update_head, self.run_count, self.runs_left) = (Some(self.buf), count, count);
        } else {
            let virt = u64::from_le_bytes(self.buf[..8].try_into().unwrap_or_default());
            let len = u32::from_le_bytes(self.buf[8..12].try_into().unwrap_or_default()) as u64;
            if len == 0 {
                return Err(Error::Malformed("empty run"));
            }
            virt.checked_add(len).ok_or(Error::Malformed("run offset overflows"))?;
            if len > (self.body_len - self.taken) as u64 {
                return Err(Error::Truncated { needed: self.taken + len as usize, got: self.body_len });
            }
            (self.virt, self.run_left) = (virt, len);
            self.runs_left -= 1;
        }
        if self.want() == Want::Done && self.taken != self.body_len {
            return Err(Error::Malformed("trailing bytes"));
        }
        Ok(())
    }

    /// Records received payload bytes (at most what [`want`](Self::want) asked for).
    pub fn data(&mut self, b: Bytes) -> Result<()> {
        let n = b.len() as u64;
        if n == 0 || n > self.run_left {
            return Err(Error::Malformed("payload chunk outside its run"));
        }
        self.pieces.push((self.virt, b));
        (self.virt, self.run_left) = (self.virt + n, self.run_left - n);
        self.taken += n as usize;
        if self.want() == Want::Done && self.taken != self.body_len {
            return Err(Error::Malformed("trailing bytes"));
        }
        Ok(())
    }

    /// The gathered update (once [`want`](Self::want) is `Done`).
    pub fn finish(self) -> Result<GatheredUpdate> {
        let head = match (self.want(), self.update_head) {
            (Want::Done, Some(mut h)) if self.taken == self.body_len => {
                h[UPDATE_HEAD_LEN - 4..].fill(0); // run count 0: the runs are not in this buffer
                h
            }
            _ => return Err(Error::Truncated { needed: self.body_len, got: self.taken }),
        };
        Ok(GatheredUpdate { head, body_len: self.body_len, run_count: self.run_count, pieces: self.pieces })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::frame::{Frame, HEADER_LEN, encode_single_update};

    /// Feeds `body` to a gather in pieces of at most `step` bytes.
    fn gather(body: &[u8], step: usize) -> Result<GatheredUpdate> {
        let mut g = Gather::new(body.len());
        let mut at = 0;
        loop {
            match g.want() {
                Want::Head => {
                    let buf = g.head_buf();
                    let n = buf.len().min(step).min(body.len() - at);
                    if n == 0 {
                        return Err(Error::Truncated { needed: body.len() + 1, got: at });
                    }
                    buf[..n].copy_from_slice(&body[at..at + n]);
                    g.head_filled(n)?;
                    at += n;
                }
                Want::Data(max) => {
                    let n = max.min(step).min(body.len() - at);
                    g.data(Bytes::copy_from_slice(&body[at..at + n]))?;
                    at += n;
                }
                Want::Done => return g.finish(),
            }
        }
    }

    #[test]
    fn gathered_equals_contiguous_decode() {
        let runs: Vec<(u64, Vec<u8>)> =
            vec![(3, vec![1; 5000]), (9000, (0..70_000u32).map(|i| i as u8).collect()), (90_000, vec![7; 1])];
        let refs: Vec<(u64, &[u8])> = runs.iter().map(|(v, d)| (*v, d.as_slice())).collect();
        let wire = encode_single_update(11, 42, 41, true, &refs);
        let body = &wire[HEADER_LEN..];
        let h = FrameHeader::decode(wire[..HEADER_LEN].try_into().unwrap()).unwrap();
        let Frame::Update(u) = Frame::decode_body(h, body).unwrap() else { panic!("not an update") };
        for step in [1, 7, 1200, 1 << 20] {
            let g = gather(body, step).unwrap();
            let gu = g.update().unwrap();
            assert_eq!((gu.region_id, gu.epoch, gu.seq, gu.base_seq), (u.region_id, u.epoch, u.seq, u.base_seq));
            assert_eq!((gu.captured_ns, gu.part, gu.flags), (u.captured_ns, u.part, u.flags));
            assert_eq!(g.run_count(), u.run_count());
            assert_eq!(g.payload_len(), u.payload_len());
            // The pieces, merged back, are the runs.
            let mut merged: Vec<(u64, Vec<u8>)> = Vec::new();
            for (v, b) in &g.pieces {
                match merged.last_mut() {
                    Some((lv, ld)) if *lv + ld.len() as u64 == *v => ld.extend_from_slice(b),
                    _ => merged.push((*v, b.to_vec())),
                }
            }
            let want: Vec<(u64, Vec<u8>)> = u.runs().map(|(v, d)| (v, d.to_vec())).collect();
            assert_eq!(merged, want, "step {step}");
        }
        // Truncated and trailing bodies are errors, never panics.
        for cut in [0, 10, UPDATE_HEAD_LEN + 3, body.len() - 1] {
            assert!(gather(&body[..cut], 1000).is_err());
        }
        let mut long = body.to_vec();
        long.push(0);
        assert!(gather(&long, 1000).is_err());
    }

    #[test]
    fn gathered_frames_apply_like_contiguous_ones() {
        use crate::proto::Now;
        use crate::proto::frame::{FLAG_LAST, FLAG_SNAPSHOT, Welcome, encode_update_head, finish_update};
        use crate::proto::frame::{push_run_head, update_head};
        use crate::proto::mirror::{MirrorConfig, MirrorSession};
        use crate::proto::region::MemRegion;
        use crate::proto::subscription::Subscription;
        let size = 300_000usize;
        let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
        // A two-frame snapshot, two runs per frame.
        let cuts = [[0, 70_000, 150_000], [150_000, 220_000, size]];
        let frames: Vec<Vec<u8>> = (0..2u32)
            .map(|part| {
                let mut out = Vec::new();
                let flags = FLAG_SNAPSHOT | if part == 1 { FLAG_LAST } else { 0 };
                let at = encode_update_head(&mut out, &update_head(0, 9, 5, 0, 0, part, flags));
                let c = cuts[part as usize];
                for w in c.windows(2) {
                    push_run_head(&mut out, w[0] as u64, (w[1] - w[0]) as u32);
                    out.extend_from_slice(&data[w[0]..w[1]]);
                }
                finish_update(&mut out, at, 2);
                out
            })
            .collect();
        let mut seen = Vec::new();
        for gathered in [false, true] {
            let mut local = MemRegion::new(size, 4096);
            let mut m = MirrorSession::new(MirrorConfig::default(), Subscription::whole());
            m.connect();
            let now = Now::system();
            let w = Welcome { epoch: 9, owner_id: 0, region_id: 0, chunk_size: 4096, region_size: size as u64 };
            m.handle_frame(&Frame::Welcome(w), &mut local, 0, now).unwrap();
            let mut applied = None;
            for f in &frames {
                let h = FrameHeader::decode(f[..HEADER_LEN].try_into().unwrap()).unwrap();
                let body = f[HEADER_LEN..].to_vec();
                assert!(applied.is_none(), "applied before the last frame");
                applied = if gathered {
                    let g = gather(&body, 1400).unwrap();
                    assert_eq!(m.apply_len_gathered(&g) > 0, m.apply_len(&h, &body) > 0);
                    m.handle_gathered(g, &mut local, now)
                } else {
                    m.handle(h, body, &mut local, now)
                }
                .unwrap();
            }
            assert_eq!(applied.map(|a| (a.epoch, a.seq, a.snapshot)), Some((9, 5, true)));
            assert_eq!(local.to_vec(), data);
            let st = m.stats();
            seen.push((st.bytes_received, st.payload_bytes, st.snapshots_applied));
        }
        assert_eq!(seen[0], seen[1], "same counters on both paths");
    }
}
