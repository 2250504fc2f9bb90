//! The mirror I/O shell: connects, applies updates, reconnects with backoff.

use super::framing::{FrameReader, is_protocol_error};
use super::publisher::Feed;
use super::{CLOSED, PROTOCOL_ERROR, bind_endpoint};
use crate::error::{Error, Result};
use crate::proto::Now;
use crate::proto::admission::Refusal;
use crate::proto::encoder::EncoderConfig;
use crate::proto::mirror::{Applied, MirrorConfig, MirrorSession};
use crate::proto::region::RegionSink;
use crate::proto::relay::RelaySink;
use crate::proto::stats::{MirrorFailure, MirrorStats};
use crate::proto::subscription::Subscription;
use crate::tls::ClientTls;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::watch;

const BACKOFF_MIN: Duration = Duration::from_millis(20);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// A connection that lasted this long resets the reconnect backoff (and,
/// without `check_hash`, the fault count): a publisher can make the mirror
/// reconnect at most about once per this period, whatever it sends.
const HEALTHY_AFTER: Duration = Duration::from_secs(2);
/// Digest chunks hashed per slice of idle-time verification (~1 MiB): a
/// frame arriving meanwhile waits at most one slice.
const VERIFY_BUDGET_CHUNKS: usize = 64;
/// Applies of at least this many bytes run in `block_in_place`.
const BLOCKING_APPLY: usize = 1 << 20;

/// Runs `f` with `block_in_place` on a multi-thread runtime (so the
/// worker's other tasks move elsewhere meanwhile), inline otherwise.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    let multi = tokio::runtime::Handle::current().runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread;
    if multi { tokio::task::block_in_place(f) } else { f() }
}

