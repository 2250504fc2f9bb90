//! What the venom-net examples (tickers, life, heatmap, weights, peer_split,
//! peer_stress, web_view) share: the `--role`/`--listen`/`--connect`/`--certs`
//! flags and the loopback-or-one-role dispatch, the mesh `--peer` flags, TLS
//! material on disk, and the runtime.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::time::Duration;

use clap::ValueEnum;
use venom_core::{RegionConfig, SeqReader, SeqWriter};
use venom_net::io::Publisher;
use venom_net::mesh::MeshTls;
use venom_net::named::NamedMirror;
use venom_net::proto::catalog::{Catalog, Pick};
use venom_net::tls::{CertificateAuthority, ClientTls, Identity, ServerTls};
use venom_net::typed::{Array, Element, write_step};
use venom_net::{Dtype, MirrorConfig, PublisherConfig};

/// The examples' error type.
pub type BoxError = Box<dyn std::error::Error>;

/// `--role` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RoleKind {
    /// Publish (the server saves its certificate in `--certs`).
    Server,
    /// Mirror (pins the certificate the server saved in `--certs`).
    Client,
}

/// The flags of a publisher/mirror example: without `--role`, server and
/// client(s) run in this process on loopback; with it, one role per terminal.
#[derive(clap::Args, Debug, Clone)]
pub struct RoleArgs {
    /// Run one role only (default: server and client(s) in this process).
    #[arg(long, value_enum)]
    pub role: Option<RoleKind>,
    /// Server role: address to listen on (default 127.0.0.1:<the example's port>).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Client role: the server's address (default 127.0.0.1:<the example's port>).
    #[arg(long, value_name = "ADDR")]
    pub connect: Option<SocketAddr>,
    /// Directory where the server saves its certificate and the client reads it
    /// (default /tmp/venom-<example>).
    #[arg(long, value_name = "DIR")]
    pub certs: Option<String>,
}

/// What `--role` asks for, with `--listen`/`--connect`/`--certs` resolved.
pub enum Role {
    /// No `--role`: server and client(s) in this process, on loopback.
    Loopback,
    /// `--role server`: publish on `listen`, writing certificates to `certs`.
    Server {
        /// Address to listen on.
        listen: SocketAddr,
        /// Directory for the certificate the clients read.
        certs: String,
    },
    /// `--role client`: connect to `connect` with the certificate in `--certs`.
    Client {
        /// Publisher address.
        connect: SocketAddr,
        /// TLS config pinned to the server's certificate.
        tls: ClientTls,
    },
}

impl RoleArgs {
    /// Resolves the flags; `port` and `certs` are the example's defaults.
    pub fn resolve(&self, port: u16, certs: &str) -> Result<Role, BoxError> {
        let certs = self.certs.as_deref().unwrap_or(certs);
        let default = SocketAddr::from(([127, 0, 0, 1], port));
        Ok(match self.role {
            None => Role::Loopback,
            Some(RoleKind::Server) => Role::Server { listen: self.listen.unwrap_or(default), certs: certs.to_owned() },
            Some(RoleKind::Client) => {
                Role::Client { connect: self.connect.unwrap_or(default), tls: client_tls(certs)? }
            }
        })
    }
}

/// What an example's server side returns: the publisher, a client TLS
/// config pinned to it, and the thread writing the region.
pub type Served = (Publisher, ClientTls, std::thread::JoinHandle<()>);

/// Runs `role`: on loopback, `serve` on an ephemeral port then `client`
/// against it (with `in_process` true); as server, `serve` until its thread
/// ends (printing "`what` on ADDR"); as client, `client` only.
pub async fn run_role<S, SF, C, CF>(role: Role, what: &str, serve: S, client: C) -> Result<(), BoxError>
where
    S: FnOnce(SocketAddr, Option<String>) -> SF,
    SF: Future<Output = Result<Served, BoxError>>,
    C: FnOnce(SocketAddr, ClientTls, bool) -> CF,
    CF: Future<Output = Result<(), BoxError>>,
{
    match role {
        Role::Loopback => {
            let (p, tls, server) = serve(SocketAddr::from(([127, 0, 0, 1], 0)), None).await?;
            client(p.local_addr()?, tls, true).await?;
            finish(p, server).await;
        }
        Role::Server { listen, certs } => {
            let (p, _, server) = serve(listen, Some(certs)).await?;
            println!("{what} on {}", p.local_addr()?);
            finish(p, server).await;
        }
        Role::Client { connect, tls } => client(connect, tls, false).await?,
    }
    Ok(())
}

