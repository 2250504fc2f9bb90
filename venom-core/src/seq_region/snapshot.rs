//! Consistent multi-chunk reads for replication publishers.

use super::SeqRegion;
use crate::atomic_copy;
use crate::error::{Error, Result};

/// One span of a [`ChunkSnapshot`]: a whole chunk ([`SeqRegion::snapshot_all`])
/// or a run of dirty pages inside one chunk ([`SeqRegion::snapshot_since`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkRef {
    /// Index of the chunk the span lies in.
    pub index: usize,
    /// Version of the last write that touched the span.
    pub version: u64,
    /// Byte offset of the span in the region.
    pub offset: usize,
    /// Length in bytes (the last chunk may be shorter than the chunk size).
    pub len: usize,
    /// Where the span's bytes start in [`ChunkSnapshot::data`].
    pub data_offset: usize,
}

/// Spans read together in one consistent seqlock window. Reuse one value
/// across calls to avoid reallocating.
#[derive(Clone, Debug, Default)]
pub struct ChunkSnapshot {
    /// Region version the chunks are consistent at.
    pub version: u64,
    /// The spans, in offset order.
    pub chunks: Vec<ChunkRef>,
    /// The spans' bytes, concatenated in `chunks` order.
    pub data: Vec<u8>,
}

impl ChunkSnapshot {
    /// The bytes of `chunk`.
    pub fn bytes(&self, chunk: &ChunkRef) -> &[u8] {
        &self.data[chunk.data_offset..chunk.data_offset + chunk.len]
    }
}

impl SeqRegion {
    /// Every page (see [`SeqRegion::page_size`]) whose version is above
    /// `since`, read in one consistent window, as one span per run of dirty
    /// pages inside a chunk; `snap.version` is the region version they are
    /// consistent at. Bytes not listed have not changed since `since`. Only
    /// the pages of chunks that changed are looked at, and only dirty pages
    /// are copied.
    ///
    /// ```
    /// use venom_core::{ChunkSnapshot, RegionConfig, SeqWriter};
    /// let name = format!("doc-snap-{}", std::process::id());
    /// let mut w = SeqWriter::create(&name, RegionConfig::new(4096).chunk_size(1024))?;
    /// let v1 = w.write_at(0, &[1; 10])?;
    /// w.write_at(3000, &[2; 10])?;
    /// let mut snap = ChunkSnapshot::default();
    /// w.snapshot_since(v1, &mut snap)?;
    /// assert_eq!(snap.chunks.len(), 1);
    /// assert_eq!(snap.chunks[0].index, 2);
    /// // 64 KiB chunks, 4 KiB pages: a small write costs one page.
    /// let mut big = SeqWriter::create(&format!("{name}-big"), RegionConfig::new(1 << 20))?;
    /// let v = big.version();
    /// big.write_at(70_000, &[3; 8])?;
    /// big.snapshot_since(v, &mut snap)?;
    /// assert_eq!((snap.chunks[0].index, snap.chunks[0].offset, snap.chunks[0].len), (1, 69_632, 4096));
    /// big.unlink()?;
    /// w.unlink()?;
    /// # Ok::<(), venom_core::Error>(())
    /// ```
    pub fn snapshot_since(&self, since: u64, snap: &mut ChunkSnapshot) -> Result<()> {
        self.snapshot(Some(since), snap)
    }

    /// Every chunk, read in one consistent window (a full snapshot).
    pub fn snapshot_all(&self, snap: &mut ChunkSnapshot) -> Result<()> {
        self.snapshot(None, snap)
    }

    fn snapshot(&self, since: Option<u64>, snap: &mut ChunkSnapshot) -> Result<()> {
        let chunk = self.chunk_size();
        let size = self.size;
        let version = self.consistent(|s| {
            snap.chunks.clear();
            let mut at = 0;
            let chunks = &mut snap.chunks;
            match since {
                Some(since) => {
                    let page_shift = self.page_shift;
                    self.dirty().scan_pages(since, |index, first, end, version| {
                        let offset = first << page_shift;
                        let len = (end << page_shift).min(size) - offset;
                        chunks.push(ChunkRef { index, version, offset, len, data_offset: at });
                        at += len;
                    })
                }
                None => {
                    for (index, v) in self.versions().iter().enumerate() {
                        let offset = index * chunk;
                        let len = chunk.min(size - offset);
                        let version = v.load(crate::loom::sync::Ordering::Relaxed);
                        chunks.push(ChunkRef { index, version, offset, len, data_offset: at });
                        at += len;
                    }
                }
            }
            // Copied straight into the buffer's spare capacity: a first
            // (e.g. 64 MiB) snapshot is not zero-filled before being overwritten.
            snap.data.clear();
            snap.data.reserve(at);
            let spare = &mut snap.data.spare_capacity_mut()[..at];
            for c in snap.chunks.iter() {
                // SAFETY: offset + len <= size by construction.
                unsafe { atomic_copy::load_uninit(self.data.add(c.offset), &mut spare[c.data_offset..][..c.len]) };
            }
            // SAFETY: the spans tile `0..at` (each `data_offset` is the sum
            // of the lengths before it), so every byte below `at` was written.
            unsafe { snap.data.set_len(at) };
            Ok::<_, Error>(self.validated(s, s))
        })?;
        snap.version = version;
        Ok(())
    }

    /// Reads chunk `index` consistently into `buf` (at least the chunk's
    /// length). Returns `(region version, chunk version)`.
    pub fn read_chunk(&self, index: usize, buf: &mut [u8]) -> Result<(u64, u64)> {
        if index >= self.chunk_count {
            return Err(Error::OutOfBounds {
                offset: index.saturating_mul(self.chunk_size()),
                len: 0,
                size: self.size,
            });
        }
        let offset = index * self.chunk_size();
        let len = self.chunk_size().min(self.size - offset);
        if buf.len() < len {
            return Err(Error::BufferTooSmall { needed: len, got: buf.len() });
        }
        self.consistent(|s| {
            let v = self.versions()[index].load(crate::loom::sync::Ordering::Relaxed);
            // SAFETY: offset + len <= size.
            unsafe { atomic_copy::load(self.data.add(offset), &mut buf[..len]) };
            Ok::<_, Error>(self.validated(s, (s, v)))
        })
    }
}
