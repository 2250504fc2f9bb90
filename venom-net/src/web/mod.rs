//! A live view of a region in the browser (feature `web`).
//!
//! [`WebView::serve`] serves one page and a WebSocket endpoint (axum) that
//! bridge any [`RegionSource`] (a local `SeqRegion`/`SeqReader`, the local
//! region of a [`NamedMirror`](crate::named::NamedMirror), a [`MemRegion`](crate::MemRegion))
//! to browsers. The page gets the region's [`Catalog`] as JSON, a snapshot of
//! the arrays, then deltas ([`frame`]: `(version, runs of changed bytes)`),
//! and draws every named array: 2-D (and higher) arrays as a canvas heat map,
//! 1-D arrays as a live line chart, with the version, update rate and lag.
//! The page is plain HTML/JS compiled into the binary (no build step, no CDN).
//!
//! ## Cost and back-pressure
//! One encoder thread per view reads the region's dirty chunks once per
//! version and diffs them against one shadow copy: N browsers cost one diff
//! and one encoded frame (`web/hub.rs` has the details). A browser that
//! cannot keep up is conflated (latest state wins): it holds at most one
//! pending frame plus a dirty bitmap of `view_len / 16` bits; the writer
//! never waits, nothing queues without bound. A browser that disconnects
//! (or does not accept a frame within `send_timeout`) frees all of it.
//! The encoder publishes at most `max_fps` versions per second.
//!
//! The page's *lag* is the browser's clock at receipt minus the server's
//! clock when the encoder read that version: exact when both run on one
//! host, off by the clock skew otherwise. It does not include the time
//! between the writer's write and the encoder's read (the region keeps no
//! write timestamps; that wait is at most one `max_fps` interval plus the
//! wakeup latency).
//!
//! ## Security
//! Binds `127.0.0.1` by default. To expose it, set `listen` to another
//! address AND set `token`: every request must then carry `?token=...`
//! (the page passes it on to the WebSocket). **The token is the only
//! authentication, and it travels in plain HTTP**: use it on trusted
//! networks or behind a TLS-terminating proxy. WebSocket upgrades whose
//! `Origin` is not the page's own host are refused (another web site open in
//! the same browser cannot read the view), and a loopback listener answers
//! only `Host: localhost` / loopback addresses (no DNS rebinding). The view is read-only: the server
//! never acts on what a browser sends (incoming messages are capped at 1 KiB
//! and ignored).
//!
//! The catalog is read once, when the view starts; restart the view after
//! re-laying-out a region.
//!
//! ```no_run
//! # async fn f() -> venom_net::Result<()> {
//! use std::sync::Arc;
//! use venom_net::proto::catalog::Catalog;
//! use venom_net::web::{WebConfig, WebView};
//! let reader = venom_core::SeqReader::open("life")?;
//! let catalog = Catalog::read_from(reader.region())?;
//! let view = WebView::serve(Arc::new(reader), catalog, WebConfig::default()).await?;
//! println!("open {}", view.url());
//! # Ok(()) }
//! ```

pub mod frame;
mod hub;
mod server;

use crate::proto::catalog::Catalog;
use crate::{Dtype, Error, RegionSource, Result, Snapshot};
use hub::Hub;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use hub::BLOCK;

/// Settings of a [`WebView`].
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// Address to listen on (default `127.0.0.1:8080`; port 0 picks one).
    pub listen: SocketAddr,
    /// Access token every request must carry as `?token=` (1..=128 of
    /// `[A-Za-z0-9_.~-]`); `None`: no check. The only authentication.
    pub token: Option<String>,
    /// Most browsers at once (more get HTTP 503). Default 32.
    pub max_browsers: usize,
    /// Largest frame sent; the view (the catalogued arrays) must fit in one
    /// snapshot frame. Default 16 MiB.
    pub max_frame_bytes: usize,
    /// Most versions published per second (higher rates are conflated). Default 60.
    pub max_fps: u32,
    /// A browser that does not take a frame within this time is dropped. Default 10 s.
    pub send_timeout: Duration,
    /// Shown as the page heading.
    pub title: String,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            token: None,
            max_browsers: 32,
            max_frame_bytes: 16 << 20,
            max_fps: 60,
            send_timeout: Duration::from_secs(10),
            title: "venom live view".into(),
        }
    }
}

