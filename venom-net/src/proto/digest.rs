//! Incremental integrity digests: a Merkle tree over per-chunk blake3 digests
//! of the subscribed bytes (in virtual order).
//!
//! The subscribed bytes are cut into [`DIGEST_CHUNK`]-byte chunks (the last
//! one may be shorter). Each chunk has a *leaf* digest, leaves are combined
//! pairwise up a binary tree, and the *root* binds the tree to the total
//! length:
//!
//! ```text
//! leaf(i)  = blake3_keyed(K_leaf, chunk i)
//! node     = blake3_keyed(K_node, left ‖ right)       (missing leaves: 32 zero bytes)
//! root     = blake3_keyed(K_root, len as u64 LE ‖ top node)
//! ```
//!
//! with the three keys derived from fixed context strings
//! (`blake3::derive_key`). A write marks the chunks it touched dirty
//! ([`ChunkDigests::mark`], O(1) per chunk, no hashing); [`ChunkDigests::refresh`]
//! later rehashes only the dirty chunks and their O(log n) ancestors. So
//! keeping the root current costs O(bytes of dirty chunks), never
//! O(subscription), except after a snapshot (every chunk is new).
//!
//! Both sides compute the root the same way — the publisher over its shadow
//! of the subscribed bytes, the mirror over its local copy mapped through the
//! compiled subscription — so equal roots mean equal subscribed bytes, for
//! ranges, n-D slices and named arrays alike.
//!
//! ```
//! use venom_net::proto::digest::ChunkDigests;
//! let mut data = vec![7u8; 100_000];
//! let mut d = ChunkDigests::new(data.len() as u64);
//! d.refresh(usize::MAX, |virt, len| Ok(ChunkDigests::leaf(&data[virt as usize..][..len])))?;
//! let before = d.root().unwrap();
//! data[50_000] = 8;
//! d.mark(50_000, 1); // only this chunk is rehashed
//! assert!(d.root().is_none(), "no root while chunks are dirty");
//! assert_eq!(d.refresh(usize::MAX, |virt, len| Ok(ChunkDigests::leaf(&data[virt as usize..][..len])))?, 0);
//! assert_ne!(d.root().unwrap(), before);
//! # Ok::<(), venom_net::Error>(())
//! ```

use crate::error::Result;
use std::sync::OnceLock;

/// Bytes per digest chunk (16 KiB: blake3 runs near full SIMD speed on
/// 16 KiB inputs, and a 64-byte write costs one 16 KiB hash, ~4 µs).
pub const DIGEST_CHUNK: usize = 16 << 10;

struct Keys {
    leaf: [u8; 32],
    node: [u8; 32],
    root: [u8; 32],
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        leaf: blake3::derive_key("venom-net 2026 digest leaf v1", b""),
        node: blake3::derive_key("venom-net 2026 digest node v1", b""),
        root: blake3::derive_key("venom-net 2026 digest root v1", b""),
    })
}

/// Per-chunk digests of `len` bytes and the Merkle tree over them.
///
/// Invariants: `width` is a power of two `>= chunks`; `nodes.len() == 2 * width`
/// (node 1 is the top, node `i` has children `2i` and `2i + 1`, leaf `k` is
/// node `width + k`); `dirty` has one bit per chunk and `dirty_count` of them
/// are set; every node whose subtree holds no dirty leaf is current.
pub struct ChunkDigests {
    len: u64,
    chunks: usize,
    width: usize,
    nodes: Vec<[u8; 32]>,
    dirty: Vec<u64>,
    dirty_count: usize,
    /// Chunks whose leaf changed since [`clear_suspects`](Self::clear_suspects)
    /// (the last verified root): where a mismatch most likely comes from.
    suspect: Vec<u64>,
    suspect_count: usize,
    /// Next chunk the scrubber re-verifies (round robin).
    scrub_at: usize,
}

