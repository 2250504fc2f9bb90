//! One mesh peer: publishes its own part, mirrors every other part directly
//! from its owner.

use super::MeshLayout;
use crate::io::{Mirror, Publisher};
use crate::proto::policy::Policy;
use crate::tls::{CertificateAuthority, ClientTls, Identity, ServerTls};
use crate::typed::{Array, ArrayWriter, Element, write_step};
use crate::{Applied, Error, MirrorConfig, PublisherConfig, Result, Subscription};
use rustls::pki_types::CertificateDer;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use venom_core::{RegionConfig, SeqReader, SeqWriter};

/// Connections each reader peer may hold to an owner (one live, one reconnecting).
pub const MESH_LINKS_PER_PEER: usize = 2;

/// Mutual-TLS material of one peer: the mesh CA root(s) and the peer's
/// identity, whose certificate names the peer id.
#[derive(Clone)]
pub struct MeshTls {
    /// Trusted CA certificates.
    pub ca_roots: Vec<CertificateDer<'static>>,
    /// This peer's identity (DNS SAN = peer id).
    pub identity: Identity,
}

impl MeshTls {
    /// Issues an identity for `peer` from `ca` (tests, examples, small deployments).
    pub fn issue(ca: &CertificateAuthority, peer: &str) -> Result<Self> {
        Ok(MeshTls { ca_roots: vec![ca.cert().clone()], identity: ca.issue(&[peer])? })
    }
}

/// Settings of one peer.
#[derive(Clone)]
pub struct MeshConfig {
    /// Mesh name: prefix of the local region names (`<mesh>.<me>.<owner>`).
    pub mesh: String,
    /// The shared array and its owners.
    pub layout: MeshLayout,
    /// This peer's id (must own a part).
    pub me: String,
    /// Address to serve the own part on (`127.0.0.1:0` picks a port).
    pub listen: SocketAddr,
    /// TLS material.
    pub tls: MeshTls,
}

/// A running mesh peer. Drop or [`close`](Self::close) it to stop; its
/// regions are unlinked then.
///
/// ```no_run
/// # async fn f() -> venom_net::Result<()> {
/// use venom_net::{mesh::*, tls::CertificateAuthority, typed::Array, Dtype};
/// let ca = CertificateAuthority::new("mesh-ca")?;
/// let layout = MeshLayout::quadrants(Dtype::U32, 64, 64, ["a", "b", "c", "d"])?;
/// let cfg = MeshConfig { mesh: "grid".into(), layout, me: "a".into(),
///     listen: "127.0.0.1:0".parse().unwrap(), tls: MeshTls::issue(&ca, "a")? };
/// let peer = MeshPeer::start(cfg).await?;
/// peer.link("b", "10.0.0.2:4433".parse().unwrap())?; // ... and c, d
/// let mine: Array<u32> = peer.own_array()?;
/// peer.write("a", |w| w.write_all(&mine, &vec![7; mine.len()]))?;
/// let whole = peer.read_whole()?; // every part, as of its last applied update
/// # Ok(()) }
/// ```
pub struct MeshPeer {
    cfg: MeshConfig,
    /// Index of the own part.
    me: usize,
    /// The own part's only writer.
    own: Mutex<SeqWriter>,
    /// `parts[k]`: reader of the local region holding part `k`.
    parts: Vec<SeqReader>,
    /// `sinks[k]`: writer of part `k`'s region until `link` hands it to the mirror.
    sinks: Mutex<Vec<Option<SeqWriter>>>,
    /// `links[k]`: the mirror of part `k`, fed by its owner only.
    links: Arc<Mutex<Vec<Option<Mirror>>>>,
    publisher: Option<Publisher>,
    monitor: Option<tokio::task::JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn region_name(cfg: &MeshConfig, owner: &str) -> String {
    format!("{}.{}.{}", cfg.mesh, cfg.me, owner)
}

impl MeshPeer {
    /// Creates the part regions and starts serving the own part. Call inside
    /// a tokio runtime; then [`link`](Self::link) each other owner.
    pub async fn start(cfg: MeshConfig) -> Result<MeshPeer> {
        let me = cfg.layout.part_of(&cfg.me)?;
        let mut parts = Vec::new();
        let mut sinks = Vec::new();
        for (k, p) in cfg.layout.parts().iter().enumerate() {
            let name = region_name(&cfg, &p.owner);
            let w = SeqWriter::create(&name, RegionConfig::new(cfg.layout.part_len(k)))?;
            parts.push(SeqReader::open(&name)?);
            sinks.push(Some(w));
        }
        let own = sinks[me].take().ok_or(Error::Closed)?;
        let tls = ServerTls::mutual(&cfg.tls.identity, &cfg.tls.ca_roots)?;
        let source = Arc::new(SeqReader::open(&region_name(&cfg, &cfg.me))?);
        let readers: Vec<&str> = cfg.layout.parts().iter().map(|p| p.owner.as_str()).filter(|o| *o != cfg.me).collect();
        let policy = readers.iter().fold(Policy::deny_all(), |p, r| p.allow_name(r));
        let mut pcfg = PublisherConfig {
            policy: Arc::new(policy),
            max_mirrors: (MESH_LINKS_PER_PEER * readers.len()).max(1),
            ..PublisherConfig::default()
        };
        pcfg.admission.per_identity = MESH_LINKS_PER_PEER;
        let publisher = Publisher::bind(cfg.listen, source, tls, pcfg).await?;
        let links: Arc<Mutex<Vec<Option<Mirror>>>> = Arc::new(Mutex::new((0..parts.len()).map(|_| None).collect()));
        let monitor = tokio::spawn(monitor(links.clone(), cfg.clone()));
        Ok(MeshPeer {
            cfg,
            me,
            own: Mutex::new(own),
            parts,
            sinks: Mutex::new(sinks),
            links,
            publisher: Some(publisher),
            monitor: Some(monitor),
        })
    }

