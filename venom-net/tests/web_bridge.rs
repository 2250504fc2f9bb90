//! The browser bridge (`web` feature) driven by a Rust WebSocket client:
//! frame sizes follow the changed cells, slow browsers are conflated to the
//! exact latest state, caps and access checks hold, disconnects free their slot.

use futures_util::StreamExt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use venom_net::proto::catalog::Catalog;
use venom_net::web::frame::{FrameKind, HEADER_BYTES, RUN_HEADER_BYTES, WebFrame};
use venom_net::web::{WebConfig, WebView};
use venom_net::{Dtype, MemRegion, RegionSink, RegionSource};

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;
const N: usize = 256;

fn life_region() -> (MemRegion, Catalog) {
    let cat = Catalog::builder().array("grid", Dtype::U8, &[N as u64, N as u64]).build().unwrap();
    let region = MemRegion::new(cat.region_size() as usize, 4096);
    region.write_at(0, &cat.encode().unwrap());
    (region, cat)
}

fn cfg() -> WebConfig {
    WebConfig { listen: "127.0.0.1:0".parse().unwrap(), max_fps: 1000, ..WebConfig::default() }
}

fn ws_url(view: &WebView, token: Option<&str>) -> String {
    let t = token.map(|t| format!("?token={t}")).unwrap_or_default();
    format!("ws://{}/ws{t}", view.local_addr())
}

async fn next_msg(ws: &mut Ws) -> Message {
    tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("a message within 10 s").unwrap().unwrap()
}