/// Runs a simulation example (life, heatmap, tickers) in the role `net`
/// asks for, on the examples' [`runtime`]: `serve` writes `steps` steps
/// `interval_ms` apart, `client` shows them (see [`run_role`]; `what` is the
/// server's banner). `name` and `port` are the example's defaults: port,
/// and certificates in `/tmp/venom-<name>`.
pub fn run_simulation<SF, C, CF>(
    net: &RoleArgs,
    (name, port): (&str, u16),
    (steps, interval_ms): (u64, u64),
    what: &str,
    serve: impl FnOnce(SocketAddr, Option<String>, u64, Duration) -> SF,
    client: C,
) -> Result<(), BoxError>
where
    SF: Future<Output = Result<Served, BoxError>>,
    C: FnOnce(SocketAddr, ClientTls, bool) -> CF,
    CF: Future<Output = Result<(), BoxError>>,
{
    let role = net.resolve(port, &format!("/tmp/venom-{name}"))?;
    let interval = Duration::from_millis(interval_ms);
    runtime()?.block_on(run_role(role, what, |listen, certs| serve(listen, certs, steps, interval), client))
}

/// Creates the region `<example>-<pid>` laid out by `catalog` (the
/// catalog written into it) for an example's server side.
pub fn catalog_region(catalog: &Catalog, example: &str) -> Result<SeqWriter, BoxError> {
    let mut w = SeqWriter::create(&region_name(example), RegionConfig::new(catalog.region_size() as usize))?;
    catalog.write_to(&mut w)?;
    Ok(w)
}

/// The name [`catalog_region`] gives `example`'s region in this process.
pub fn region_name(example: &str) -> String {
    format!("{example}-{}", std::process::id())
}

/// Publishes `example`'s region (from [`catalog_region`]) on `listen` with
/// a fresh self-signed certificate (saved in `certs` when given); returns
/// the publisher and a client config pinned to it.
pub async fn publish(
    listen: SocketAddr,
    example: &str,
    certs: Option<&str>,
) -> Result<(Publisher, ClientTls), BoxError> {
    let (stls, ctls) = server_tls(certs)?;
    let src = Arc::new(SeqReader::open(&region_name(example))?);
    Ok((Publisher::bind(listen, src, stls, PublisherConfig::default()).await?, ctls))
}

/// The region of a grid simulation (heatmap, life): a one-element `u64`
/// step counter and an `n`x`n` grid of `T`, both named in the catalog at the
/// start of the region.
pub struct GridRegion<T> {
    /// The catalog naming both arrays.
    pub catalog: Catalog,
    /// The step counter.
    pub counter: Array<u64>,
    /// The grid, row-major.
    pub grid: Array<T>,
}

impl<T: Element> GridRegion<T> {
    /// The catalog and arrays for a counter named `counter` and an `n`x`n`
    /// grid named `grid`.
    pub fn new(counter: &str, grid: &str, n: usize) -> Result<Self, BoxError> {
        let catalog =
            Catalog::builder().array(counter, Dtype::U64, &[1]).array(grid, T::DTYPE, &[n as u64, n as u64]).build()?;
        let (counter, grid) = (Array::from_catalog(&catalog, counter)?, Array::from_catalog(&catalog, grid)?);
        Ok(GridRegion { catalog, counter, grid })
    }

    /// Writes `cells` and the counter `step` as one atomic step.
    pub fn write(&self, w: &mut SeqWriter, step: u64, cells: &[T]) -> venom_net::Result<()> {
        write_step(w, |s| {
            s.write_all(&self.grid, cells)?;
            s.set(&self.counter, &[0], step)
        })
        .map(drop)
    }
}

/// Runs an example's simulation on its own thread: `steps` times, after a
/// pause of `interval`, `step(t, writer)` writes step `t` (t = 1..=steps; a
/// failure ends the run with a message). Then it waits a moment so the
/// last step reaches the mirrors, and removes the region.
pub fn simulate(
    mut writer: SeqWriter,
    steps: u64,
    interval: Duration,
    mut step: impl FnMut(u64, &mut SeqWriter) -> venom_net::Result<()> + Send + 'static,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for t in 1..=steps {
            std::thread::sleep(interval);
            if let Err(e) = step(t, &mut writer) {
                eprintln!("server: {e}");
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(300));
        let _ = writer.unlink();
    })
}

/// Waits for the server's simulation thread to finish, then closes the
/// publisher (flushing what is in flight).
pub async fn finish(publisher: Publisher, server: std::thread::JoinHandle<()>) {
    let _ = tokio::task::spawn_blocking(move || server.join()).await;
    publisher.close().await;
}

/// The examples' tokio runtime: two worker threads (the machine they are
/// written for has two cores).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()
}

