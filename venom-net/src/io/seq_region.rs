//! [`RegionSource`] / [`RegionSink`] for venom-core's seqlock region.
//!
//! The publisher reads through a [`SeqReader`] (or any `SeqRegion`): each
//! update comes from one `snapshot_since`/`snapshot_all` call, i.e. one
//! consistent seqlock window, and is stamped with the version it is
//! consistent at. The mirror writes through its [`SeqWriter`]: one update is
//! one `write_with` window, so local readers see all of it or none.

use crate::Result;
use crate::proto::region::{RegionSink, RegionSource, Snapshot};
use std::time::Duration;
use venom_core::{SeqReader, SeqRegion, SeqWriter};

impl RegionSource for SeqRegion {
    fn size(&self) -> usize {
        SeqRegion::size(self)
    }
    fn chunk_size(&self) -> usize {
        SeqRegion::chunk_size(self)
    }
    fn version(&self) -> u64 {
        SeqRegion::version(self)
    }
    fn snapshot_since(&self, since: u64, snap: &mut Snapshot) -> Result<()> {
        Ok(SeqRegion::snapshot_since(self, since, snap)?)
    }
    fn snapshot_all(&self, snap: &mut Snapshot) -> Result<()> {
        Ok(SeqRegion::snapshot_all(self, snap)?)
    }
    fn wait_for_change(&self, since: u64, timeout: Duration) -> Result<u64> {
        Ok(SeqRegion::wait_for_change(self, since, timeout)?)
    }
}

impl RegionSource for SeqReader {
    fn size(&self) -> usize {
        self.region().size()
    }
    fn chunk_size(&self) -> usize {
        self.region().chunk_size()
    }
    fn version(&self) -> u64 {
        self.region().version()
    }
    fn snapshot_since(&self, since: u64, snap: &mut Snapshot) -> Result<()> {
        Ok(self.region().snapshot_since(since, snap)?)
    }
    fn snapshot_all(&self, snap: &mut Snapshot) -> Result<()> {
        Ok(self.region().snapshot_all(snap)?)
    }
    fn wait_for_change(&self, since: u64, timeout: Duration) -> Result<u64> {
        Ok(self.region().wait_for_change(since, timeout)?)
    }
}

impl RegionSink for SeqWriter {
    fn size(&self) -> usize {
        SeqRegion::size(self)
    }
    fn apply(&mut self, writes: &[(usize, &[u8])]) -> Result<u64> {
        let ((), v) = self.write_with(|w| {
            for &(off, data) in writes {
                w.write_at(off, data)?;
            }
            Ok(())
        })?;
        Ok(v)
    }
    fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        SeqRegion::read_at(self, offset, buf)?;
        Ok(())
    }
    fn prefault(&mut self) {
        SeqWriter::prefault(self);
    }
}
