//! Encoded frames as byte chunks, for a transport write without copies.
//!
//! A publisher frame is small parts (frame and run headers, control
//! frames) and large payload slices of shared, immutable buffers (a
//! [`ShadowView`](crate::proto::encoder::ShadowView)'s chunks, a backlog
//! delta's encoded frames). [`Transmit`] copies the small parts into one
//! buffer and references the large slices as [`Bytes`] that share the
//! buffer's allocation, so the I/O shell hands them to quinn
//! (`SendStream::write_all_chunks`) without copying a payload byte. The
//! bytes are the same as those [`PublisherSession::poll_transmit`](crate::proto::publisher::PublisherSession::poll_transmit)
//! appends to a `Vec<u8>`.
//!
//! A referenced chunk stays pinned until the transport drops it (quinn:
//! once the peer acknowledged it), so a writer that changes it meanwhile
//! costs the encoder one copy-on-write of that chunk, as while any session
//! still cuts a snapshot from the view.

use bytes::Bytes;
use std::sync::Arc;

/// Payload slices shorter than this are copied: a shared slice costs an
/// allocation and reference counting, more than copying a few KiB.
pub(crate) const SHARE_MIN: usize = 4096;

/// Where a publisher session writes encoded frames.
pub(crate) trait FrameSink {
    /// The buffer small parts (headers, control frames) are appended to.
    fn head(&mut self) -> &mut Vec<u8>;
    /// Appends `buf[at..at + len]` (in bounds); the sink may reference the
    /// shared buffer instead of copying it.
    fn shared(&mut self, buf: &Arc<Vec<u8>>, at: usize, len: usize);
}

impl FrameSink for Vec<u8> {
    fn head(&mut self) -> &mut Vec<u8> {
        self
    }

    fn shared(&mut self, buf: &Arc<Vec<u8>>, at: usize, len: usize) {
        self.extend_from_slice(&buf[at..at + len]);
    }
}

/// Encoded frames as an ordered list of [`Bytes`] chunks: small parts
/// copied, payload slices of shared buffers referenced (see the module docs).
#[derive(Debug, Default)]
pub struct Transmit {
    chunks: Vec<Bytes>,
    pending: Vec<u8>,
}

/// A shared buffer as the owner of [`Bytes`] slices.
struct SharedBuf(Arc<Vec<u8>>);

impl AsRef<[u8]> for SharedBuf {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Transmit {
    /// An empty transmit.
    pub fn new() -> Self {
        Self::default()
    }

    /// Total bytes held.
    pub fn len(&self) -> usize {
        self.chunks.iter().map(Bytes::len).sum::<usize>() + self.pending.len()
    }

    /// True if no byte is held.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.chunks.iter().all(Bytes::is_empty)
    }

    /// Moves the chunks out, in wire order, leaving the transmit empty.
    pub fn take(&mut self) -> Vec<Bytes> {
        self.flush();
        std::mem::take(&mut self.chunks)
    }

    /// The bytes held, concatenated (a copy: for tests and diagnostics).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len());
        for c in &self.chunks {
            v.extend_from_slice(c);
        }
        v.extend_from_slice(&self.pending);
        v
    }

    fn flush(&mut self) {
        if !self.pending.is_empty() {
            self.chunks.push(Bytes::from(std::mem::take(&mut self.pending)));
        }
    }
}

impl FrameSink for Transmit {
    fn head(&mut self) -> &mut Vec<u8> {
        &mut self.pending
    }

    fn shared(&mut self, buf: &Arc<Vec<u8>>, at: usize, len: usize) {
        if len < SHARE_MIN {
            self.pending.extend_from_slice(&buf[at..at + len]);
            return;
        }
        self.flush();
        self.chunks.push(Bytes::from_owner(SharedBuf(buf.clone())).slice(at..at + len));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_slices_are_copied_large_ones_shared() {
        let buf = Arc::new((0..20_000u32).map(|i| i as u8).collect::<Vec<u8>>());
        let (mut t, mut v) = (Transmit::new(), Vec::new());
        for s in [&mut t as &mut dyn FrameSink, &mut v] {
            s.head().extend_from_slice(b"head");
            s.shared(&buf, 10, 100);
            s.shared(&buf, 1000, 10_000);
            s.head().extend_from_slice(b"tail");
        }
        assert_eq!(t.len(), v.len());
        assert_eq!(t.to_vec(), v);
        let chunks = t.take();
        assert_eq!(chunks.len(), 3, "head + small copy, shared slice, tail");
        assert_eq!(chunks[1].as_ptr(), buf[1000..].as_ptr(), "not copied");
        assert!(t.is_empty());
        assert_eq!(chunks.concat(), v);
    }
}
