//! The region abstraction the state machines work on.
//!
//! [`RegionSource`] is the publisher's read side (dirty-chunk snapshots),
//! [`RegionSink`] the mirror's write side (one atomic multi-run apply).
//! Both are implemented for venom-core's `SeqRegion` family (module
//! `seq_region`) and for [`MemRegion`], an in-process double used by the
//! deterministic tests.

use crate::error::{Error, Result};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// Chunks read in one consistent window (venom-core's type, reused so the
/// `SeqRegion` implementation copies nothing extra).
pub type Snapshot = venom_core::ChunkSnapshot;
/// One chunk inside a [`Snapshot`].
pub type ChunkSpan = venom_core::ChunkRef;

/// The publisher's view of a region.
pub trait RegionSource: Send + Sync {
    /// Region size in bytes.
    fn size(&self) -> usize;
    /// Dirty-tracking granularity.
    fn chunk_size(&self) -> usize;
    /// Current version (monotonic, changes on every write).
    fn version(&self) -> u64;
    /// Every chunk changed after `since`, read consistently.
    fn snapshot_since(&self, since: u64, snap: &mut Snapshot) -> Result<()>;
    /// Every chunk, read consistently.
    fn snapshot_all(&self, snap: &mut Snapshot) -> Result<()>;
    /// Blocks until the version differs from `since` (returns it) or `timeout` passes.
    fn wait_for_change(&self, since: u64, timeout: Duration) -> Result<u64>;
}

/// The mirror's local region.
pub trait RegionSink: Send {
    /// Region size in bytes.
    fn size(&self) -> usize;
    /// Writes every `(offset, bytes)` pair as ONE atomic update: local readers
    /// see all of them or none. Returns the new local version.
    fn apply(&mut self, writes: &[(usize, &[u8])]) -> Result<u64>;
    /// Reads local bytes (the sink is the only writer, so this is consistent).
    fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<()>;
    /// Best effort: makes the whole region resident and writable now, so
    /// the first snapshot's apply does not take a page fault per page.
    /// Called once when a mirror starts; must not change the contents.
    fn prefault(&mut self) {}
    /// Applies one complete update tagged with the publisher's `(epoch, seq)`
    /// (what the mirror state machine calls). The default applies `writes`
    /// with [`apply`](Self::apply) (nothing for an empty delta); a relay
    /// ([`crate::proto::relay::RelaySink`]) also feeds them to its encoder.
    fn apply_update(&mut self, writes: &[(usize, &[u8])], tag: UpdateTag) -> Result<()> {
        let _ = tag;
        if !writes.is_empty() {
            self.apply(writes)?;
        }
        Ok(())
    }
}

/// The publisher's tag of an applied update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpdateTag {
    /// Publisher epoch.
    pub epoch: u64,
    /// Region version the update brings the subscribed bytes to.
    pub seq: u64,
    /// A full snapshot of the subscription.
    pub snapshot: bool,
    /// Publisher clock when the bytes were captured (ns since the Unix epoch).
    pub captured_ns: u64,
}

impl<T: RegionSource + ?Sized> RegionSource for Arc<T> {
    fn size(&self) -> usize {
        (**self).size()
    }
    fn chunk_size(&self) -> usize {
        (**self).chunk_size()
    }
    fn version(&self) -> u64 {
        (**self).version()
    }
    fn snapshot_since(&self, since: u64, snap: &mut Snapshot) -> Result<()> {
        (**self).snapshot_since(since, snap)
    }
    fn snapshot_all(&self, snap: &mut Snapshot) -> Result<()> {
        (**self).snapshot_all(snap)
    }
    fn wait_for_change(&self, since: u64, timeout: Duration) -> Result<u64> {
        (**self).wait_for_change(since, timeout)
    }
}

impl<T: RegionSink + ?Sized> RegionSink for Box<T> {
    fn size(&self) -> usize {
        (**self).size()
    }
    fn apply(&mut self, writes: &[(usize, &[u8])]) -> Result<u64> {
        (**self).apply(writes)
    }
    fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        (**self).read_at(offset, buf)
    }
    fn prefault(&mut self) {
        (**self).prefault()
    }
    fn apply_update(&mut self, writes: &[(usize, &[u8])], tag: UpdateTag) -> Result<()> {
        (**self).apply_update(writes, tag)
    }
}

/// An in-process region with per-chunk versions: the test double for both
/// sides. Cloning shares the region.
///
/// ```
/// use venom_net::{MemRegion, RegionSource, Snapshot};
/// let r = MemRegion::new(4096, 1024);
/// let v0 = r.version();
/// r.write_at(1500, b"hello");
/// let mut snap = Snapshot::default();
/// r.snapshot_since(v0, &mut snap).unwrap();
/// assert_eq!(snap.chunks.len(), 1);
/// assert_eq!(snap.chunks[0].offset, 1024);
/// ```
#[derive(Clone)]
pub struct MemRegion {
    inner: Arc<(Mutex<MemInner>, Condvar)>,
}

