//! The publisher I/O shell: a quinn server with one task per connection,
//! each walking the [`Admission`] life cycle.

use super::framing::{Incoming, is_protocol_error, spawn_reader};
use super::{CLOSED, PROTOCOL_ERROR, bind_endpoint};
use crate::error::{Error, Result};
use crate::proto::Now;
use crate::proto::admission::{Admission, AdmissionStats, Refusal, Stage};
use crate::proto::encoder::{EncoderStats, RegionEncoder};
use crate::proto::frame::{Frame, MAX_CONTROL_BODY};
use crate::proto::policy::PeerId;
use crate::proto::publisher::{PublisherConfig, PublisherSession};
use crate::proto::region::{RegionSource, Snapshot};
use crate::proto::relay::{SharedEncoder, read, write};
use crate::proto::stats::PublisherStats;
use crate::proto::transmit::Transmit;
use crate::tls::ServerTls;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// Bytes quinn may buffer for one connection attempt before the accept loop decides on it.
const INCOMING_BUFFER: u64 = 64 << 10;

/// Serves one region to any number of mirrors.
///
/// One encoder thread per region sleeps on the region's futex, diffs each
/// new version ONCE against the region's shared shadow and appends the
/// encoded delta to the replication backlog
/// ([`RegionEncoder`](crate::proto::encoder::RegionEncoder)), then wakes the
/// mirror tasks. Each mirror gets its own task and its own
/// [`PublisherSession`], which only cuts the shared deltas to its
/// subscription, so a slow mirror only delays itself: its changes conflate
/// in the backlog while QUIC flow control holds its task back, and the
/// writer, the encoder and the other mirrors never wait for it.
///
/// ```no_run
/// # async fn f() -> venom_net::Result<()> {
/// use std::sync::Arc;
/// use venom_net::{io::Publisher, tls::{Identity, ServerTls}, PublisherConfig};
/// let region = Arc::new(venom_core::SeqReader::open("prices")?);
/// let id = Identity::self_signed(&["localhost"])?;
/// let publisher = Publisher::bind("127.0.0.1:4433".parse().unwrap(), region, ServerTls::new(&id)?,
///     PublisherConfig::default()).await?;
/// # Ok(()) }
/// ```
pub struct Publisher {
    endpoint: quinn::Endpoint,
    shared: Arc<Shared>,
    watcher: Option<std::thread::JoinHandle<()>>,
}

/// A region's shared encoder and the signal that wakes its sessions (a
/// relay mirror creates it before its publisher binds).
pub(crate) struct Feed {
    pub(crate) encoder: SharedEncoder,
    /// Latest version encoded.
    pub(crate) version: watch::Sender<u64>,
}

impl Feed {
    pub(crate) fn new(encoder: RegionEncoder) -> Arc<Feed> {
        Arc::new(Self::from_shared(Arc::new(std::sync::RwLock::new(encoder))))
    }

    pub(crate) fn from_shared(encoder: SharedEncoder) -> Feed {
        let (version, _) = watch::channel(read(&encoder).version());
        Feed { encoder, version }
    }
}

struct Shared {
    feed: Arc<Feed>,
    cfg: PublisherConfig,
    sessions: Mutex<Vec<SessionSlot>>,
    admission: Mutex<Admission>,
    /// Per refusal kind: when it was last logged at warn level, and how many since.
    log_marks: Mutex<[(Option<std::time::Instant>, u64); 5]>,
    /// Connections awaiting their hello, by id (to close one the admission evicts).
    pending: Mutex<HashMap<u64, quinn::Connection>>,
    next_id: AtomicU64,
    stop: AtomicBool,
}

struct SessionSlot {
    id: u64,
    conn: quinn::Connection,
    stats: Arc<Mutex<PublisherStats>>,
}