impl ChunkDigests {
    /// Digests for `len` subscribed bytes; every chunk starts dirty.
    pub fn new(len: u64) -> Self {
        let chunks = len.div_ceil(DIGEST_CHUNK as u64) as usize;
        let width = chunks.max(1).next_power_of_two();
        let mut d = ChunkDigests {
            len,
            chunks,
            width,
            nodes: vec![[0; 32]; 2 * width],
            dirty: vec![0; chunks.div_ceil(64)],
            dirty_count: 0,
            suspect: vec![0; chunks.div_ceil(64)],
            suspect_count: 0,
            scrub_at: 0,
        };
        d.mark_all();
        d
    }

    /// The leaf digest of one chunk's bytes.
    pub fn leaf(bytes: &[u8]) -> [u8; 32] {
        *blake3::keyed_hash(&keys().leaf, bytes).as_bytes()
    }

    /// Total bytes covered.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when no bytes are covered.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of chunks.
    pub fn chunks(&self) -> usize {
        self.chunks
    }

    /// Number of chunks waiting to be rehashed.
    pub fn dirty_chunks(&self) -> usize {
        self.dirty_count
    }

    /// Marks the chunks overlapping `virt..virt+len` dirty (clamped to the covered bytes).
    pub fn mark(&mut self, virt: u64, len: u64) {
        if len == 0 || virt >= self.len {
            return;
        }
        let end = virt.saturating_add(len).min(self.len);
        let first = (virt / DIGEST_CHUNK as u64) as usize;
        let last = ((end - 1) / DIGEST_CHUNK as u64) as usize;
        for k in first..=last {
            self.mark_chunk(k);
        }
    }

    /// Marks every chunk dirty (after a snapshot replaced all bytes).
    pub fn mark_all(&mut self) {
        for k in 0..self.chunks {
            self.mark_chunk(k);
        }
    }

    /// Marks the next `count` chunks (round robin) dirty, so the next
    /// [`refresh`](Self::refresh) re-reads them: a background scrub that
    /// catches changes made behind the state machine's back within
    /// `chunks / count` rounds.
    pub fn scrub(&mut self, count: usize) {
        for _ in 0..count.min(self.chunks) {
            self.mark_chunk(self.scrub_at);
            self.scrub_at = (self.scrub_at + 1) % self.chunks;
        }
    }

    fn mark_chunk(&mut self, k: usize) {
        let (w, b) = (k / 64, 1u64 << (k % 64));
        if self.dirty[w] & b == 0 {
            self.dirty[w] |= b;
            self.dirty_count += 1;
        }
    }

    /// Rehashes up to `max_chunks` dirty chunks (lowest first) with
    /// `leaf(virt, len)` (which must return [`ChunkDigests::leaf`] of those
    /// bytes) and updates their ancestors. Returns the dirty chunks left.
    pub fn refresh(
        &mut self,
        max_chunks: usize,
        mut leaf: impl FnMut(u64, usize) -> Result<[u8; 32]>,
    ) -> Result<usize> {
        let mut touched: Vec<usize> = Vec::new();
        let mut w = 0;
        while w < self.dirty.len() && touched.len() < max_chunks {
            while self.dirty[w] != 0 && touched.len() < max_chunks {
                let bit = self.dirty[w].trailing_zeros() as usize;
                let k = w * 64 + bit;
                let virt = k as u64 * DIGEST_CHUNK as u64;
                let n = (self.len - virt).min(DIGEST_CHUNK as u64) as usize;
                let new = leaf(virt, n)?;
                let changed = self.nodes[self.width + k] != new;
                self.nodes[self.width + k] = new;
                self.dirty[w] &= !(1u64 << bit);
                self.dirty_count -= 1;
                if changed && self.suspect[w] & (1u64 << bit) == 0 {
                    self.suspect[w] |= 1u64 << bit;
                    self.suspect_count += 1;
                }
                touched.push(self.width + k);
            }
            w += 1;
        }
        // Recompute the ancestors level by level (each parent once).
        while touched.first().is_some_and(|&i| i > 1) {
            for i in touched.iter_mut() {
                *i /= 2;
            }
            touched.dedup(); // sorted: leaves were visited in increasing order
            for &i in &touched {
                let mut h = blake3::Hasher::new_keyed(&keys().node);
                h.update(&self.nodes[2 * i]);
                h.update(&self.nodes[2 * i + 1]);
                self.nodes[i] = *h.finalize().as_bytes();
            }
        }
        Ok(self.dirty_count)
    }

