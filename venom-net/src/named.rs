//! Mirrors that subscribe to named arrays.
//!
//! [`NamedMirror::connect`] first mirrors the publisher's catalog prefix
//! (see [`catalog`](crate::proto::catalog)) into memory, decodes and validates it,
//! then mirrors the picked arrays (or index slices of them) into a new local
//! `SeqRegion` that starts with its own catalog, so local readers open
//! arrays by name with [`Catalog::read_from`] and [`Array`].

use crate::io::Mirror;
use crate::proto::admission::Refusal;
use crate::proto::catalog::{CATALOG_BYTES, Catalog, Pick};
use crate::tls::ClientTls;
use crate::typed::{Array, ArrayView, Element};
use crate::{Applied, Error, MemRegion, MirrorConfig, Result, Subscription};
use std::net::SocketAddr;
use std::time::Duration;
use venom_core::{RegionConfig, SeqReader, SeqWriter};

/// Fetches the catalog of the region published at `addr` (one short-lived mirror of its prefix).
pub async fn fetch_catalog(addr: SocketAddr, server_name: &str, tls: ClientTls, timeout: Duration) -> Result<Catalog> {
    let mem = MemRegion::new(CATALOG_BYTES, CATALOG_BYTES);
    let sub = Subscription::range(0, CATALOG_BYTES as u64, 0);
    let m = Mirror::connect(addr, server_name, sub, tls, Box::new(mem.clone()), MirrorConfig::default())?;
    // Poll rather than subscribe to `updates()`: the first update may land before a subscription.
    // Errors may be transient here (the publisher starting up), so only the deadline ends the wait.
    let deadline = venom_core::Deadline::after(timeout);
    // A policy refusal is final, though.
    let denied = |m: &Mirror| m.last_refusal() == Some(Refusal::Unauthorized);
    while m.applied().is_none() && !denied(&m) && !deadline.is_past() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (applied, err) = (m.applied(), failure(&m));
    m.close().await;
    match applied {
        Some(_) => Catalog::decode(&mem.to_vec()),
        None => Err(err.unwrap_or(Error::Timeout(timeout))),
    }
}

/// Why a mirror failed: the publisher's typed refusal if it gave one, else the last error.
fn failure(m: &Mirror) -> Option<Error> {
    let detail = m.last_error()?;
    Some(match m.last_refusal() {
        Some(reason) => Error::Refused { reason, detail },
        None => Error::Protocol(detail),
    })
}

/// A mirror of named arrays in a local region with its own catalog.
///
/// ```no_run
/// # async fn f(cert: rustls::pki_types::CertificateDer<'static>) -> venom_net::Result<()> {
/// use std::time::Duration;
/// use venom_net::{proto::catalog::Pick, named::NamedMirror, tls::ClientTls, MirrorConfig};
/// let tls = ClientTls::pinned(cert)?;
/// let picks = [Pick::all("prices"), Pick::slice("grid", &[10..20, 0..64])];
/// let m = NamedMirror::connect("10.0.0.1:4433".parse().unwrap(), "localhost", tls, &picks,
///     "grid-mirror", MirrorConfig::default(), Duration::from_secs(5)).await?;
/// let grid = m.array::<f64>("grid")?; // shape [10, 64]
/// let v = grid.get(&[0, 3])?;
/// # Ok(()) }
/// ```
pub struct NamedMirror {
    mirror: Mirror,
    local: SeqReader,
    catalog: Catalog,
}

impl NamedMirror {
    /// Fetches the remote catalog, creates the local region `local_name`
    /// (mode 0600) with the local catalog, and starts mirroring `picks`.
    /// Returns once the first update is applied; fails on the first
    /// connection error or after `timeout` (for each of the two steps).
    pub async fn connect(
        addr: SocketAddr,
        server_name: &str,
        tls: ClientTls,
        picks: &[Pick],
        local_name: &str,
        cfg: MirrorConfig,
        timeout: Duration,
    ) -> Result<NamedMirror> {
        let remote = fetch_catalog(addr, server_name, tls.clone(), timeout).await?;
        let (sub, catalog) = remote.subscribe(picks)?;
        let mut w = SeqWriter::create(local_name, RegionConfig::new(catalog.region_size() as usize))?;
        catalog.write_to(&mut w)?;
        let local = SeqReader::open(local_name)?;
        let mirror = match Mirror::connect(addr, server_name, sub, tls, Box::new(w), cfg) {
            Ok(m) => m,
            Err(e) => {
                let _ = local.segment().unlink();
                return Err(e);
            }
        };
        // The publisher answered `fetch_catalog`, so the first connection error is final
        // (e.g. a catalog pointing past the real region: the publisher refuses the subscription).
        let deadline = venom_core::Deadline::after(timeout);
        while mirror.applied().is_none() && mirror.last_error().is_none() && !deadline.is_past() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if mirror.applied().is_none() {
            let err = failure(&mirror);
            mirror.close().await;
            let _ = local.segment().unlink();
            return Err(err.unwrap_or(Error::Timeout(timeout)));
        }
        Ok(NamedMirror { mirror, local, catalog })
    }

    /// The local catalog (local offsets; sliced arrays have the sliced shape).
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The local region (readable by other local processes by its name).
    pub fn region(&self) -> &SeqReader {
        &self.local
    }

    /// A typed view of local array `name`.
    pub fn array<T: Element>(&self, name: &str) -> Result<ArrayView<'_, T>> {
        Ok(Array::<T>::from_catalog(&self.catalog, name)?.view(&self.local))
    }

    /// The underlying mirror (stats, waits, update stream).
    pub fn mirror(&self) -> &Mirror {
        &self.mirror
    }

    /// The last applied update.
    pub fn applied(&self) -> Option<Applied> {
        self.mirror.applied()
    }

    /// Stops mirroring and unlinks the local region.
    pub async fn close(self) {
        self.mirror.close().await;
        let _ = self.local.segment().unlink();
    }
}