/// Server-side counters of a [`WebView`].
#[derive(Debug, Clone, Default)]
pub struct WebStats {
    /// Region version of the shadow (what a newly connected browser gets).
    pub version: u64,
    /// Browsers connected now.
    pub browsers: usize,
    /// Browsers accepted since start.
    pub browsers_total: u64,
    /// Requests refused (bad token, foreign origin, too many browsers).
    pub rejected: u64,
    /// Region versions folded into the shadow.
    pub versions: u64,
    /// Delta frames encoded (once for all browsers).
    pub delta_frames: u64,
    /// Bytes of those frames (headers included).
    pub delta_bytes: u64,
    /// Changed bytes carried by those frames (the runs' payload).
    pub changed_bytes: u64,
    /// Runs in those frames.
    pub runs: u64,
    /// Frames built for one browser that had fallen behind.
    pub conflated_frames: u64,
    /// Snapshot frames (one per browser connection).
    pub snapshot_frames: u64,
    /// Frames sent, over all browsers.
    pub frames_sent: u64,
    /// Bytes sent in binary frames, over all browsers.
    pub bytes_sent: u64,
    /// The last error reading the region, if any.
    pub last_error: Option<String>,
}

/// Counters kept outside the hub lock (relaxed: statistics only, no
/// ordering with other memory is implied).
#[derive(Default)]
struct Counters {
    browsers_total: AtomicU64,
    rejected: AtomicU64,
    frames_sent: AtomicU64,
    bytes_sent: AtomicU64,
}

/// State shared by the encoder thread and the HTTP handlers.
struct Shared {
    hub: Mutex<Hub>,
    counters: Counters,
    /// Browsers connected or being upgraded (the cap is checked on it).
    browsers: AtomicUsize,
    last_error: Mutex<Option<String>>,
    cfg: WebConfig,
    hello: String,
    view_len: usize,
}

impl Shared {
    fn hub(&self) -> MutexGuard<'_, Hub> {
        // Hub methods do not panic midway on valid input; a poisoned lock
        // still holds a usable shadow.
        self.hub.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running view: the HTTP/WebSocket server and the encoder thread.
/// Dropping it stops both (use [`close`](Self::close) to wait for them).
pub struct WebView {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    encoder: Option<std::thread::JoinHandle<()>>,
    server: tokio::task::JoinHandle<()>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

fn wall_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64() * 1e3).unwrap_or(0.0)
}

fn dtype_name(d: Dtype) -> &'static str {
    match d {
        Dtype::U8 => "u8",
        Dtype::I8 => "i8",
        Dtype::U16 => "u16",
        Dtype::I16 => "i16",
        Dtype::U32 => "u32",
        Dtype::I32 => "i32",
        Dtype::F32 => "f32",
        Dtype::U64 => "u64",
        Dtype::I64 => "i64",
        Dtype::F64 => "f64",
    }
}

fn valid_token(t: &str) -> bool {
    (1..=128).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.~-".contains(&b))
}