    /// The chunks whose leaf changed since the last
    /// [`clear_suspects`](Self::clear_suspects), in increasing order, or
    /// `None` if there are more than `max`.
    pub fn suspects(&self, max: usize) -> Option<Vec<u32>> {
        if self.suspect_count > max {
            return None;
        }
        let mut v = Vec::with_capacity(self.suspect_count);
        for (w, &bits) in self.suspect.iter().enumerate() {
            let mut b = bits;
            while b != 0 {
                v.push((w * 64 + b.trailing_zeros() as usize) as u32);
                b &= b - 1;
            }
        }
        Some(v)
    }

    /// Forgets the suspects (call when the root was verified).
    pub fn clear_suspects(&mut self) {
        self.suspect.iter_mut().for_each(|w| *w = 0);
        self.suspect_count = 0;
    }

    /// The root, or `None` while chunks are dirty.
    pub fn root(&self) -> Option<[u8; 32]> {
        if self.dirty_count != 0 {
            return None;
        }
        let mut h = blake3::Hasher::new_keyed(&keys().root);
        h.update(&self.len.to_le_bytes());
        h.update(&self.nodes[1]);
        Some(*h.finalize().as_bytes())
    }
}

/// The root of `bytes` computed from scratch (tests and tools).
pub fn root_of(bytes: &[u8]) -> [u8; 32] {
    let mut d = ChunkDigests::new(bytes.len() as u64);
    let _ = d.refresh(usize::MAX, |virt, len| Ok(ChunkDigests::leaf(&bytes[virt as usize..][..len])));
    d.root().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refresh_all(d: &mut ChunkDigests, data: &[u8]) {
        d.refresh(usize::MAX, |v, n| Ok(ChunkDigests::leaf(&data[v as usize..][..n]))).unwrap();
    }

    #[test]
    fn incremental_equals_from_scratch() {
        for len in [0usize, 1, DIGEST_CHUNK, DIGEST_CHUNK + 1, 5 * DIGEST_CHUNK + 77] {
            let mut data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let mut d = ChunkDigests::new(len as u64);
            refresh_all(&mut d, &data);
            assert_eq!(d.root().unwrap(), root_of(&data));
            if len > 3 {
                data[len - 2] ^= 1;
                d.mark(len as u64 - 2, 1);
                // A bounded refresh leaves the rest for later.
                d.mark(0, len as u64);
                let left = d.refresh(1, |v, n| Ok(ChunkDigests::leaf(&data[v as usize..][..n]))).unwrap();
                assert_eq!(left, d.chunks() - 1);
                refresh_all(&mut d, &data);
                assert_eq!(d.root().unwrap(), root_of(&data), "len {len}");
            }
        }
    }

    #[test]
    fn roots_bind_length_and_content() {
        assert_ne!(root_of(&[0u8; 10]), root_of(&[0u8; 11]));
        assert_ne!(root_of(&[1u8; 40_000]), root_of(&[2u8; 40_000]));
        let mut a = vec![0u8; 3 * DIGEST_CHUNK];
        let r = root_of(&a);
        a[2 * DIGEST_CHUNK] = 1;
        assert_ne!(root_of(&a), r);
    }

    #[test]
    fn scrub_revisits_every_chunk() {
        let data = vec![3u8; 4 * DIGEST_CHUNK];
        let mut d = ChunkDigests::new(data.len() as u64);
        refresh_all(&mut d, &data);
        let mut seen = [false; 4];
        for _ in 0..4 {
            d.scrub(1);
            d.refresh(usize::MAX, |v, n| {
                seen[v as usize / DIGEST_CHUNK] = true;
                Ok(ChunkDigests::leaf(&data[v as usize..][..n]))
            })
            .unwrap();
        }
        assert!(seen.iter().all(|&s| s));
    }
}
