//! What part of the published region a mirror wants, and where each part goes
//! in the mirror's local region.
//!
//! A [`Subscription`] is a list of [`Part`]s: the whole region, a byte range,
//! or an n-dimensional slice of a typed, C-ordered (row-major) array. Both
//! peers *compile* it against the published region size into the same list
//! of contiguous [`Run`]s `(src, len, dst)`, sorted by `src`. The runs are
//! numbered by a **virtual offset** (`virt`): the position of the run's first
//! byte in the concatenation of all subscribed bytes in source order. Update
//! frames address bytes by virtual offset, so a mirror can check every
//! incoming write against its own compiled table and never writes outside
//! its subscription.
//!
//! Limits: at most [`MAX_PARTS`] parts, [`MAX_NDIM`] dimensions per slice and
//! [`MAX_RUNS`] compiled runs; source ranges of different parts must not
//! overlap, nor may destination ranges.

use crate::error::{Error, Result};
use crate::proto::wire::{Reader, put_u16, put_u64};
use crate::proto::wire_code::wire_code_enum;
use std::ops::Range;

/// Most parts in one subscription.
pub const MAX_PARTS: usize = 64;
/// Most dimensions of a sliced array.
pub const MAX_NDIM: usize = 8;
/// Most contiguous runs a subscription may compile to.
pub const MAX_RUNS: usize = 1 << 16;

/// Declares [`Dtype`] from one table: each element type's wire code and
/// the Rust type whose size it has.
macro_rules! dtypes {
    ($($variant:ident = $code:literal: $rust:ty,)+) => {
        wire_code_enum! {
            /// Element type of a typed array (only its size matters for slicing).
            #[allow(missing_docs)]
            pub enum Dtype {
                $($variant = $code,)+
            }
        }

        impl Dtype {
            /// Size of one element in bytes.
            pub fn size(self) -> u64 {
                match self {
                    $(Dtype::$variant => core::mem::size_of::<$rust>() as u64,)+
                }
            }
        }
    };
}

dtypes! {
    U8 = 0: u8,
    I8 = 1: i8,
    U16 = 2: u16,
    I16 = 3: i16,
    U32 = 4: u32,
    I32 = 5: i32,
    F32 = 6: f32,
    U64 = 7: u64,
    I64 = 8: i64,
    F64 = 9: f64,
}

/// One piece of a subscription. `dst` is the offset in the mirror's local region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// The whole published region.
    Whole {
        /// Local destination offset.
        dst: u64,
    },
    /// `len` bytes starting at `src`.
    Range {
        /// Source offset in the published region.
        src: u64,
        /// Length in bytes (> 0).
        len: u64,
        /// Local destination offset.
        dst: u64,
    },
    /// An n-D slice of a C-ordered array of `dtype` with `shape` stored at
    /// `base`; the selected elements are packed densely (row-major) at `dst`.
    Slice {
        /// Source offset of element `[0, .., 0]`.
        base: u64,
        /// Element type.
        dtype: Dtype,
        /// Array shape (each dimension > 0).
        shape: Vec<u64>,
        /// Selected index range per dimension (`start < end <= shape[i]`).
        ranges: Vec<Range<u64>>,
        /// Local destination offset.
        dst: u64,
    },
}

/// A mirror's subscription: a list of parts.
///
/// ```
/// use venom_net::{Dtype, Subscription};
/// // rows 10..20 x cols 0..64 of a 256x256 f64 grid at offset 0, packed at local offset 0
/// let sub = Subscription::slice(0, Dtype::F64, &[256, 256], &[10..20, 0..64], 0);
/// let runs = sub.compile(256 * 256 * 8).unwrap();
/// assert_eq!(runs.runs().len(), 10);
/// assert_eq!(runs.total_len(), 10 * 64 * 8);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subscription {
    /// The parts, in any order.
    pub parts: Vec<Part>,
}

/// One contiguous subscribed byte run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// Source offset in the published region.
    pub src: u64,
    /// Length in bytes (> 0).
    pub len: u64,
    /// Destination offset in the mirror's local region.
    pub dst: u64,
    /// Virtual offset: sum of the lengths of all runs with a smaller `src`.
    pub virt: u64,
}

/// A compiled subscription.
///
/// Invariants: `runs` is sorted by `src` (equivalently by `virt`), source
/// ranges are disjoint and inside the region, destination ranges are
/// disjoint, `runs[i].virt == sum(runs[..i].len)`, `total == sum(len)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledSubscription {
    runs: Vec<Run>,
    total: u64,
}