impl Publisher {
    /// Binds `addr` and starts serving `region`. Call inside a tokio runtime.
    /// The epoch is taken from the wall clock, so it grows across restarts.
    pub async fn bind(
        addr: SocketAddr,
        region: Arc<dyn RegionSource>,
        tls: ServerTls,
        cfg: PublisherConfig,
    ) -> Result<Publisher> {
        let epoch = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1) | 1;
        let encoder = RegionEncoder::from_region(epoch, &*region, cfg.encoder(0))?;
        Self::serve(addr, Feed::new(encoder), Some(region), tls, cfg).await
    }

    /// Republishes a relay mirror's local copy (a [`Mirror`](super::Mirror) connected with [`MirrorConfig::relay`](crate::MirrorConfig::relay))
    /// to further mirrors: same protocol, TLS and authorization; the
    /// upstream's epochs and seqs are served unchanged, so fan-out becomes a
    /// tree across hosts. Mirrors that connect before the relay has its
    /// first upstream update wait for it. `cfg.backlog_bytes` is ignored
    /// (the relay's encoder was configured by `MirrorConfig::relay`).
    pub async fn bind_relay(
        addr: SocketAddr,
        relay: &super::Mirror,
        tls: ServerTls,
        cfg: PublisherConfig,
    ) -> Result<Publisher> {
        let feed = relay.feed().ok_or(Error::Protocol("not a relay mirror (set MirrorConfig::relay)".into()))?;
        Self::serve(addr, feed, None, tls, cfg).await
    }

    async fn serve(
        addr: SocketAddr,
        feed: Arc<Feed>,
        region: Option<Arc<dyn RegionSource>>,
        tls: ServerTls,
        cfg: PublisherConfig,
    ) -> Result<Publisher> {
        let limits = &cfg.admission;
        let mut server = tls.0.clone();
        // Attempts quinn holds for the accept loop, and the bytes it buffers for them.
        let max_incoming = limits.max_handshaking.max(1) * 4;
        server.max_incoming(max_incoming);
        server.incoming_buffer_size(INCOMING_BUFFER);
        server.incoming_buffer_size_total(INCOMING_BUFFER * max_incoming as u64);
        let endpoint = bind_endpoint(addr, Some(&ServerTls(server)))?;
        let admission = Mutex::new(Admission::new(limits.clone(), cfg.max_mirrors));
        let shared = Arc::new(Shared {
            feed,
            cfg,
            sessions: Mutex::new(Vec::new()),
            admission,
            pending: Mutex::new(HashMap::new()),
            log_marks: Mutex::new([(None, 0); 5]),
            next_id: AtomicU64::new(1),
            stop: AtomicBool::new(false),
        });
        let watcher = match region {
            Some(region) => {
                let s = shared.clone();
                let t = std::thread::Builder::new().name("venom-net-encode".into());
                Some(t.spawn(move || encode_region(&s, &*region))?)
            }
            None => None, // a relay's encoder is fed by its mirror
        };
        let (ep, s) = (endpoint.clone(), shared.clone());
        tokio::spawn(async move {
            while let Some(incoming) = ep.accept().await {
                // Before quinn allocates any connection state.
                if incoming.may_retry() && lock(&s.admission).wants_retry(incoming.remote_address_validated()) {
                    let _ = incoming.retry(); // may_retry() held, so this cannot fail
                    continue;
                }
                if lock(&s.admission).offer().is_err() {
                    s.log_refusal(
                        Refusal::Busy,
                        incoming.remote_address(),
                        &PeerId::Anonymous,
                        "connection cap reached",
                    );
                    incoming.refuse();
                    continue;
                }
                let id = s.next_id.fetch_add(1, Ordering::Relaxed); // unique ids only; no ordering needed
                let ticket = Ticket { s: s.clone(), id, stage: Some(Stage::Handshaking), peer: PeerId::Anonymous };
                tokio::spawn(connection(incoming, ticket));
            }
        });
        Ok(Publisher { endpoint, shared, watcher })
    }

    /// The bound address.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.endpoint.local_addr()?)
    }

    /// The epoch served (a relay's is its upstream's; 0 before it has one).
    pub fn epoch(&self) -> u64 {
        read(&self.shared.feed.encoder).epoch().unwrap_or(0)
    }

    /// The shared encoder's counters (deltas, CoW copies, backlog).
    pub fn encoder_stats(&self) -> EncoderStats {
        read(&self.shared.feed.encoder).stats()
    }

    /// Admission counters: connections per stage, refusals by reason.
    pub fn admission(&self) -> AdmissionStats {
        lock(&self.shared.admission).stats().clone()
    }

    /// Statistics of every connected mirror.
    pub fn stats(&self) -> Vec<PublisherStats> {
        let v = read(&self.shared.feed.encoder).version();
        lock(&self.shared.sessions)
            .iter()
            .map(|s| {
                let mut st = lock(&s.stats).clone();
                st.lag_seq = v.saturating_sub(st.acked_seq) / 2;
                st
            })
            .collect()
    }

    /// Closes every mirror connection (they reconnect and resync).
    pub fn disconnect_all(&self) {
        for s in lock(&self.shared.sessions).iter() {
            s.conn.close(CLOSED.into(), b"disconnect");
        }
    }

    /// Stops serving: closes all connections and the endpoint.
    pub async fn close(mut self) {
        self.shutdown();
        self.endpoint.wait_idle().await;
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed); // a flag only; no data is published through it
        self.endpoint.close(CLOSED.into(), b"publisher closed");
        if let Some(w) = self.watcher.take() {
            let _ = w.join();
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The region's encoder thread: sleeps on the region's change futex, reads
/// each new version's dirty chunks (outside the encoder lock, so sessions
/// keep cutting frames meanwhile), diffs and encodes them once, and wakes
/// the sessions.
fn encode_region(s: &Shared, region: &dyn RegionSource) {
    let mut snap = Snapshot::default();
    while !s.stop.load(Ordering::Relaxed) {
        let last = read(&s.feed.encoder).version(); // only this thread changes it
        match region.wait_for_change(last, Duration::from_millis(50)) {
            Ok(_) => {
                if let Err(e) = region.snapshot_since(last, &mut snap) {
                    tracing::warn!(error = %e, "region snapshot failed");
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
                let now = crate::proto::Now::system().wall_ns;
                let v = {
                    let mut enc = write(&s.feed.encoder);
                    enc.ingest_snapshot(&mut snap, now); // may take a dense delta's bytes over
                    enc.version()
                };
                if !crate::proto::encoder::keeps_snapshot_buffer(snap.data.capacity(), region.size()) {
                    snap = Snapshot::default(); // a huge step: do not keep its buffer
                }
                s.feed.version.send_replace(v);
            }
            Err(Error::Timeout(_)) => {}
            Err(e) => {
                tracing::warn!(error = %e, "region wait failed");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

impl Shared {
    /// Logs a refusal at warn level at most once a second per kind (with the
    /// number of refusals since), at debug level otherwise: a flood must not
    /// turn into a log flood. The counters are in `Publisher::admission`.
    fn log_refusal(&self, reason: Refusal, remote: SocketAddr, peer: &PeerId, what: &str) {
        let now = std::time::Instant::now();
        let mut marks = lock(&self.log_marks);
        let (last, since) = &mut marks[reason.code() as usize - 2];
        *since += 1;
        if last.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1)) {
            tracing::warn!(%remote, %peer, %reason, refusals = *since, "{what}");
            (*last, *since) = (Some(now), 0);
        } else {
            tracing::debug!(%remote, %peer, %reason, "{what}");
        }
    }
}

/// A connection's place in the admission life cycle; leaving it (drop)
/// releases the stage's slot.
struct Ticket {
    s: Arc<Shared>,
    id: u64,
    /// `None` once the admission already released the slot.
    stage: Option<Stage>,
    peer: PeerId,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        lock(&self.s.pending).remove(&self.id);
        if let Some(stage) = self.stage.take() {
            lock(&self.s.admission).end(self.id, stage);
        }
    }
}

/// Handshake (bounded by the handshake deadline), identity and per-identity
/// limit, then the session. Every way out closes the connection with a code.
async fn connection(incoming: quinn::Incoming, mut t: Ticket) {
    let remote = incoming.remote_address();
    let deadline = t.s.cfg.admission.handshake_timeout;
    let conn = match tokio::time::timeout(deadline, async { incoming.accept()?.await }).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return tracing::debug!(%remote, error = %e, "handshake failed"),
        Err(_) => return tracing::debug!(%remote, "handshake timed out"), // dropping the future drops the connection
    };
    let peer = match PeerId::of_connection(&conn) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(%remote, error = %e, "unparsable peer certificate");
            conn.close(PROTOCOL_ERROR.into(), b"bad certificate");
            return;
        }
    };
    t.stage = None; // from here on, every path leaves Handshaking through the admission
    if !t.s.cfg.policy.admits(&peer) {
        // Before it takes an identity or awaiting-hello slot.
        lock(&t.s.admission).refuse_after_handshake(Refusal::Unauthorized);
        t.s.log_refusal(Refusal::Unauthorized, remote, &peer, "identity not listed in the policy");
        return refuse(&conn, Refusal::Unauthorized, format!("{peer} is not listed"));
    }
    // Registered before the admission may name it as the oldest stalled
    // connection: another task's eviction must always find it to close it.
    lock(&t.s.pending).insert(t.id, conn.clone());
    let done = lock(&t.s.admission).handshake_done(t.id, &peer, remote.ip(), std::time::Instant::now());
    let evicted = match done {
        Ok(e) => e,
        Err(r) => {
            t.s.log_refusal(r, remote, &peer, "refusing connection"); // dropping `t` unregisters it
            return refuse(&conn, r, r.to_string());
        }
    };
    (t.stage, t.peer) = (Some(Stage::AwaitingHello), peer);
    if let Some(old) = evicted.and_then(|old| lock(&t.s.pending).remove(&old)) {
        let why = "awaiting-hello cap full: closing the oldest stalled connection";
        t.s.log_refusal(Refusal::HelloTimeout, old.remote_address(), &PeerId::Anonymous, why);
        refuse(&old, Refusal::HelloTimeout, "evicted: no hello while others waited".into());
    }
    serve(conn, t).await
}

