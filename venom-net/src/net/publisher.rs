//! The publisher I/O shell: a quinn server with one task per mirror.

use super::framing::{Incoming, is_protocol_error, spawn_reader};
use super::{CLOSED, PROTOCOL_ERROR, bind_endpoint};
use crate::frame::Frame;
use crate::publisher::{PublisherConfig, PublisherSession};
use crate::region::RegionSource;
use crate::stats::PublisherStats;
use crate::tls::ServerTls;
use crate::{Error, Now, Result};
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// How long a new connection may take to send its hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves one region to any number of mirrors.
///
/// Each mirror gets its own task and its own [`PublisherSession`], so a slow
/// mirror only delays itself: its changes conflate in the region's dirty
/// tracking while QUIC flow control holds its task back, and the writer and
/// the other mirrors never wait for it. A change-watcher thread sleeps on
/// the region's futex and wakes the mirror tasks.
///
/// ```no_run
/// # async fn f() -> venom_net::Result<()> {
/// use std::sync::Arc;
/// use venom_net::{net::Publisher, tls::{Identity, ServerTls}, PublisherConfig};
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

struct Shared {
    region: Arc<dyn RegionSource>,
    epoch: u64,
    cfg: PublisherConfig,
    /// Latest region version seen by the watcher thread.
    version: watch::Sender<u64>,
    sessions: Mutex<Vec<SessionSlot>>,
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
        let endpoint = bind_endpoint(addr, Some(&tls))?;
        let epoch = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1) | 1;
        let (version, _) = watch::channel(region.version());
        let shared = Arc::new(Shared {
            region,
            epoch,
            cfg,
            version,
            sessions: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        let watcher = std::thread::Builder::new().name("venom-net-watch".into()).spawn(move || watch_region(&s))?;
        let (ep, s) = (endpoint.clone(), shared.clone());
        tokio::spawn(async move {
            while let Some(incoming) = ep.accept().await {
                if lock(&s.sessions).len() >= s.cfg.max_mirrors {
                    tracing::warn!(remote = %incoming.remote_address(), "mirror limit reached; refusing");
                    incoming.refuse();
                    continue;
                }
                let s = s.clone();
                tokio::spawn(async move {
                    let remote = incoming.remote_address();
                    match incoming.await {
                        Ok(conn) => serve(conn, s).await,
                        Err(e) => tracing::warn!(%remote, error = %e, "handshake failed"),
                    }
                });
            }
        });
        Ok(Publisher { endpoint, shared, watcher: Some(watcher) })
    }

    /// The bound address.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.endpoint.local_addr()?)
    }

    /// This incarnation's epoch.
    pub fn epoch(&self) -> u64 {
        self.shared.epoch
    }

    /// Statistics of every connected mirror.
    pub fn stats(&self) -> Vec<PublisherStats> {
        let v = self.shared.region.version();
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

/// Sleeps on the region's change futex and publishes each new version.
fn watch_region(s: &Shared) {
    let mut last = s.region.version();
    while !s.stop.load(Ordering::Relaxed) {
        match s.region.wait_for_change(last, Duration::from_millis(50)) {
            Ok(v) => {
                last = v;
                s.version.send_replace(v);
            }
            Err(Error::Timeout(_)) => {}
            Err(e) => {
                tracing::warn!(error = %e, "region wait failed");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

async fn serve(conn: quinn::Connection, s: Arc<Shared>) {
    let id = s.next_id.fetch_add(1, Ordering::Relaxed); // unique ids only; no ordering needed
    let stats = Arc::new(Mutex::new(PublisherStats::default()));
    lock(&s.sessions).push(SessionSlot { id, conn: conn.clone(), stats: stats.clone() });
    let remote = conn.remote_address();
    match run_session(&conn, &s, &stats).await {
        Ok(()) => tracing::debug!(%remote, "mirror session ended"),
        Err(e) if is_protocol_error(&e) => {
            tracing::warn!(%remote, error = %e, "mirror broke the protocol; disconnecting");
            conn.close(PROTOCOL_ERROR.into(), b"protocol error");
        }
        Err(e) => tracing::debug!(%remote, error = %e, "mirror session ended"),
    }
    lock(&s.sessions).retain(|x| x.id != id);
}

async fn run_session(conn: &quinn::Connection, s: &Shared, stats: &Mutex<PublisherStats>) -> Result<()> {
    let (mut send, recv) =
        tokio::time::timeout(HELLO_TIMEOUT, conn.accept_bi()).await.map_err(|_| Error::Timeout(HELLO_TIMEOUT))??;
    let mut rx = spawn_reader(recv);
    let mut session = PublisherSession::new(s.epoch, 0, 0, s.cfg.clone());
    let hello = tokio::time::timeout(HELLO_TIMEOUT, rx.recv()).await.map_err(|_| Error::Timeout(HELLO_TIMEOUT))?;
    handle(&mut session, hello, s)?;
    let mut version = s.version.subscribe();
    loop {
        while let Ok(m) = rx.try_recv() {
            handle(&mut session, Some(m), s)?;
        }
        let now = Now::system();
        session.handle_timeout(now.mono);
        let mut out = Vec::new();
        let more = session.poll_transmit(&*s.region, now, &mut out)?;
        *lock(stats) = session.stats(now.mono, 0);
        if more {
            // Awaits QUIC flow control: only this mirror's task waits. (`out`
            // is empty after a slice of digest work: nothing to write.)
            if !out.is_empty() {
                send.write_chunk(Bytes::from(out)).await?;
            }
            continue;
        }
        tokio::select! {
            r = version.changed() => if r.is_err() { return Ok(()) },
            m = rx.recv() => handle(&mut session, m, s)?,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}

fn handle(session: &mut PublisherSession, m: Option<Incoming>, s: &Shared) -> Result<()> {
    let (h, body) = m.ok_or(Error::Closed)??;
    let frame = Frame::decode_body(h, &body)?;
    session.handle_frame(&frame, &*s.region, crate::frame::HEADER_LEN + body.len())
}