    /// This peer's id.
    pub fn id(&self) -> &str {
        &self.cfg.me
    }

    /// The layout.
    pub fn layout(&self) -> &MeshLayout {
        &self.cfg.layout
    }

    /// Address the own part is served on.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.publisher.as_ref().ok_or(Error::Closed)?.local_addr()
    }

    /// Starts mirroring the part of `owner` directly from `owner` at `addr`
    /// (reconnecting with backoff until it answers). Fails for an unknown
    /// owner, the own part, or an owner already linked.
    pub fn link(&self, owner: &str, addr: SocketAddr) -> Result<()> {
        let k = self.cfg.layout.part_of(owner)?;
        let sink = lock(&self.sinks)[k].take().ok_or_else(|| Error::NotOwner {
            peer: self.cfg.me.clone(),
            part: format!("{owner} (own part or already linked)"),
        })?;
        let tls = ClientTls::mutual(&self.cfg.tls.ca_roots, &self.cfg.tls.identity)?;
        // Server name = owner id: only the owner's certificate passes the handshake.
        let m = Mirror::connect(addr, owner, Subscription::whole(), tls, Box::new(sink), MirrorConfig::default())?;
        lock(&self.links)[k] = Some(m);
        Ok(())
    }

    /// A typed handle for the own part (packed, offset 0, the part's shape).
    pub fn own_array<T: Element>(&self) -> Result<Array<T>> {
        let info = crate::proto::catalog::ArrayInfo {
            name: self.cfg.me.clone(),
            offset: 0,
            dtype: self.cfg.layout.dtype(),
            shape: self.cfg.layout.part_shape(self.me),
        };
        Array::new(&info)
    }

    /// Writes part `owner` in one atomic step (see [`write_step`]); only the
    /// own part may be written: any other gives [`Error::NotOwner`].
    pub fn write<R>(&self, owner: &str, f: impl FnOnce(&mut ArrayWriter<'_, '_>) -> Result<R>) -> Result<(R, u64)> {
        if owner != self.cfg.me {
            tracing::warn!(peer = %self.cfg.me, part = owner, "refusing a write to a part this peer does not own");
            return Err(Error::NotOwner { peer: self.cfg.me.clone(), part: owner.to_owned() });
        }
        write_step(&mut lock(&self.own), f)
    }