fn refuse(conn: &quinn::Connection, r: Refusal, why: String) {
    let mut reason = why.into_bytes();
    reason.truncate(256);
    conn.close(r.code().into(), &reason);
}

async fn serve(conn: quinn::Connection, mut t: Ticket) {
    let s = t.s.clone();
    let id = t.id;
    let stats = Arc::new(Mutex::new(PublisherStats::default()));
    let remote = conn.remote_address();
    let r = run_session(&conn, &mut t, id, &stats).await;
    lock(&s.sessions).retain(|x| x.id != id);
    let peer = &t.peer;
    match r {
        Ok(()) => {
            tracing::debug!(%remote, %peer, "mirror session ended");
            conn.close(CLOSED.into(), b"bye");
        }
        Err(Error::Refused { reason, detail }) => {
            lock(&s.admission).count(reason);
            s.log_refusal(reason, remote, peer, "closing mirror connection");
            refuse(&conn, reason, detail);
        }
        Err(Error::Unauthorized(why)) => {
            lock(&s.admission).count(Refusal::Unauthorized);
            s.log_refusal(Refusal::Unauthorized, remote, peer, &why);
            refuse(&conn, Refusal::Unauthorized, why);
        }
        Err(e) if is_protocol_error(&e) => {
            lock(&s.admission).count_protocol_error();
            tracing::warn!(%remote, %peer, error = %e, "mirror broke the protocol; disconnecting");
            conn.close(PROTOCOL_ERROR.into(), b"protocol error");
        }
        Err(e) => {
            tracing::debug!(%remote, %peer, error = %e, "mirror session ended");
            conn.close(CLOSED.into(), b"session ended");
        }
    }
    // Closing the connection fails the reader task's pending read: nothing outlives the session.
}