/// Mirrors `picks` of the region published at `addr` (server name
/// `localhost`, default limits) into a new local region `<local>-<pid>`,
/// waiting at most `timeout` for the catalog and the first snapshot.
pub async fn connect_mirror(
    addr: SocketAddr,
    tls: ClientTls,
    picks: &[Pick],
    local: &str,
    timeout: Duration,
) -> venom_net::Result<NamedMirror> {
    let local = format!("{local}-{}", std::process::id());
    NamedMirror::connect(addr, "localhost", tls, picks, &local, MirrorConfig::default(), timeout).await
}

/// Server TLS that also saves the self-signed certificate to `dir/server.der`
/// (for clients started in another terminal).
pub fn server_tls(dir: Option<&str>) -> Result<(ServerTls, ClientTls), BoxError> {
    let id = Identity::self_signed(&["localhost"])?;
    if let Some(d) = dir {
        std::fs::create_dir_all(d)?;
        std::fs::write(Path::new(d).join("server.der"), id.cert().as_ref())?;
    }
    Ok((ServerTls::new(&id)?, ClientTls::pinned(id.cert().clone())?))
}

/// Client TLS pinning the certificate a server saved with [`server_tls`].
pub fn client_tls(dir: &str) -> Result<ClientTls, BoxError> {
    let der = std::fs::read(Path::new(dir).join("server.der"))?;
    Ok(ClientTls::pinned(rustls::pki_types::CertificateDer::from(der))?)
}

/// The flags of a mesh example: without `--peer`, every peer runs in this
/// process; with it, one peer per terminal.
#[derive(clap::Args, Debug, Clone)]
pub struct MeshArgs {
    /// Run one peer only: its id.
    #[arg(long, value_name = "ID")]
    pub peer: Option<String>,
    /// One-peer mode: address to listen on.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// One-peer mode: the other peers, ID=ADDR,ID=ADDR,...
    #[arg(long, value_name = "ID=ADDR,...", value_parser = parse_peers)]
    pub peers: Option<Peers>,
    /// One-peer mode: key directory root; each peer reads only DIR/<its id>.
    #[arg(long, value_name = "DIR")]
    pub certs: Option<PathBuf>,
}

/// The `--peers` list.
pub type Peers = Vec<(String, SocketAddr)>;

/// One peer of a mesh example, from [`MeshArgs::one_peer`].
pub struct OnePeer {
    /// This peer's id.
    pub me: String,
    /// Where it listens.
    pub listen: SocketAddr,
    /// The peers it links to.
    pub peers: Peers,
    /// Its TLS material.
    pub tls: MeshTls,
}

impl MeshArgs {
    /// `None` without `--peer`; else the peer's settings (all flags
    /// required), its TLS read from (or, on first use, issued into) `--certs`.
    pub fn one_peer(&self, ids: &[&str]) -> Result<Option<OnePeer>, BoxError> {
        let Some(me) = &self.peer else { return Ok(None) };
        let (Some(listen), Some(peers), Some(certs)) = (self.listen, &self.peers, &self.certs) else {
            return Err("one-peer mode needs --peer, --listen, --peers and --certs (see --help)".into());
        };
        let tls = mesh_tls_from_dir(certs, me, ids)?;
        Ok(Some(OnePeer { me: me.clone(), listen, peers: peers.clone(), tls }))
    }
}

/// Parses `b=127.0.0.1:7002,c=127.0.0.1:7003`.
pub fn parse_peers(s: &str) -> Result<Peers, String> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (id, addr) = p.split_once('=').ok_or(format!("expected ID=ADDR, got {p:?}"))?;
            Ok((id.to_owned(), addr.parse().map_err(|e| format!("{addr}: {e}"))?))
        })
        .collect()
}

/// Issues a fresh mesh CA and one private key directory per peer:
/// `root/<id>/{ca.der,cert.der,key.der}`, each directory 0700 and each key
/// 0600 ([`MeshTls::save`]). The CA's private key is not kept. In a real
/// deployment, copy `root/<id>` to peer `id`'s host only.
pub fn issue_mesh_dirs(root: &Path, ids: &[&str]) -> Result<(), BoxError> {
    let ca = CertificateAuthority::new("venom-mesh-example-ca")?;
    for id in ids {
        MeshTls::issue(&ca, id)?.save(&root.join(id))?;
    }
    Ok(())
}

/// Mesh TLS for `me`, read from its own directory `root/<me>` only. On first
/// use (no `root/<me>` yet) every peer's directory is issued with
/// [`issue_mesh_dirs`] (run one peer first; the others then find theirs).
pub fn mesh_tls_from_dir(root: &Path, me: &str, ids: &[&str]) -> Result<MeshTls, BoxError> {
    if !root.join(me).exists() {
        issue_mesh_dirs(root, ids)?;
    }
    Ok(MeshTls::load(&root.join(me))?)
}