/// A replica of (part of) a remote region in a local [`RegionSink`]
/// (normally a `SeqWriter`, whose readers use the ordinary venom-core API).
///
/// Limits:
/// * An update is applied in ONE sink write when its last frame arrives
///   (local readers see all of it or none), so its frame bodies are held
///   until then: at most twice the subscription size + 1 MiB (a hostile
///   publisher is cut off beyond that), and a full snapshot's apply (one
///   memcpy of the subscription) starts only after its last byte arrived.
/// * Up to 64 MiB of received bodies are kept for reuse; bodies are read
///   into that memory without zero-filling it first.
/// * The local region is pre-faulted once at start ([`RegionSink::prefault`],
///   best effort: `MADV_POPULATE_WRITE`, Linux 5.14+), so the first snapshot
///   does not fault each page inside its write window.
/// * Applies of 1 MiB or more run in `block_in_place` on a multi-thread
///   runtime (other tasks move off the worker meanwhile); smaller ones inline.
///
/// ```no_run
/// # async fn f(cert: rustls::pki_types::CertificateDer<'static>) -> venom_net::Result<()> {
/// use venom_net::{io::Mirror, tls::ClientTls, MirrorConfig, Subscription};
/// let local = venom_core::SeqWriter::create("prices-mirror", venom_core::RegionConfig::new(1 << 20))?;
/// let mirror = Mirror::connect("10.0.0.1:4433".parse().unwrap(), "localhost", Subscription::whole(),
///     ClientTls::pinned(cert)?, Box::new(local), MirrorConfig::default())?;
/// let applied = mirror.updates().next().await;
/// # Ok(()) }
/// ```
pub struct Mirror {
    shared: Arc<Shared>,
    /// A relay's encoder (see [`Mirror::connect_relay`]).
    feed: Option<Arc<Feed>>,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

struct Shared {
    /// (updates applied so far, last applied, terminal failure) for blocking waiters.
    state: Mutex<(u64, Option<Applied>, Option<MirrorFailure>)>,
    cond: Condvar,
    applied_tx: watch::Sender<Option<std::result::Result<Applied, MirrorFailure>>>,
    stats: Mutex<MirrorStats>,
    last_error: Mutex<Option<String>>,
    /// Why the publisher last refused or ended the session, when it said why.
    refusal: Mutex<Option<Refusal>>,
    /// Wakes the session to request a snapshot.
    resync: tokio::sync::Notify,
}

/// Async stream of applied updates (latest-value: intermediate updates that
/// were applied while nobody polled are skipped, like the data itself).
pub struct UpdateStream(watch::Receiver<Option<std::result::Result<Applied, MirrorFailure>>>);

impl UpdateStream {
    /// Waits for the next applied update. [`Error::MirrorFailed`] once the
    /// mirror gave up on its publisher, [`Error::Closed`] once it is closed.
    pub async fn next(&mut self) -> Result<Applied> {
        loop {
            self.0.changed().await.map_err(|_| Error::Closed)?;
            match *self.0.borrow_and_update() {
                Some(Ok(a)) => return Ok(a),
                Some(Err(f)) => return Err(Error::MirrorFailed(f)),
                None => {}
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Mirror {
    /// Starts mirroring `subscription` from the publisher at `addr` into
    /// `sink`. Returns at once; connection, reconnection (exponential
    /// backoff 20 ms..2 s) and resync run on a tokio task. Call inside a
    /// tokio runtime.
    pub fn connect(
        addr: SocketAddr,
        server_name: &str,
        subscription: Subscription,
        tls: ClientTls,
        sink: Box<dyn RegionSink>,
        cfg: MirrorConfig,
    ) -> Result<Mirror> {
        Self::start(addr, server_name, subscription, tls, sink, cfg, None)
    }

    /// Like [`connect`](Self::connect), for a **relay**: every update this
    /// mirror applies to `sink` is also fed, tagged with the upstream's
    /// `(epoch, seq)`, to a shared encoder (configured by `relay`: backlog
    /// size, frame payload) that [`Publisher::bind_relay`](super::Publisher::bind_relay)
    /// serves to further mirrors. Chains of relays form a fan-out tree in
    /// which every level holds the same `(epoch, seq)` names for the same
    /// bytes, so a downstream mirror resumes across a relay restart whenever
    /// its position is still the relay's.
    pub fn connect_relay(
        addr: SocketAddr,
        server_name: &str,
        subscription: Subscription,
        tls: ClientTls,
        sink: Box<dyn RegionSink>,
        cfg: MirrorConfig,
        relay: EncoderConfig,
    ) -> Result<Mirror> {
        let mut sink = RelaySink::new(sink, relay)?;
        let feed = Arc::new(Feed::from_shared(sink.encoder()));
        let f = feed.clone();
        sink.on_update(Box::new(move |tag| {
            f.version.send_replace(tag.seq);
        }));
        Self::start(addr, server_name, subscription, tls, Box::new(sink), cfg, Some(feed))
    }

    /// The relay encoder's feed (for `Publisher::bind_relay`).
    pub(crate) fn feed(&self) -> Option<Arc<Feed>> {
        self.feed.clone()
    }

    fn start(
        addr: SocketAddr,
        server_name: &str,
        subscription: Subscription,
        tls: ClientTls,
        sink: Box<dyn RegionSink>,
        cfg: MirrorConfig,
        feed: Option<Arc<Feed>>,
    ) -> Result<Mirror> {
        let bind: SocketAddr =
            if addr.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().map_err(|_| Error::Closed)?;
        let mut endpoint = bind_endpoint(bind, None)?;
        endpoint.set_default_client_config(tls.0);
        let (applied_tx, _) = watch::channel(None);
        let shared = Arc::new(Shared {
            state: Mutex::new((0, None, None)),
            cond: Condvar::new(),
            applied_tx,
            stats: Mutex::new(MirrorStats::default()),
            last_error: Mutex::new(None),
            refusal: Mutex::new(None),
            resync: tokio::sync::Notify::new(),
        });
        let (stop, stop_rx) = watch::channel(false);
        let session = MirrorSession::new(cfg, subscription);
        let task = tokio::spawn(run(endpoint, addr, server_name.to_owned(), session, sink, shared.clone(), stop_rx));
        Ok(Mirror { shared, feed, stop, task: Some(task) })
    }

    /// Like [`connect`](Self::connect), mirroring into a new venom-core
    /// `SeqRegion` named `local_name` of `local_size` bytes (mode 0600), which
    /// local processes read with `venom_core::SeqReader::open(local_name)`.
    pub fn connect_named(
        addr: SocketAddr,
        server_name: &str,
        subscription: Subscription,
        tls: ClientTls,
        local_name: &str,
        local_size: usize,
        cfg: MirrorConfig,
    ) -> Result<Mirror> {
        let local = venom_core::SeqWriter::create(local_name, venom_core::RegionConfig::new(local_size))?;
        Self::connect(addr, server_name, subscription, tls, Box::new(local), cfg)
    }

    /// The last applied update.
    pub fn applied(&self) -> Option<Applied> {
        lock(&self.shared.state).1
    }

    /// An async stream of applied updates.
    pub fn updates(&self) -> UpdateStream {
        UpdateStream(self.shared.applied_tx.subscribe())
    }

    /// Blocks (do not call on a tokio worker) until an update is applied
    /// after this call, or `timeout` passes. [`Error::MirrorFailed`] once the
    /// mirror gave up on its publisher (see [`MirrorFailure`]).
    pub fn wait_for_update(&self, timeout: Duration) -> Result<Applied> {
        let start = lock(&self.shared.state).0;
        self.wait_until(timeout, |n, _| n > start)
    }

    /// Blocks until `pred(updates applied, last applied)` holds, or `timeout` passes.
    pub fn wait_until(&self, timeout: Duration, mut pred: impl FnMut(u64, Applied) -> bool) -> Result<Applied> {
        let deadline = venom_core::Deadline::after(timeout);
        let mut g = lock(&self.shared.state);
        loop {
            if let Some(f) = g.2 {
                return Err(Error::MirrorFailed(f));
            }
            if let Some(a) = g.1
                && pred(g.0, a)
            {
                return Ok(a);
            }
            let left = deadline.remaining();
            if left.is_zero() {
                return Err(Error::Timeout(timeout));
            }
            g = self.shared.cond.wait_timeout(g, left).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// Asks the publisher for a full snapshot over the current connection
    /// (for example after something else wrote to the local region).
    pub fn request_snapshot(&self) {
        self.shared.resync.notify_one();
    }

    /// Counters (including reconnects in `connections`).
    pub fn stats(&self) -> MirrorStats {
        lock(&self.shared.stats).clone()
    }

    /// The error that ended the last connection attempt, if any.
    pub fn last_error(&self) -> Option<String> {
        lock(&self.shared.last_error).clone()
    }

    /// The publisher's last typed refusal (a cap, the identity limit, its
    /// policy, a deadline; see [`Refusal`]), if it ever refused this mirror.
    pub fn last_refusal(&self) -> Option<Refusal> {
        *lock(&self.shared.refusal)
    }

    /// Disconnects and stops; the local region keeps the last applied update.
    pub async fn close(mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn run(
    endpoint: quinn::Endpoint,
    addr: SocketAddr,
    server_name: String,
    mut session: MirrorSession,
    mut sink: Box<dyn RegionSink>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    // Fault the local region in once, before the first snapshot is applied
    // inside a write window (see `RegionSink::prefault`).
    blocking(|| sink.prefault());
    let mut backoff = BACKOFF_MIN;
    let mut rng = crate::proto::jitter::Jitter::from_clock(0);
    while !*stop.borrow() {
        let started = Instant::now();
        let r = connect_once(&endpoint, addr, &server_name, &mut session, &mut *sink, &shared, &mut stop).await;
        let mut failure = None;
        let mut violation = false;
        match r {
            Ok(()) => {
                *lock(&shared.stats) = session.stats().clone();
                break; // stopped
            }
            Err(Error::MirrorFailed(f)) => failure = Some(f),
            Err(e) => {
                tracing::debug!(%addr, error = %e, "mirror connection ended");
                violation = is_protocol_error(&e);
                if violation && let Err(Error::MirrorFailed(f)) = session.record_protocol_fault() {
                    failure = Some(f);
                }
                *lock(&shared.last_error) = Some(e.to_string());
                if let Error::Refused { reason, .. } = &e {
                    *lock(&shared.refusal) = Some(*reason);
                }
            }
        }
        *lock(&shared.stats) = session.stats().clone();
        if let Some(f) = failure {
            tracing::warn!(%addr, failure = %f, "mirror gave up on its publisher");
            *lock(&shared.last_error) = Some(Error::MirrorFailed(f).to_string());
            lock(&shared.state).2 = Some(f);
            shared.cond.notify_all();
            shared.applied_tx.send_replace(Some(Err(f)));
            break;
        }
        if *stop.borrow() {
            break;
        }
        if started.elapsed() >= HEALTHY_AFTER {
            backoff = BACKOFF_MIN; // a long-lived connection: retry quickly
            if !violation {
                session.clear_faults();
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(rng.spread(backoff)) => {}
            _ = stop.changed() => break,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
    endpoint.close(CLOSED.into(), b"mirror closed");
    // Let local waiters observe the end.
    shared.applied_tx.send_modify(|_| {});
}

async fn connect_once(
    endpoint: &quinn::Endpoint,
    addr: SocketAddr,
    server_name: &str,
    session: &mut MirrorSession,
    sink: &mut dyn RegionSink,
    shared: &Shared,
    stop: &mut watch::Receiver<bool>,
) -> Result<()> {
    let conn = tokio::select! {
        c = endpoint.connect(addr, server_name)? => c?,
        _ = stop.changed() => return Ok(()),
    };
    session.stats_mut().connections += 1;
    let (mut send, mut recv) = conn.open_bi().await?;
    let mut reader = FrameReader::new();
    session.connect();
    let r = async {
        let mut verify_left = 0;
        loop {
            let mut out = Vec::new();
            while session.poll_transmit(&mut out) {}
            if !out.is_empty() {
                send.write_all(&out).await?;
            }
            let spare = session.take_buffer();
            // A resync held back by the backoff fires from here.
            let deferred = session.poll_timeout();
            let next = tokio::select! {
                // Frames first: digest work below only runs when none is ready.
                biased;
                f = reader.next(&mut recv, || spare) => f?, // cancel-safe
                _ = shared.resync.notified() => {
                    session.request_snapshot(Instant::now());
                    continue;
                }
                // Idle (no frame ready, acks sent) with digest chunks possibly
                // dirty: hash the next slice, then look for frames again.
                _ = tokio::task::yield_now(), if verify_left > 0 => {
                    let r = session.poll_verify(&*sink, VERIFY_BUDGET_CHUNKS, Instant::now());
                    *lock(&shared.stats) = session.stats().clone(); // a check may have completed
                    verify_left = r?;
                    continue;
                }
                _ = tokio::time::sleep_until(deferred.unwrap_or_else(Instant::now).into()), if deferred.is_some() => {
                    session.handle_timeout(Instant::now());
                    continue;
                }
                _ = stop.changed() => return Ok(()),
            };
            let Some((h, body)) = next else {
                return Err(conn.close_reason().map(Error::from).unwrap_or(Error::Closed));
            };
            // Applying a big update (a memcpy into shared memory, possibly a whole snapshot) may
            // take a while: let other tasks move off this worker meanwhile. Only then: the
            // hand-off costs more than staging a frame or applying a small delta.
            let applied = if session.apply_len(&h, &body) >= BLOCKING_APPLY {
                blocking(|| session.handle(h, body, sink, Now::system()))?
            } else {
                session.handle(h, body, sink, Now::system())?
            };
            *lock(&shared.stats) = session.stats().clone();
            if let Some(a) = applied {
                let mut g = lock(&shared.state);
                g.0 += 1;
                g.1 = Some(a);
                drop(g);
                shared.cond.notify_all();
                shared.applied_tx.send_replace(Some(Ok(a)));
            }
            // Integrity work only after the update is visible to local readers,
            // its ack is sent and no other frame is waiting (the select above).
            verify_left = usize::MAX;
        }
    }
    .await;
    match &r {
        Err(e) if is_protocol_error(e) => {
            tracing::warn!(%addr, error = %e, "publisher broke the protocol; disconnecting");
            conn.close(PROTOCOL_ERROR.into(), b"protocol error");
        }
        _ => conn.close(CLOSED.into(), b"bye"),
    }
    r
}