impl Subscription {
    /// The whole region, placed at local offset 0.
    pub fn whole() -> Self {
        Subscription { parts: vec![Part::Whole { dst: 0 }] }
    }

    /// One byte range `src..src+len` placed at local `dst`.
    pub fn range(src: u64, len: u64, dst: u64) -> Self {
        Subscription { parts: vec![Part::Range { src, len, dst }] }
    }

    /// One n-D slice (see [`Part::Slice`]).
    pub fn slice(base: u64, dtype: Dtype, shape: &[u64], ranges: &[Range<u64>], dst: u64) -> Self {
        Subscription { parts: vec![Part::Slice { base, dtype, shape: shape.to_vec(), ranges: ranges.to_vec(), dst }] }
    }

    /// Adds a part.
    pub fn with(mut self, part: Part) -> Self {
        self.parts.push(part);
        self
    }

    /// Compiles against a published region of `region_size` bytes.
    pub fn compile(&self, region_size: u64) -> Result<CompiledSubscription> {
        if self.parts.is_empty() || self.parts.len() > MAX_PARTS {
            return Err(Error::InvalidSubscription(format!("{} parts (1..={MAX_PARTS} allowed)", self.parts.len())));
        }
        let mut runs: Vec<Run> = Vec::new();
        for part in &self.parts {
            compile_part(part, region_size, &mut runs)?;
        }
        runs.sort_by_key(|r| r.src);
        let mut virt = 0u64;
        for i in 0..runs.len() {
            if i > 0 && runs[i - 1].src + runs[i - 1].len > runs[i].src {
                return Err(Error::InvalidSubscription("source ranges overlap".into()));
            }
            runs[i].virt = virt;
            virt += runs[i].len; // cannot overflow: disjoint ranges inside region_size
        }
        let mut by_dst: Vec<(u64, u64)> = runs.iter().map(|r| (r.dst, r.len)).collect();
        by_dst.sort_unstable();
        for w in by_dst.windows(2) {
            if w[0].0 + w[0].1 > w[1].0 {
                return Err(Error::InvalidSubscription("destination ranges overlap".into()));
            }
        }
        Ok(CompiledSubscription { runs, total: virt })
    }

    /// Appends the wire encoding.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        put_u16(out, self.parts.len() as u16);
        for p in &self.parts {
            match p {
                Part::Whole { dst } => {
                    out.push(0);
                    put_u64(out, *dst);
                }
                Part::Range { src, len, dst } => {
                    out.push(1);
                    for v in [*src, *len, *dst] {
                        put_u64(out, v);
                    }
                }
                Part::Slice { base, dtype, shape, ranges, dst } => {
                    out.push(2);
                    out.push(*dtype as u8);
                    out.push(shape.len() as u8);
                    put_u64(out, *base);
                    for (dim, r) in shape.iter().zip(ranges) {
                        for v in [*dim, r.start, r.end] {
                            put_u64(out, v);
                        }
                    }
                    put_u64(out, *dst);
                }
            }
        }
    }

    /// Decodes the wire encoding (structure only; [`compile`](Self::compile) checks bounds).
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let n = r.u16()? as usize;
        if n == 0 || n > MAX_PARTS {
            return Err(Error::Malformed("subscription part count out of range"));
        }
        let mut parts = Vec::with_capacity(n);
        for _ in 0..n {
            parts.push(match r.u8()? {
                0 => Part::Whole { dst: r.u64()? },
                1 => Part::Range { src: r.u64()?, len: r.u64()?, dst: r.u64()? },
                2 => {
                    let dtype = Dtype::from_code(r.u8()?).ok_or(Error::Malformed("unknown dtype"))?;
                    let ndim = r.u8()? as usize;
                    if ndim == 0 || ndim > MAX_NDIM {
                        return Err(Error::Malformed("slice dimension count out of range"));
                    }
                    let base = r.u64()?;
                    let (mut shape, mut ranges) = (Vec::with_capacity(ndim), Vec::with_capacity(ndim));
                    for _ in 0..ndim {
                        shape.push(r.u64()?);
                        ranges.push(r.u64()?..r.u64()?);
                    }
                    Part::Slice { base, dtype, shape, ranges, dst: r.u64()? }
                }
                _ => return Err(Error::Malformed("unknown subscription part kind")),
            });
        }
        Ok(Subscription { parts })
    }
}

fn bad(msg: impl Into<String>) -> Error {
    Error::InvalidSubscription(msg.into())
}

