//! Update frames: one frame of a snapshot or delta, borrowed from the input.

use super::{FLAG_LAST, FLAG_REPAIR, FLAG_SNAPSHOT, FrameType, HEADER_LEN, RUN_HEAD_LEN, UPDATE_HEAD_LEN, begin, end};
use crate::error::{Error, Result};
use crate::proto::wire::{Reader, put_u32, put_u64};

/// Publisher → mirror: one frame of an update (borrowed from the input).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Update<'a> {
    /// Region id.
    pub region_id: u32,
    /// Publisher epoch.
    pub epoch: u64,
    /// Region version the update is consistent at.
    pub seq: u64,
    /// For a delta: the seq it applies on top of (ignored for snapshots).
    pub base_seq: u64,
    /// Publisher clock (ns since the Unix epoch) when the bytes were captured.
    pub captured_ns: u64,
    /// Index of this frame within the update (0, 1, ...).
    pub part: u32,
    /// [`FLAG_SNAPSHOT`] | [`FLAG_LAST`] | [`FLAG_REPAIR`].
    pub flags: u8,
    run_count: u32,
    runs: &'a [u8],
}

impl<'a> Update<'a> {
    /// Decodes the body of an update frame (structure only).
    pub(super) fn decode(r: &mut Reader<'a>) -> Result<Self> {
        let mut u = Update {
            region_id: r.u32()?,
            epoch: r.u64()?,
            seq: r.u64()?,
            base_seq: r.u64()?,
            captured_ns: r.u64()?,
            part: r.u32()?,
            flags: r.u8()?,
            run_count: r.u32()?,
            runs: &[],
        };
        if u.flags & !(FLAG_SNAPSHOT | FLAG_LAST | FLAG_REPAIR) != 0 {
            return Err(Error::Malformed("unknown update flags"));
        }
        if u.run_count as usize > r.remaining() / RUN_HEAD_LEN {
            return Err(Error::Malformed("run count exceeds body"));
        }
        let runs = r.bytes(r.remaining())?;
        validate_runs(runs, u.run_count)?;
        u.runs = runs;
        Ok(u)
    }

    /// Appends the encoded frame.
    pub(super) fn encode(&self, out: &mut Vec<u8>) {
        let s = encode_update_head(out, self);
        out.extend_from_slice(self.runs);
        finish_update(out, s, self.run_count);
    }

    /// Number of runs.
    pub fn run_count(&self) -> u32 {
        self.run_count
    }

    /// The runs `(virtual offset, bytes)`; validated at decode time.
    pub fn runs(&self) -> impl Iterator<Item = (u64, &'a [u8])> + 'a {
        let mut r = Reader::new(self.runs);
        (0..self.run_count).map_while(move |_| {
            let virt = r.u64().ok()?;
            let len = r.u32().ok()? as usize;
            Some((virt, r.bytes(len).ok()?))
        })
    }

    /// Payload bytes carried (sum of run lengths).
    pub fn payload_len(&self) -> usize {
        self.runs.len() - self.run_count as usize * RUN_HEAD_LEN
    }
}

fn validate_runs(runs: &[u8], count: u32) -> Result<()> {
    let mut r = Reader::new(runs);
    for _ in 0..count {
        let virt = r.u64()?;
        let len = r.u32()? as u64;
        if len == 0 {
            return Err(Error::Malformed("empty run"));
        }
        virt.checked_add(len).ok_or(Error::Malformed("run offset overflows"))?;
        r.bytes(len as usize)?;
    }
    r.finish()
}

/// Starts an update frame in `out` (runs follow via [`push_run`]); returns its start.
pub(crate) fn encode_update_head(out: &mut Vec<u8>, u: &Update<'_>) -> usize {
    let start = begin(out, FrameType::Update);
    put_u32(out, u.region_id);
    put_u64(out, u.epoch);
    put_u64(out, u.seq);
    put_u64(out, u.base_seq);
    put_u64(out, u.captured_ns);
    put_u32(out, u.part);
    out.push(u.flags);
    put_u32(out, 0); // run count, patched by finish_update
    start
}

/// The flags of an update frame's body without decoding it (`None` if the
/// body is too short to hold them).
pub(crate) fn peek_flags(body: &[u8]) -> Option<u8> {
    body.get(UPDATE_HEAD_LEN - 5).copied() // flags, then the 4-byte run count
}

/// Appends one run to an update frame started with [`encode_update_head`].
pub(crate) fn push_run(out: &mut Vec<u8>, virt: u64, data: &[u8]) {
    put_u64(out, virt);
    put_u32(out, data.len() as u32);
    out.extend_from_slice(data);
}

/// Appends only a run header (the caller appends exactly `len` bytes next).
pub(crate) fn push_run_head(out: &mut Vec<u8>, virt: u64, len: u32) {
    put_u64(out, virt);
    put_u32(out, len);
}

/// Patches the run count and body length of an update frame.
pub(crate) fn finish_update(out: &mut [u8], start: usize, run_count: u32) {
    let at = start + HEADER_LEN + UPDATE_HEAD_LEN - 4;
    out[at..at + 4].copy_from_slice(&run_count.to_le_bytes());
    end(out, start);
}

/// Patches the run count and body length of an update frame whose runs
/// (`runs_len` bytes of run headers and data) are written elsewhere, after
/// the head (the zero-copy path: the payload is not in `out`).
pub(crate) fn set_update_len(out: &mut [u8], start: usize, run_count: u32, runs_len: usize) {
    let at = start + HEADER_LEN + UPDATE_HEAD_LEN - 4;
    out[at..at + 4].copy_from_slice(&run_count.to_le_bytes());
    let body = (UPDATE_HEAD_LEN + runs_len) as u32;
    out[start + 4..start + 8].copy_from_slice(&body.to_le_bytes());
}

/// An update header with no runs (for building frames).
#[allow(clippy::too_many_arguments)]
pub(crate) fn update_head(
    region_id: u32,
    epoch: u64,
    seq: u64,
    base_seq: u64,
    captured_ns: u64,
    part: u32,
    flags: u8,
) -> Update<'static> {
    Update { region_id, epoch, seq, base_seq, captured_ns, part, flags, run_count: 0, runs: &[] }
}

/// Encodes a one-frame update (region 0, flag LAST) from `(virt, bytes)` runs.
/// For tests, fuzzing and tools; the publisher builds frames incrementally.
pub fn encode_single_update(epoch: u64, seq: u64, base_seq: u64, snapshot: bool, runs: &[(u64, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let flags = FLAG_LAST | if snapshot { FLAG_SNAPSHOT } else { 0 };
    let at = encode_update_head(&mut out, &update_head(0, epoch, seq, base_seq, 0, 0, flags));
    for (v, d) in runs {
        push_run(&mut out, *v, d);
    }
    finish_update(&mut out, at, runs.len() as u32);
    out
}