fn refused(reason: Refusal) -> Error {
    Error::Refused { reason, detail: reason.to_string() }
}

async fn run_session(
    conn: &quinn::Connection,
    t: &mut Ticket,
    id: u64,
    stats: &Arc<Mutex<PublisherStats>>,
) -> Result<()> {
    let s = t.s.clone();
    let limits = &s.cfg.admission;
    // A Deadline, not `Instant + timeout`: a huge configured timeout must not overflow.
    let hello_by = venom_core::Deadline::after(limits.hello_timeout);
    let (mut send, recv) = tokio::time::timeout(hello_by.remaining(), conn.accept_bi())
        .await
        .map_err(|_| refused(Refusal::HelloTimeout))??;
    // The mirror only sends control frames: anything bigger is refused before it is buffered.
    let mut rx = spawn_reader(recv, MAX_CONTROL_BODY);
    let epoch = read(&s.feed.encoder).epoch().unwrap_or(0);
    let mut session = PublisherSession::new(epoch, 0, 0, s.cfg.clone());
    session.set_peer(t.peer.clone());
    let hello =
        tokio::time::timeout(hello_by.remaining(), rx.recv()).await.map_err(|_| refused(Refusal::HelloTimeout))?;
    handle(&mut session, hello, &s)?; // authorizes against the policy before allocating the shadow
    match lock(&s.admission).hello_done(t.id) {
        Ok(()) => {}
        Err(Refusal::HelloTimeout) => {
            // Evicted before the shell could close it (already counted).
            refuse(conn, Refusal::HelloTimeout, "evicted: no hello while others waited".into());
            return Err(Error::Closed);
        }
        Err(r) => return Err(refused(r)),
    }
    lock(&s.pending).remove(&t.id);
    t.stage = Some(Stage::Live);
    lock(&s.sessions).push(SessionSlot { id, conn: conn.clone(), stats: stats.clone() });
    let mut version = s.feed.version.subscribe();
    let liveness = limits.liveness_timeout;
    let mut out = Transmit::new();
    loop {
        while let Ok(m) = rx.try_recv() {
            handle(&mut session, Some(m), &s)?;
        }
        let now = Now::system();
        session.handle_timeout(now.mono);
        let more = session.poll_transmit_chunks(&read(&s.feed.encoder), now, &mut out)?;
        let st = session.stats(now.mono, 0);
        let silent = st.lag_time > liveness;
        *lock(stats) = st;
        if silent {
            return Err(refused(Refusal::Silent));
        }
        if more {
            // Awaits QUIC flow control: only this mirror's task waits, and not forever.
            // (`out` is empty after a slice of digest work: nothing to write.)
            // The payload slices reference the encoder's chunks and deltas:
            // quinn takes them without a copy.
            if !out.is_empty() {
                let mut chunks = out.take();
                let write = send.write_all_chunks(&mut chunks);
                tokio::pin!(write);
                let give_up = tokio::time::sleep(liveness);
                tokio::pin!(give_up);
                // The mirror's frames are handled while the write waits: a
                // protocol violation ends the session at once, even from a
                // mirror that stopped reading (it would otherwise hold the
                // session until `liveness`), and its acks keep flowing.
                loop {
                    tokio::select! {
                        r = &mut write => { r?; break; }
                        m = rx.recv() => handle(&mut session, m, &s)?,
                        _ = &mut give_up => return Err(refused(Refusal::Silent)),
                    }
                }
            }
            continue;
        }
        tokio::select! {
            r = version.changed() => if r.is_err() { return Ok(()) },
            m = rx.recv() => handle(&mut session, m, &s)?,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}

fn handle(session: &mut PublisherSession, m: Option<Incoming>, s: &Shared) -> Result<()> {
    let (h, body) = m.ok_or(Error::Closed)??;
    let frame = Frame::decode_body(h, &body)?;
    session.handle_frame(&frame, &read(&s.feed.encoder), crate::proto::frame::HEADER_LEN + body.len())
}
