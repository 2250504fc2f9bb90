//! The HTTP side: the page, the WebSocket endpoint, access checks, and one
//! session task per browser.

use super::Shared;
use super::hub::Next;
use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

const PAGE: &str = include_str!("page.html");
const SCRIPT: &str = include_str!("page.js");
/// Browsers only send pings and closes; anything larger is a protocol error.
const MAX_INCOMING: usize = 1024;

pub(super) async fn run(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    stop: tokio::sync::oneshot::Receiver<()>,
) {
    let app =
        Router::new().route("/", get(page)).route("/app.js", get(script)).route("/ws", get(ws)).with_state(shared);
    let _ = axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = stop.await;
        })
        .await;
}

/// Byte-wise comparison whose time does not depend on where the inputs differ.
fn same_token(given: &str, want: &str) -> bool {
    let (a, b) = (given.as_bytes(), want.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `localhost`, `127.x.y.z` or `[::1]`, with or without a port.
fn loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(n, _)| n),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Loopback host names (for a loopback listener), token (if configured) and, for WebSockets, same-origin checks.
fn admit(
    shared: &Shared,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    websocket: bool,
) -> Result<(), Response> {
    let refuse = |status: StatusCode, why: &'static str| {
        // Relaxed: a statistics counter.
        shared.counters.rejected.fetch_add(1, Ordering::Relaxed);
        Err((status, why).into_response())
    };
    // DNS rebinding: a foreign name resolving to 127.0.0.1 would pass the origin check,
    // so a loopback-only view answers loopback host names only.
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    if shared.cfg.listen.ip().is_loopback() && !loopback_host(host) {
        return refuse(StatusCode::FORBIDDEN, "Host must be localhost or a loopback address\n");
    }
    if let Some(want) = &shared.cfg.token
        && !query.get("token").is_some_and(|t| same_token(t, want))
    {
        return refuse(StatusCode::FORBIDDEN, "missing or wrong ?token=\n");
    }
    if websocket && let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let origin_host = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
        if host.is_empty() || origin_host != Some(host) {
            return refuse(StatusCode::FORBIDDEN, "cross-origin WebSocket refused\n");
        }
    }
    Ok(())
}

async fn page(State(shared): State<Arc<Shared>>, Query(q): Query<HashMap<String, String>>, h: HeaderMap) -> Response {
    if let Err(r) = admit(&shared, &q, &h, false) {
        return r;
    }
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], PAGE).into_response()
}

async fn script() -> Response {
    // The script holds no data; the token guards the page and the WebSocket.
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], SCRIPT)
        .into_response()
}

/// Holds one place under `max_browsers`; released on drop (also when the upgrade fails).
struct Seat(Arc<Shared>);

impl Seat {
    fn take(shared: &Arc<Shared>) -> Option<Seat> {
        // AcqRel/Acquire would buy nothing: the count guards no other memory; Relaxed RMWs
        // on one atomic are still totally ordered, so the cap holds.
        shared
            .browsers
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| (n < shared.cfg.max_browsers).then_some(n + 1))
            .ok()
            .map(|_| Seat(shared.clone()))
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        // Relaxed: see `Seat::take`.
        self.0.browsers.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn ws(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    if let Err(r) = admit(&shared, &q, &h, true) {
        return r;
    }
    let Some(seat) = Seat::take(&shared) else {
        // Relaxed: a statistics counter.
        shared.counters.rejected.fetch_add(1, Ordering::Relaxed);
        return (StatusCode::SERVICE_UNAVAILABLE, "too many browsers\n").into_response();
    };
    upgrade.max_message_size(MAX_INCOMING).max_frame_size(MAX_INCOMING).on_upgrade(move |socket| session(socket, seat))
}

/// One browser: hello, snapshot, then whatever the hub says is next.
async fn session(mut socket: WebSocket, seat: Seat) {
    let shared = seat.0.clone();
    // Relaxed: a statistics counter.
    shared.counters.browsers_total.fetch_add(1, Ordering::Relaxed);
    let (id, notify, snapshot) = shared.hub().register();
    let _ = serve_browser(&mut socket, &shared, id, &notify, snapshot).await;
    shared.hub().unregister(id);
    drop(seat);
}

async fn send(socket: &mut WebSocket, shared: &Shared, msg: Message) -> Result<(), ()> {
    let len = match &msg {
        Message::Binary(b) => b.len() as u64,
        _ => 0,
    };
    match tokio::time::timeout(shared.cfg.send_timeout, socket.send(msg)).await {
        Ok(Ok(())) => {
            // Relaxed: statistics counters.
            shared.counters.frames_sent.fetch_add((len > 0) as u64, Ordering::Relaxed);
            shared.counters.bytes_sent.fetch_add(len, Ordering::Relaxed);
            Ok(())
        }
        _ => Err(()),
    }
}

async fn serve_browser(
    socket: &mut WebSocket,
    shared: &Shared,
    id: u64,
    notify: &tokio::sync::Notify,
    snapshot: bytes::Bytes,
) -> Result<(), ()> {
    send(socket, shared, Message::Text(shared.hello.clone().into())).await?;
    send(socket, shared, Message::Binary(snapshot)).await?;
    loop {
        tokio::select! {
            () = notify.notified() => loop {
                // Lock only to take the next frame; the send happens unlocked.
                let next = shared.hub().next(id);
                match next {
                    Next::Send(frame) => send(socket, shared, Message::Binary(frame)).await?,
                    Next::Idle => break,
                    Next::Closed => {
                        let _ = socket.send(Message::Close(None)).await;
                        return Ok(());
                    }
                }
            },
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Ok(()),
                Some(Ok(_)) => {} // pings are answered by the library; the rest is ignored
            },
        }
    }
}