/// Connects, checks the hello and the snapshot; returns the socket and the browser's copy.
async fn open(view: &WebView, region: &MemRegion) -> (Ws, Vec<u8>, u64) {
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url(view, None)).await.unwrap();
    let Message::Text(hello) = next_msg(&mut ws).await else { panic!("hello first") };
    let hello: serde_json::Value = serde_json::from_str(&hello).unwrap();
    assert_eq!(hello["arrays"][0]["name"], "grid");
    assert_eq!(hello["view_len"], view.view_len());
    let Message::Binary(snap) = next_msg(&mut ws).await else { panic!("snapshot second") };
    assert_eq!(snap.len(), HEADER_BYTES + RUN_HEADER_BYTES + view.view_len());
    let f = WebFrame::decode(&snap, view.view_len()).unwrap();
    assert_eq!(f.kind, FrameKind::Snapshot);
    let mut copy = vec![0u8; view.view_len()];
    f.apply(&mut copy).unwrap();
    assert_eq!(copy, region.to_vec()[..view.view_len()]);
    (ws, copy, f.version)
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_bytes_are_proportional_to_changed_cells() {
    let (region, cat) = life_region();
    let grid = cat.get("grid").unwrap().offset as usize;
    let view = WebView::serve(Arc::new(region.clone()), cat, cfg()).await.unwrap();
    let (mut ws, mut copy, mut version) = open(&view, &region).await;
    let mut sink = region.clone();
    let mut flip = 1u8;
    for k in [1usize, 10, 100, 1000, 4000] {
        // k cells 16 bytes apart (beyond the 8-byte merge gap) change in ONE version.
        let cells: Vec<u8> = vec![flip; k];
        let writes: Vec<(usize, &[u8])> = (0..k).map(|i| (grid + 16 * i, &cells[i..i + 1])).collect();
        sink.apply(&writes).unwrap();
        flip = flip.wrapping_add(1).max(1);
        let Message::Binary(frame) = next_msg(&mut ws).await else { panic!("binary delta") };
        let f = WebFrame::decode(&frame, view.view_len()).unwrap();
        assert_eq!(f.kind, FrameKind::Delta);
        assert_eq!(f.base, version, "deltas chain");
        assert_eq!(f.runs.len(), k);
        assert_eq!(frame.len(), HEADER_BYTES + k * (RUN_HEADER_BYTES + 1), "k={k}: one byte + one run header per cell");
        f.apply(&mut copy).unwrap();
        assert_eq!(copy, region.to_vec()[..view.view_len()]);
        version = f.version;
    }
    // A contiguous change of c cells costs c bytes plus one header.
    sink.apply(&[(grid + 1000, &[9u8; 3000][..])]).unwrap();
    let Message::Binary(frame) = next_msg(&mut ws).await else { panic!() };
    assert_eq!(frame.len(), HEADER_BYTES + RUN_HEADER_BYTES + 3000);
    let st = view.stats();
    assert_eq!(st.delta_frames, 6);
    assert_eq!(st.changed_bytes, 1 + 10 + 100 + 1000 + 4000 + 3000);
    assert_eq!(st.delta_bytes, st.changed_bytes + RUN_HEADER_BYTES as u64 * st.runs + HEADER_BYTES as u64 * 6);
    assert!(st.delta_bytes < (6 * view.view_len()) as u64 / 2, "far below one region per update");
    ws.close(None).await.unwrap();
    view.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_browser_is_conflated_to_the_latest_state() {
    let (region, cat) = life_region();
    let grid = cat.get("grid").unwrap().offset as usize;
    let view = WebView::serve(Arc::new(region.clone()), cat, cfg()).await.unwrap();
    let (mut ws, mut copy, _) = open(&view, &region).await;
    // The browser reads nothing while 300 versions of ~64 KiB of changes go by:
    // far more than the socket buffers hold, so its session must conflate.
    let writer = {
        let region = region.clone();
        std::thread::spawn(move || {
            let mut x = 0x9E37_79B9_7F4A_7C15u64;
            for _ in 0..300 {
                let bytes: Vec<u8> = (0..N * N)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect();
                region.write_at(grid, &bytes);
                std::thread::sleep(Duration::from_millis(2));
            }
            region.version()
        })
    };
    let last = writer.join().unwrap();
    wait_for("the encoder to reach the last version", || view.stats().version == last).await;
    let (mut frames, mut at) = (0, 0);
    while at != last {
        let Message::Binary(frame) = next_msg(&mut ws).await else { panic!() };
        let f = WebFrame::decode(&frame, view.view_len()).unwrap();
        f.apply(&mut copy).unwrap();
        (frames, at) = (frames + 1, f.version);
    }
    assert_eq!(copy, region.to_vec()[..view.view_len()], "exact at the latest version");
    let st = view.stats();
    assert!(frames < 300, "{frames} frames for 300 versions: conflated");
    assert!(st.conflated_frames > 0, "{st:?}");
    view.close().await;
}

async fn http_status(addr: std::net::SocketAddr, path: &str) -> u16 {
    http_status_as(addr, &addr.to_string(), path).await
}

async fn http_status_as(addr: std::net::SocketAddr, host: &str, path: &str) -> u16 {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await.unwrap().unwrap();
    String::from_utf8_lossy(&out)[9..12].parse().unwrap()
}

fn refused_status(r: Result<(Ws, tokio_tungstenite::tungstenite::handshake::client::Response), WsError>) -> u16 {
    match r {
        Err(WsError::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("expected an HTTP refusal, got {e}"),
        Ok(_) => panic!("expected an HTTP refusal, got a WebSocket"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caps_tokens_origins_and_disconnects() {
    let (region, cat) = life_region();
    let guarded = WebConfig { max_browsers: 2, token: Some("s3cret-T0k".into()), ..cfg() };
    let view = WebView::serve(Arc::new(region.clone()), cat.clone(), guarded).await.unwrap();
    let addr = view.local_addr();
    assert!(view.url().ends_with("/?token=s3cret-T0k"));
    assert_eq!(http_status(addr, "/").await, 403);
    assert_eq!(http_status(addr, "/?token=wrong").await, 403);
    assert_eq!(http_status(addr, "/?token=s3cret-T0k").await, 200);
    assert_eq!(http_status_as(addr, &format!("localhost:{}", addr.port()), "/?token=s3cret-T0k").await, 200);
    // DNS rebinding: a foreign name pointing at 127.0.0.1 is refused.
    assert_eq!(http_status_as(addr, "evil.example:80", "/?token=s3cret-T0k").await, 403);
    assert_eq!(refused_status(tokio_tungstenite::connect_async(ws_url(&view, None)).await), 403);
    // Another web site open in the same browser may not read the view.
    let mut req = ws_url(&view, Some("s3cret-T0k")).into_client_request().unwrap();
    req.headers_mut().insert("Origin", "http://evil.example".parse().unwrap());
    assert_eq!(refused_status(tokio_tungstenite::connect_async(req).await), 403);
    let mut req = ws_url(&view, Some("s3cret-T0k")).into_client_request().unwrap();
    req.headers_mut().insert("Origin", format!("http://{addr}").parse().unwrap());
    let (a, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let (b, _) = tokio_tungstenite::connect_async(ws_url(&view, Some("s3cret-T0k"))).await.unwrap();
    assert_eq!(refused_status(tokio_tungstenite::connect_async(ws_url(&view, Some("s3cret-T0k"))).await), 503);
    wait_for("two sessions", || view.stats().browsers == 2).await;
    drop(a); // no close handshake: the TCP connection just goes away
    wait_for("the dropped browser's slot to be freed", || view.stats().browsers == 1).await;
    let (c, _) = tokio_tungstenite::connect_async(ws_url(&view, Some("s3cret-T0k"))).await.unwrap();
    wait_for("the new session", || view.stats().browsers == 2).await;
    let st = view.stats();
    assert_eq!((st.browsers_total, st.rejected), (3, 6));
    view.close().await;
    drop((b, c));

    // Bad configurations are typed errors.
    let bad = WebConfig { token: Some("has space".into()), ..WebConfig::default() };
    assert!(WebView::serve(Arc::new(region.clone()), cat.clone(), bad).await.is_err());
    let small = WebConfig { max_frame_bytes: 1024, ..cfg() };
    assert!(matches!(WebView::serve(Arc::new(region), cat, small).await, Err(venom_net::Error::Web(_))));
}