fn push_run(runs: &mut Vec<Run>, src: u64, len: u64, dst: u64, region_size: u64) -> Result<()> {
    let end = src.checked_add(len).ok_or_else(|| bad("source range overflows"))?;
    if len == 0 || end > region_size {
        return Err(Error::OutOfRange { what: "subscription source", offset: src, len, limit: region_size });
    }
    dst.checked_add(len).ok_or_else(|| bad("destination range overflows"))?;
    if runs.len() >= MAX_RUNS {
        return Err(bad(format!("more than {MAX_RUNS} runs")));
    }
    runs.push(Run { src, len, dst, virt: 0 });
    Ok(())
}

fn compile_part(part: &Part, region_size: u64, runs: &mut Vec<Run>) -> Result<()> {
    match part {
        Part::Whole { dst } => push_run(runs, 0, region_size, *dst, region_size),
        Part::Range { src, len, dst } => push_run(runs, *src, *len, *dst, region_size),
        Part::Slice { base, dtype, shape, ranges, dst } => {
            let n = shape.len();
            if n == 0 || n > MAX_NDIM || ranges.len() != n {
                return Err(bad("slice needs 1..=8 dimensions and one range per dimension"));
            }
            // Array size must fit in the region (checked multiplication).
            let mut array_len = dtype.size();
            for (&dim, r) in shape.iter().zip(ranges) {
                if dim == 0 || r.start >= r.end || r.end > dim {
                    return Err(bad(format!("range {r:?} invalid for dimension of {dim}")));
                }
                array_len = array_len.checked_mul(dim).ok_or_else(|| bad("array size overflows"))?;
            }
            let array_end = base.checked_add(array_len).ok_or_else(|| bad("array end overflows"))?;
            if array_end > region_size {
                return Err(Error::OutOfRange { what: "array", offset: *base, len: array_len, limit: region_size });
            }
            // strides[i] = bytes between consecutive indices of dimension i.
            let mut strides = vec![dtype.size(); n];
            for i in (0..n - 1).rev() {
                strides[i] = strides[i + 1] * shape[i + 1];
            }
            // Dimensions j+1.. are fully selected: one run covers range j and everything inside.
            let mut j = n - 1;
            while j > 0 && ranges[j].start == 0 && ranges[j].end == shape[j] {
                j -= 1;
            }
            let run_len = (ranges[j].end - ranges[j].start) * strides[j];
            let mut idx: Vec<u64> = ranges[..j].iter().map(|r| r.start).collect();
            let mut out = *dst;
            loop {
                let mut src = *base + ranges[j].start * strides[j];
                for (i, &k) in idx.iter().enumerate() {
                    src += k * strides[i];
                }
                push_run(runs, src, run_len, out, region_size)?;
                out = out.checked_add(run_len).ok_or_else(|| bad("destination overflows"))?;
                // Odometer increment over dimensions 0..j.
                let mut d = j;
                loop {
                    if d == 0 {
                        return Ok(());
                    }
                    d -= 1;
                    idx[d] += 1;
                    if idx[d] < ranges[d].end {
                        break;
                    }
                    idx[d] = ranges[d].start;
                }
            }
        }
    }
}

impl CompiledSubscription {
    /// The runs, sorted by source (and virtual) offset.
    pub fn runs(&self) -> &[Run] {
        &self.runs
    }

    /// Total subscribed bytes.
    pub fn total_len(&self) -> u64 {
        self.total
    }

    /// One past the highest local destination byte.
    pub fn dst_end(&self) -> u64 {
        self.runs.iter().map(|r| r.dst + r.len).max().unwrap_or(0)
    }

    /// Index of the first run whose source range ends after `offset`.
    pub(crate) fn first_run_ending_after(&self, offset: u64) -> usize {
        self.runs.partition_point(|r| r.src + r.len <= offset)
    }

    /// Maps the virtual range `virt..virt+len` to local `(dst, len, skip)` pieces,
    /// where `skip` is the offset of the piece inside the virtual range.
    /// Fails if the range leaves the subscription.
    pub fn map_virtual(&self, virt: u64, len: u64, mut f: impl FnMut(u64, u64, u64)) -> Result<()> {
        let end = virt.checked_add(len).filter(|&e| e <= self.total && len > 0).ok_or(Error::OutOfRange {
            what: "update run",
            offset: virt,
            len,
            limit: self.total,
        })?;
        let mut i = self.runs.partition_point(|r| r.virt + r.len <= virt);
        let mut pos = virt;
        while pos < end {
            let r = &self.runs[i]; // exists: pos < end <= total
            let within = pos - r.virt;
            let n = (r.len - within).min(end - pos);
            f(r.dst + within, n, pos - virt);
            pos += n;
            i += 1;
        }
        Ok(())
    }
}