/// Invariants: `chunk_versions.len() == ceil(data.len() / chunk_size)`, every
/// chunk version `<= version`, `version` even and advancing by 2 per write.
struct MemInner {
    data: Vec<u8>,
    chunk_size: usize,
    chunk_versions: Vec<u64>,
    version: u64,
}

impl MemRegion {
    /// A zeroed region of `size` bytes tracked in chunks of `chunk_size` (> 0).
    pub fn new(size: usize, chunk_size: usize) -> Self {
        let chunk_size = chunk_size.max(1);
        let inner = MemInner {
            data: vec![0; size],
            chunk_size,
            chunk_versions: vec![0; size.div_ceil(chunk_size)],
            version: 0,
        };
        MemRegion { inner: Arc::new((Mutex::new(inner), Condvar::new())) }
    }

    fn lock(&self) -> MutexGuard<'_, MemInner> {
        // A panic while holding the lock (only possible in a failing test) leaves consistent data.
        self.inner.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `data` at `offset` as one version (panics if out of bounds: test helper).
    pub fn write_at(&self, offset: usize, data: &[u8]) -> u64 {
        self.apply_many(&[(offset, data)]).expect("MemRegion::write_at out of bounds")
    }

    fn apply_many(&self, writes: &[(usize, &[u8])]) -> Result<u64> {
        let mut g = self.lock();
        let size = g.data.len();
        for &(off, d) in writes {
            if off.checked_add(d.len()).is_none_or(|e| e > size) {
                return Err(Error::OutOfRange {
                    what: "local write",
                    offset: off as u64,
                    len: d.len() as u64,
                    limit: size as u64,
                });
            }
        }
        g.version += 2;
        let (v, cs) = (g.version, g.chunk_size);
        for &(off, d) in writes {
            g.data[off..off + d.len()].copy_from_slice(d);
            if !d.is_empty() {
                for c in off / cs..=(off + d.len() - 1) / cs {
                    g.chunk_versions[c] = v;
                }
            }
        }
        drop(g);
        self.inner.1.notify_all();
        Ok(v)
    }

    /// A copy of all bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        self.lock().data.clone()
    }

    fn snapshot_where(&self, snap: &mut Snapshot, keep: impl Fn(u64) -> bool) {
        let g = self.lock();
        snap.version = g.version;
        snap.chunks.clear();
        snap.data.clear();
        for (i, &cv) in g.chunk_versions.iter().enumerate() {
            if keep(cv) {
                let offset = i * g.chunk_size;
                let len = g.chunk_size.min(g.data.len() - offset);
                snap.chunks.push(ChunkSpan { index: i, version: cv, offset, len, data_offset: snap.data.len() });
                snap.data.extend_from_slice(&g.data[offset..offset + len]);
            }
        }
    }
}

impl RegionSource for MemRegion {
    fn size(&self) -> usize {
        self.lock().data.len()
    }
    fn chunk_size(&self) -> usize {
        self.lock().chunk_size
    }
    fn version(&self) -> u64 {
        self.lock().version
    }
    fn snapshot_since(&self, since: u64, snap: &mut Snapshot) -> Result<()> {
        self.snapshot_where(snap, |cv| cv > since);
        Ok(())
    }
    fn snapshot_all(&self, snap: &mut Snapshot) -> Result<()> {
        self.snapshot_where(snap, |_| true);
        Ok(())
    }
    fn wait_for_change(&self, since: u64, timeout: Duration) -> Result<u64> {
        let deadline = venom_core::Deadline::after(timeout);
        let mut g = self.lock();
        while g.version == since {
            let left = deadline.remaining();
            if left.is_zero() {
                return Err(Error::Timeout(timeout));
            }
            g = self.inner.1.wait_timeout(g, left).unwrap_or_else(|p| p.into_inner()).0;
        }
        Ok(g.version)
    }
}

impl RegionSink for MemRegion {
    fn size(&self) -> usize {
        self.lock().data.len()
    }
    fn apply(&mut self, writes: &[(usize, &[u8])]) -> Result<u64> {
        self.apply_many(writes)
    }
    fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        let g = self.lock();
        let src = offset.checked_add(buf.len()).and_then(|e| g.data.get(offset..e)).ok_or(Error::OutOfRange {
            what: "local read",
            offset: offset as u64,
            len: buf.len() as u64,
            limit: g.data.len() as u64,
        })?;
        buf.copy_from_slice(src);
        Ok(())
    }
}