impl WebView {
    /// Starts serving `source`, whose arrays `catalog` describes (offsets in
    /// `source`). Must be called inside a tokio runtime. Fails on a bad
    /// token, a view larger than `max_frame_bytes`, or a bind error.
    pub async fn serve(source: Arc<dyn RegionSource>, catalog: Catalog, cfg: WebConfig) -> Result<WebView> {
        if cfg.token.as_deref().is_some_and(|t| !valid_token(t)) {
            return Err(Error::Web("token must be 1..=128 of [A-Za-z0-9_.~-]".into()));
        }
        let view_len = catalog
            .arrays()
            .iter()
            .filter_map(|a| a.byte_len().map(|l| a.offset + l))
            .max()
            .ok_or_else(|| Error::Web("the catalog has no arrays".into()))? as usize;
        if view_len > source.size() {
            return Err(Error::Web(format!("catalog needs {view_len} bytes, region has {}", source.size())));
        }
        if view_len > u32::MAX as usize
            || view_len + frame::HEADER_BYTES + frame::RUN_HEADER_BYTES > cfg.max_frame_bytes
        {
            return Err(Error::Web(format!(
                "view of {view_len} bytes exceeds max_frame_bytes {}",
                cfg.max_frame_bytes
            )));
        }
        let mut snap = Snapshot::default();
        let hub = Hub::new(source.as_ref(), view_len, &mut snap, wall_ms())?;
        let arrays: Vec<_> = catalog
            .arrays()
            .iter()
            .map(|a| {
                serde_json::json!({"name": a.name, "dtype": dtype_name(a.dtype), "shape": a.shape, "offset": a.offset})
            })
            .collect();
        let hello = serde_json::json!({
            "type": "hello", "title": cfg.title, "view_len": view_len, "max_fps": cfg.max_fps, "arrays": arrays,
        })
        .to_string();
        let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            hub: Mutex::new(hub),
            counters: Counters::default(),
            browsers: AtomicUsize::new(0),
            last_error: Mutex::new(None),
            cfg,
            hello,
            view_len,
        });
        let stop = Arc::new(AtomicBool::new(false));
        let encoder = {
            let (shared, stop) = (shared.clone(), stop.clone());
            std::thread::Builder::new()
                .name("venom-web-encoder".into())
                .spawn(move || encode_loop(source.as_ref(), &shared, &stop, snap))?
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let server = tokio::spawn(server::run(listener, shared.clone(), rx));
        Ok(WebView { addr, shared, stop, encoder: Some(encoder), server, shutdown: Some(tx) })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The page's URL (with the token, if any).
    pub fn url(&self) -> String {
        match &self.shared.cfg.token {
            Some(t) => format!("http://{}/?token={t}", self.addr),
            None => format!("http://{}/", self.addr),
        }
    }

    /// Bytes of the region the browsers mirror (catalog prefix and arrays).
    pub fn view_len(&self) -> usize {
        self.shared.view_len
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> WebStats {
        let (version, browsers, hub_counters) = {
            let hub = self.shared.hub();
            (hub.version(), hub.browsers(), hub.counters.clone())
        };
        let a = &self.shared.counters;
        WebStats {
            version,
            browsers,
            browsers_total: a.browsers_total.load(Ordering::Relaxed),
            rejected: a.rejected.load(Ordering::Relaxed),
            frames_sent: a.frames_sent.load(Ordering::Relaxed),
            bytes_sent: a.bytes_sent.load(Ordering::Relaxed),
            last_error: self.shared.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            ..hub_counters
        }
    }

    fn stop(&mut self) {
        // Relaxed: a flag polled by the encoder loop; nothing else is published through it.
        self.stop.store(true, Ordering::Relaxed);
        self.shared.hub().close();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Stops serving, ends every browser session and joins the encoder.
    pub async fn close(mut self) {
        self.stop();
        let server = std::mem::replace(&mut self.server, tokio::spawn(async {}));
        if tokio::time::timeout(Duration::from_secs(2), server).await.is_err() {
            // Connections that stay open past the grace period are cut.
            self.server.abort();
        }
        if let Some(h) = self.encoder.take() {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
    }
}

impl Drop for WebView {
    fn drop(&mut self) {
        self.stop();
        self.server.abort();
    }
}

/// Waits for region changes, folds them into the hub, at most `max_fps` per second.
fn encode_loop(src: &dyn RegionSource, shared: &Shared, stop: &AtomicBool, mut snap: Snapshot) {
    let min_gap = Duration::from_secs(1) / shared.cfg.max_fps.max(1);
    let mut version = shared.hub().version();
    let mut last = Instant::now();
    // Relaxed: see `WebView::stop`.
    while !stop.load(Ordering::Relaxed) {
        match src.wait_for_change(version, Duration::from_millis(100)) {
            Ok(_) => {}
            Err(Error::Timeout(_) | Error::Region(venom_core::Error::Timeout(_))) => continue,
            Err(e) => {
                *shared.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        }
        // Rate cap: changes arriving meanwhile are folded into the next read.
        let wait = min_gap.saturating_sub(last.elapsed());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        if let Err(e) = src.snapshot_since(version, &mut snap) {
            *shared.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        last = Instant::now();
        version = snap.version;
        shared.hub().publish(&snap, wall_ms());
    }
}
