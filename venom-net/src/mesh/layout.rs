//! Which peer owns which block of the shared array.

use crate::proto::subscription::{CompiledSubscription, Subscription};
use crate::{Dtype, Error, Result};
use std::ops::Range;

/// One owned block: index ranges (one per dimension) of the shared array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartSpec {
    /// The owning peer's id (also the DNS name in its certificate).
    pub owner: String,
    /// The block, one range per dimension.
    pub ranges: Vec<Range<u64>>,
}

/// The shared array and its split into owned parts.
///
/// Invariants (checked by [`MeshLayout::new`]): parts are valid slices of
/// `shape`, pairwise disjoint, owners unique. Part `k` is stored packed
/// (row-major) in its own region of [`part_len(k)`](Self::part_len) bytes.
///
/// ```
/// use venom_net::{mesh::MeshLayout, Dtype};
/// let l = MeshLayout::quadrants(Dtype::U32, 8, 8, ["a", "b", "c", "d"])?;
/// assert_eq!(l.part_len(l.part_of("b")?), 4 * 4 * 4);
/// # Ok::<(), venom_net::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct MeshLayout {
    dtype: Dtype,
    shape: Vec<u64>,
    parts: Vec<PartSpec>,
    /// `runs[k]`: part `k` compiled against the whole array; `src` = offset
    /// in the whole array, `dst` = offset in the packed part.
    runs: Vec<CompiledSubscription>,
    whole_len: u64,
}

impl MeshLayout {
    /// Validates a layout.
    pub fn new(dtype: Dtype, shape: &[u64], parts: Vec<PartSpec>) -> Result<Self> {
        let whole_len = shape
            .iter()
            .try_fold(dtype.size(), |a, &d| a.checked_mul(d))
            .filter(|_| !shape.is_empty())
            .ok_or_else(|| Error::InvalidSubscription("mesh array shape overflows or is empty".into()))?;
        let mut runs = Vec::with_capacity(parts.len());
        let mut spans = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            if parts[..i].iter().any(|q| q.owner == p.owner) {
                return Err(Error::InvalidSubscription(format!("peer {:?} owns two parts", p.owner)));
            }
            let c = Subscription::slice(0, dtype, shape, &p.ranges, 0).compile(whole_len)?;
            spans.extend(c.runs().iter().map(|r| (r.src, r.src + r.len)));
            runs.push(c);
        }
        spans.sort_unstable();
        if spans.windows(2).any(|w| w[0].1 > w[1].0) {
            return Err(Error::InvalidSubscription("mesh parts overlap".into()));
        }
        Ok(MeshLayout { dtype, shape: shape.to_vec(), parts, runs, whole_len })
    }

    /// A `rows x cols` array split into four quadrants owned by `owners`
    /// (top-left, top-right, bottom-left, bottom-right).
    pub fn quadrants(dtype: Dtype, rows: u64, cols: u64, owners: [&str; 4]) -> Result<Self> {
        let (r, c) = (rows / 2, cols / 2);
        let blocks = [(0..r, 0..c), (0..r, c..cols), (r..rows, 0..c), (r..rows, c..cols)];
        let parts = owners
            .iter()
            .zip(blocks)
            .map(|(o, (rr, cc))| PartSpec { owner: (*o).to_owned(), ranges: vec![rr, cc] })
            .collect();
        Self::new(dtype, &[rows, cols], parts)
    }

    /// Element type.
    pub fn dtype(&self) -> Dtype {
        self.dtype
    }

    /// Shape of the whole array.
    pub fn shape(&self) -> &[u64] {
        &self.shape
    }

    /// The parts.
    pub fn parts(&self) -> &[PartSpec] {
        &self.parts
    }

    /// Index of the part `owner` owns.
    pub fn part_of(&self, owner: &str) -> Result<usize> {
        self.parts
            .iter()
            .position(|p| p.owner == owner)
            .ok_or_else(|| Error::NotOwner { peer: owner.to_owned(), part: "(none)".into() })
    }

    /// Bytes of part `k` (packed).
    pub fn part_len(&self, k: usize) -> usize {
        self.runs[k].total_len() as usize
    }

    /// Shape of part `k`.
    pub fn part_shape(&self, k: usize) -> Vec<u64> {
        self.parts[k].ranges.iter().map(|r| r.end - r.start).collect()
    }

    /// Bytes of the whole array.
    pub fn whole_len(&self) -> usize {
        self.whole_len as usize
    }

    /// Copies packed part `k` into its place in `whole` (`whole_len()` bytes).
    pub fn place(&self, k: usize, packed: &[u8], whole: &mut [u8]) {
        for r in self.runs[k].runs() {
            let (s, d, n) = (r.src as usize, r.dst as usize, r.len as usize);
            if let (Some(to), Some(from)) = (whole.get_mut(s..s + n), packed.get(d..d + n)) {
                to.copy_from_slice(from);
            }
        }
    }
}
