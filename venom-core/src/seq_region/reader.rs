//! Reader handles.

use std::ops::Deref;
use std::sync::Arc;

use super::SeqRegion;
use crate::SegmentKind;
use crate::error::Result;
use crate::segment::Segment;

/// A reader of a `SEQ_REGION` segment, usually in another process.
/// Dereferences to [`SeqRegion`] for every read method.
#[derive(Debug)]
pub struct SeqReader {
    region: SeqRegion,
}

impl SeqReader {
    /// Opens the region `name`, validating its segment header and region
    /// control block.
    pub fn open(name: &str) -> Result<SeqReader> {
        let seg = Arc::new(Segment::open(name, SegmentKind::SEQ_REGION)?);
        Ok(SeqReader { region: SeqRegion::attach(seg, 0)? })
    }

    /// The region view (also available through `Deref`).
    pub fn region(&self) -> &SeqRegion {
        &self.region
    }

    /// Mutable access to the view, e.g. for [`SeqRegion::set_read_timeout`].
    pub fn region_mut(&mut self) -> &mut SeqRegion {
        &mut self.region
    }
}

impl Deref for SeqReader {
    type Target = SeqRegion;
    fn deref(&self) -> &SeqRegion {
        &self.region
    }
}