    /// The local region holding part `owner` (read it with `typed::ArrayView`).
    pub fn part_region(&self, owner: &str) -> Result<&SeqReader> {
        Ok(&self.parts[self.cfg.layout.part_of(owner)?])
    }

    /// The last update applied to part `owner` (`None` for the own part or before the first).
    pub fn applied(&self, owner: &str) -> Result<Option<Applied>> {
        let k = self.cfg.layout.part_of(owner)?;
        Ok(lock(&self.links)[k].as_ref().and_then(|m| m.applied()))
    }

    /// Why the link to `owner` last failed (e.g. a certificate for the wrong peer).
    pub fn link_error(&self, owner: &str) -> Result<Option<String>> {
        let k = self.cfg.layout.part_of(owner)?;
        Ok(lock(&self.links)[k].as_ref().and_then(|m| m.last_error()))
    }

    /// Update counters of every link: `(owner, updates applied, bytes received)`.
    pub fn link_stats(&self) -> Vec<(String, u64, u64)> {
        let links = lock(&self.links);
        let parts = self.cfg.layout.parts().iter();
        parts
            .zip(links.iter())
            .filter_map(|(p, m)| {
                m.as_ref().map(|m| (p.owner.clone(), m.stats().updates_applied, m.stats().bytes_received))
            })
            .collect()
    }

    /// The whole array: each part as of its last local version.
    pub fn read_whole(&self) -> Result<Vec<u8>> {
        let mut whole = vec![0u8; self.cfg.layout.whole_len()];
        let mut buf = Vec::new();
        for (k, r) in self.parts.iter().enumerate() {
            buf.resize(self.cfg.layout.part_len(k), 0);
            r.read_at(0, &mut buf)?;
            self.cfg.layout.place(k, &buf, &mut whole);
        }
        Ok(whole)
    }

    /// [`read_whole`](Self::read_whole) as elements of the layout's dtype.
    pub fn read_whole_as<T: Element>(&self) -> Result<Vec<T>> {
        if self.cfg.layout.dtype() != T::DTYPE {
            let (name, found) = (self.cfg.mesh.clone(), self.cfg.layout.dtype());
            return Err(Error::DtypeMismatch { name, found, wanted: T::DTYPE });
        }
        let bytes = self.read_whole()?;
        Ok(bytes.chunks_exact(std::mem::size_of::<T>()).map(bytemuck::pod_read_unaligned).collect())
    }

    /// blake3 of [`read_whole`](Self::read_whole).
    pub fn whole_hash(&self) -> Result<[u8; 32]> {
        Ok(*blake3::hash(&self.read_whole()?).as_bytes())
    }

    /// Stops every link and the publisher, and unlinks the regions.
    pub async fn close(mut self) {
        let links: Vec<Mirror> = lock(&self.links).drain(..).flatten().collect();
        for m in links {
            m.close().await;
        }
        if let Some(p) = self.publisher.take() {
            p.close().await;
        }
    }
}

impl Drop for MeshPeer {
    fn drop(&mut self) {
        if let Some(m) = self.monitor.take() {
            m.abort();
        }
        for r in &self.parts {
            let _ = r.segment().unlink();
        }
    }
}

/// Logs every new link failure (wrong certificate, protocol violation) once.
async fn monitor(links: Arc<Mutex<Vec<Option<Mirror>>>>, cfg: MeshConfig) {
    let mut seen: Vec<Option<String>> = vec![None; cfg.layout.parts().len()];
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let errs: Vec<Option<String>> = lock(&links).iter().map(|m| m.as_ref().and_then(|m| m.last_error())).collect();
        for (k, e) in errs.into_iter().enumerate() {
            if e.is_some() && e != seen[k] {
                let owner = &cfg.layout.parts()[k].owner;
                tracing::warn!(peer = %cfg.me, owner = %owner, error = ?e, "link to part owner failed or was rejected");
                seen[k] = e;
            }
        }
    }
}
