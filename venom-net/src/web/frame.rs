//! The binary WebSocket frames the browser receives (little endian).
//!
//! ```text
//! 0   kind         u8   1 = snapshot (one run covering the whole view), 2 = delta
//! 1   reserved     3 x u8 (zero)
//! 4   run_count    u32
//! 8   version      u64  region version the bytes are consistent at
//! 16  base         u64  version the runs apply on (0 for a snapshot)
//! 24  stamp_ms     f64  server wall clock (ms since the Unix epoch) when the
//!                       bridge read this version (the page's lag is now - stamp)
//! 32  runs         run_count x { offset u32, len u32, len bytes }
//! ```
//! Offsets are region offsets inside the bridge's view (`0..view_len`). The
//! page keeps a copy of the view, applies the runs and redraws.
//! [`WebFrame::decode`] is the strict reference decoder (used by tests and
//! the fuzz target); the server never decodes browser input.

use crate::{Error, Result};
use std::ops::Range;

/// Bytes before the first run.
pub const HEADER_BYTES: usize = 32;
/// Bytes of one run header (offset u32, len u32).
pub const RUN_HEADER_BYTES: usize = 8;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// The whole view at `version` (first frame, or a delta that would be larger).
    Snapshot = 1,
    /// Changed runs from `base` to `version`.
    Delta = 2,
}

/// A decoded frame; runs borrow the input.
#[derive(Debug, Clone, PartialEq)]
pub struct WebFrame<'a> {
    /// Snapshot or delta.
    pub kind: FrameKind,
    /// Version the view is at after applying the runs.
    pub version: u64,
    /// Version the runs apply on (0 for a snapshot).
    pub base: u64,
    /// Server wall clock in ms when the version was read.
    pub stamp_ms: f64,
    /// `(offset, bytes)` of each run, in order.
    pub runs: Vec<(u32, &'a [u8])>,
}

impl<'a> WebFrame<'a> {
    /// Decodes and validates one frame against a view of `view_len` bytes:
    /// known kind, zero reserved bytes, every run inside the view, no
    /// trailing bytes. Allocates at most one entry per 8 input bytes.
    pub fn decode(buf: &'a [u8], view_len: usize) -> Result<WebFrame<'a>> {
        let header: &[u8; HEADER_BYTES] = buf
            .get(..HEADER_BYTES)
            .and_then(|h| h.try_into().ok())
            .ok_or(Error::Truncated { needed: HEADER_BYTES, got: buf.len() })?;
        let kind = match header[0] {
            1 => FrameKind::Snapshot,
            2 => FrameKind::Delta,
            k => return Err(Error::UnknownFrameType(k)),
        };
        if header[1..4] != [0, 0, 0] {
            return Err(Error::Malformed("web frame: reserved bytes are not zero"));
        }
        let u64_at = |i: usize| u64::from_le_bytes(header[i..i + 8].try_into().expect("8 bytes"));
        let count = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes")) as usize;
        let (version, base, stamp_ms) = (u64_at(8), u64_at(16), f64::from_bits(u64_at(24)));
        // Each run takes at least its header: bounds the allocation by the input size.
        if count > (buf.len() - HEADER_BYTES) / RUN_HEADER_BYTES {
            return Err(Error::Malformed("web frame: more runs than bytes"));
        }
        let mut runs = Vec::with_capacity(count);
        let mut at = HEADER_BYTES;
        for _ in 0..count {
            let head = buf.get(at..at + RUN_HEADER_BYTES).ok_or(Error::Truncated { needed: at + 8, got: buf.len() })?;
            let off = u32::from_le_bytes(head[..4].try_into().expect("4 bytes"));
            let len = u32::from_le_bytes(head[4..].try_into().expect("4 bytes")) as usize;
            at += RUN_HEADER_BYTES;
            let data = buf.get(at..at + len).ok_or(Error::Truncated { needed: at + len, got: buf.len() })?;
            if (off as usize).checked_add(len).is_none_or(|e| e > view_len) {
                return Err(Error::OutOfRange {
                    what: "web run",
                    offset: off as u64,
                    len: len as u64,
                    limit: view_len as u64,
                });
            }
            runs.push((off, data));
            at += len;
        }
        if at != buf.len() {
            return Err(Error::Malformed("web frame: trailing bytes"));
        }
        Ok(WebFrame { kind, version, base, stamp_ms, runs })
    }

    /// Applies the runs to a copy of the view.
    pub fn apply(&self, view: &mut [u8]) -> Result<()> {
        for &(off, data) in &self.runs {
            let r = off as usize..off as usize + data.len();
            let len = view.len();
            view.get_mut(r)
                .ok_or(Error::OutOfRange {
                    what: "web run",
                    offset: off as u64,
                    len: data.len() as u64,
                    limit: len as u64,
                })?
                .copy_from_slice(data);
        }
        Ok(())
    }
}

/// Builds one frame; the caller adds runs (offsets and bytes from the view).
pub(crate) struct FrameBuilder {
    buf: Vec<u8>,
    runs: u32,
}

impl FrameBuilder {
    pub(crate) fn new(kind: FrameKind, version: u64, base: u64, stamp_ms: f64, capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(capacity + HEADER_BYTES);
        buf.extend_from_slice(&[kind as u8, 0, 0, 0]);
        buf.extend_from_slice(&0u32.to_le_bytes());
        buf.extend_from_slice(&version.to_le_bytes());
        buf.extend_from_slice(&base.to_le_bytes());
        buf.extend_from_slice(&stamp_ms.to_bits().to_le_bytes());
        FrameBuilder { buf, runs: 0 }
    }

    /// Appends `view[range]` as one run (`range` is inside the view, whose
    /// length the hub caps below `u32::MAX`).
    pub(crate) fn run(&mut self, view: &[u8], range: Range<usize>) {
        self.buf.extend_from_slice(&(range.start as u32).to_le_bytes());
        self.buf.extend_from_slice(&(range.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(&view[range]);
        self.runs += 1;
    }

    /// Bytes so far (header included).
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.buf[4..8].copy_from_slice(&self.runs.to_le_bytes());
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects_bad_input() {
        let view: Vec<u8> = (0..100).collect();
        let mut b = FrameBuilder::new(FrameKind::Delta, 8, 6, 1.5, 16);
        b.run(&view, 10..14);
        b.run(&view, 90..100);
        let bytes = b.finish();
        assert_eq!(bytes.len(), HEADER_BYTES + 2 * RUN_HEADER_BYTES + 14);
        let f = WebFrame::decode(&bytes, 100).unwrap();
        assert_eq!((f.kind, f.version, f.base, f.stamp_ms), (FrameKind::Delta, 8, 6, 1.5));
        let mut copy = vec![0u8; 100];
        f.apply(&mut copy).unwrap();
        assert_eq!(&copy[10..14], &view[10..14]);
        assert!(WebFrame::decode(&bytes, 99).is_err()); // run past the view
        assert!(WebFrame::decode(&bytes[..bytes.len() - 1], 100).is_err());
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(WebFrame::decode(&extra, 100).is_err());
        let mut huge = bytes.clone();
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(WebFrame::decode(&huge, 100).is_err());
        huge[0] = 7;
        assert!(matches!(WebFrame::decode(&huge, 100), Err(Error::UnknownFrameType(7))));
    }
}
