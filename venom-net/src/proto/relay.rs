//! Relay mirrors (cascading fan-out): a mirror whose local copy is itself
//! published to further mirrors, with the same protocol.
//!
//! A [`RelaySink`] wraps the mirror's local [`RegionSink`]: every update the
//! mirror state machine applies is written to the local region AND fed to a
//! [`RegionEncoder`] with the upstream's `(epoch, seq)`
//! ([`RegionEncoder::ingest_update`]). Publisher sessions serving that
//! encoder therefore hand out the upstream's epochs and seqs unchanged, so
//! a mirror two or more hops away holds a state named exactly like the
//! origin's, resumes across a relay restart whenever that name is still
//! current, and sees an origin restart as a new epoch (a new welcome and a
//! snapshot) through every level.

use crate::error::Result;
use crate::proto::encoder::{EncoderConfig, RegionEncoder};
use crate::proto::region::{RegionSink, UpdateTag};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// An encoder shared between the relay's mirror (the writer) and the
/// publisher sessions it feeds (readers).
pub type SharedEncoder = Arc<RwLock<RegionEncoder>>;

/// Read access to a shared encoder (a panic while holding the lock cannot
/// leave it half-updated: `ingest_update` validates before mutating).
pub fn read(enc: &SharedEncoder) -> RwLockReadGuard<'_, RegionEncoder> {
    enc.read().unwrap_or_else(|p| p.into_inner())
}

/// Write access to a shared encoder.
pub fn write(enc: &SharedEncoder) -> RwLockWriteGuard<'_, RegionEncoder> {
    enc.write().unwrap_or_else(|p| p.into_inner())
}

/// Callback run after each update was fed to the encoder (the I/O shell
/// wakes its publisher sessions with it).
pub type OnUpdate = Box<dyn Fn(UpdateTag) + Send + Sync>;

/// A mirror sink that republishes what it applies (see the module docs).
pub struct RelaySink {
    inner: Box<dyn RegionSink>,
    encoder: SharedEncoder,
    on_update: Option<OnUpdate>,
}

impl RelaySink {
    /// Wraps `inner` (the relay's local region); the encoder's shadow starts
    /// as a copy of it.
    pub fn new(inner: Box<dyn RegionSink>, cfg: EncoderConfig) -> Result<Self> {
        let encoder = Arc::new(RwLock::new(RegionEncoder::for_relay(&*inner, cfg)?));
        Ok(RelaySink { inner, encoder, on_update: None })
    }

    /// The encoder to serve downstream publisher sessions from.
    pub fn encoder(&self) -> SharedEncoder {
        self.encoder.clone()
    }

    /// Runs `f` after each update (e.g. to wake publisher sessions).
    pub fn on_update(&mut self, f: OnUpdate) {
        self.on_update = Some(f);
    }
}

impl RegionSink for RelaySink {
    fn size(&self) -> usize {
        self.inner.size()
    }

    /// A write that did not come from upstream: it is not republished
    /// (downstream mirrors keep the upstream's bytes); the mirror state
    /// machine only calls [`apply_update`](RegionSink::apply_update).
    fn apply(&mut self, writes: &[(usize, &[u8])]) -> Result<u64> {
        self.inner.apply(writes)
    }

    fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        self.inner.read_at(offset, buf)
    }

    fn prefault(&mut self) {
        self.inner.prefault()
    }

    fn apply_update(&mut self, writes: &[(usize, &[u8])], tag: UpdateTag) -> Result<()> {
        self.inner.apply_update(writes, tag)?;
        write(&self.encoder).ingest_update(tag.epoch, tag.seq, writes, tag.captured_ns)?;
        if let Some(f) = &self.on_update {
            f(tag);
        }
        Ok(())
    }
}
