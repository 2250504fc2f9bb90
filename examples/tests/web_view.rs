//! The browser view in a real headless Chromium: a life world writes
//! generations into a `SeqRegion` (keeping every generation by region
//! version), `venom_net::web` serves it, Chromium (driven over the DevTools
//! protocol) shows it; after N updates the page is paused, screenshotted,
//! and every cell's pixels are checked against the world at the version the
//! page says it displays. Skips loudly when Chromium is not installed
//! (`.ci/run` installs it).
//!
//! `VENOM_WEB_SCREENSHOT=docs/web_view.png` also saves the whole page.

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;
use venom_core::SeqReader;
use venom_examples::life_world::LifeWorld;
use venom_net::proto::catalog::Catalog;
use venom_net::web::{WebConfig, WebView};

const N: usize = 64;
const UPDATES: u64 = 25;

fn find_chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("VENOM_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// A headless Chromium with a fresh profile; killed (and its profile removed) on drop.
struct Browser {
    child: Child,
    profile: PathBuf,
}

impl Browser {
    fn launch(exe: &Path) -> Browser {
        let profile = std::env::temp_dir().join(format!("venom-web-view-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).unwrap();
        let child = Command::new(exe)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                "--mute-audio",
                "--remote-debugging-port=0",
                "--window-size=1280,900",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromium");
        Browser { child, profile }
    }

    /// The browser-level DevTools WebSocket URL (Chromium writes port and path
    /// to `DevToolsActivePort` in the profile once it listens).
    async fn devtools_url(&mut self, deadline: Instant) -> String {
        let file = self.profile.join("DevToolsActivePort");
        loop {
            if let Ok(s) = std::fs::read_to_string(&file)
                && let Some((port, path)) = s.split_once('\n')
                && path.trim().starts_with("/devtools/")
            {
                return format!("ws://127.0.0.1:{}{}", port.trim(), path.trim());
            }
            assert!(self.child.try_wait().unwrap().is_none(), "chromium exited before listening");
            assert!(Instant::now() < deadline, "chromium did not write DevToolsActivePort");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Unlinks the test's region however the test ends.
struct Unlink(String);

impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = venom_core::Segment::unlink_name(&self.0);
    }
}

/// A minimal DevTools protocol client: one flattened page session.
struct Cdp {
    ws: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    next_id: u64,
    session: Option<String>,
}

impl Cdp {
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        self.ws.send(Message::Text(msg.to_string().into())).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let m = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no answer to {method} within 10 s"))
                .expect("devtools connection open")
                .unwrap();
            let Message::Text(t) = m else { continue };
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["id"] == json!(id) {
                assert!(v.get("error").is_none(), "{method} failed: {}", v["error"]);
                return v["result"].clone();
            } // events and other answers are skipped
        }
    }

    async fn eval(&mut self, expr: &str) -> Value {
        let r = self.call("Runtime.evaluate", json!({"expression": expr, "returnByValue": true})).await;
        assert!(r.get("exceptionDetails").is_none(), "{expr}: {}", r["exceptionDetails"]);
        r["result"]["value"].clone()
    }

    async fn screenshot(&mut self, clip: Option<Value>) -> Vec<u8> {
        let mut params = json!({"format": "png", "fromSurface": true});
        if let Some(c) = clip {
            params["clip"] = c;
            params["captureBeyondViewport"] = json!(true);
        }
        let r = self.call("Page.captureScreenshot", params).await;
        base64::engine::general_purpose::STANDARD.decode(r["data"].as_str().unwrap()).unwrap()
    }
}

/// RGB pixels of a PNG: (width, height, 3 bytes per pixel).
fn decode_png(bytes: &[u8]) -> (usize, usize, Vec<u8>) {
    let mut dec = png::Decoder::new(std::io::Cursor::new(bytes));
    dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    assert!(channels >= 3, "colour screenshot");
    let rgb = buf[..info.buffer_size()].chunks(channels).flat_map(|p| [p[0], p[1], p[2]]).collect();
    (info.width as usize, info.height as usize, rgb)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn life_in_headless_chromium_matches_the_region() {
    let Some(exe) = find_chromium() else {
        eprintln!("\n**********\nSKIP life_in_headless_chromium_matches_the_region: chromium is not installed");
        eprintln!("(apt-get install -y chromium, or set VENOM_CHROMIUM; .ci/run installs it)\n**********\n");
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(25);

    // The world: every generation kept by the region version that holds it.
    let name = format!("web-view-test-{}", std::process::id());
    let _unlink = Unlink(name.clone());
    let mut world = LifeWorld::create(&name, N, 0xC0FF_EE12_3456_789B).unwrap();
    let history: Arc<Mutex<HashMap<u64, Vec<u8>>>> = Arc::default();
    history.lock().unwrap().insert(world.version(), world.cells().to_vec());
    let stop = Arc::new(AtomicBool::new(false));
    let reader = SeqReader::open(&name).unwrap();
    let catalog = Catalog::read_from(reader.region()).unwrap();
    let cfg = WebConfig { listen: "127.0.0.1:0".parse().unwrap(), title: "life (test)".into(), ..WebConfig::default() };
    let view = WebView::serve(Arc::new(reader), catalog, cfg).await.unwrap();
    let writer = {
        let (history, stop) = (history.clone(), stop.clone());
        std::thread::spawn(move || {
            // Relaxed: a stop flag; the history is published through its mutex.
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
                let v = world.advance().unwrap();
                history.lock().unwrap().insert(v, world.cells().to_vec());
            }
        })
    };

    let mut browser = Browser::launch(&exe);
    let url = browser.devtools_url(deadline).await;
    let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut cdp = Cdp { ws, next_id: 0, session: None };
    let target = cdp.call("Target.createTarget", json!({"url": "about:blank"})).await;
    let attached = cdp.call("Target.attachToTarget", json!({"targetId": target["targetId"], "flatten": true})).await;
    cdp.session = Some(attached["sessionId"].as_str().unwrap().to_owned());
    cdp.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false}),
    )
    .await;
    cdp.call("Page.navigate", json!({"url": view.url()})).await;

    // Wait for N updates (the snapshot counts as the first).
    loop {
        let frames = cdp.eval("window.venom ? venom.frames() : -1").await.as_i64().unwrap();
        if frames >= UPDATES as i64 {
            break;
        }
        assert!(Instant::now() < deadline, "the page got {frames} of {UPDATES} updates");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let shown: Value = serde_json::from_str(cdp.eval("JSON.stringify(venom.pause())").await.as_str().unwrap()).unwrap();
    let version = shown["version"].as_u64().unwrap();
    assert!(version > 0, "the page displays a version: {shown}");
    let attr = cdp.eval("document.body.dataset.version").await;
    assert_eq!(attr.as_str().unwrap(), version.to_string());
    let g = &shown["grids"]["grid"];
    let scale = g["scale"].as_u64().unwrap() as usize;
    assert_eq!((g["rows"].as_u64(), g["cols"].as_u64()), (Some(N as u64), Some(N as u64)));
    // Clip from the whole pixel at or before the canvas; cells are sampled at their centres.
    let (x, y) = (g["x"].as_f64().unwrap(), g["y"].as_f64().unwrap());
    let (x0, y0) = (x.floor(), y.floor());
    let side = (N * scale) as f64 + 2.0;
    let png = cdp.screenshot(Some(json!({"x": x0, "y": y0, "width": side, "height": side, "scale": 1}))).await;
    if let Ok(path) = std::env::var("VENOM_WEB_SCREENSHOT") {
        let page = cdp.screenshot(None).await;
        std::fs::write(Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path), page).unwrap();
    }

    // Every cell against the world at the displayed version.
    let expected =
        history.lock().unwrap().get(&version).cloned().unwrap_or_else(|| panic!("no generation at v{version}"));
    let (w, h, rgb) = decode_png(&png);
    assert_eq!((w, h), (N * scale + 2, N * scale + 2));
    let (dx, dy) = (x - x0, y - y0);
    let mut wrong = Vec::new();
    let mut alive = 0;
    for r in 0..N {
        for c in 0..N {
            let px = (dx + (c * scale) as f64 + scale as f64 / 2.0) as usize;
            let py = (dy + (r * scale) as f64 + scale as f64 / 2.0) as usize;
            let p = &rgb[(py * w + px) * 3..][..3];
            let lit = p.iter().map(|&v| v as u32).sum::<u32>() > 3 * 128;
            alive += lit as usize;
            if lit != (expected[r * N + c] == 1) {
                wrong.push((r, c, [p[0], p[1], p[2]]));
            }
        }
    }
    let want_alive = expected.iter().filter(|&&c| c == 1).count();
    assert!(want_alive > 0, "a live world");
    assert!(
        wrong.is_empty(),
        "{} of {} cells differ at v{version}, e.g. {:?}",
        wrong.len(),
        N * N,
        &wrong[..wrong.len().min(5)]
    );
    assert_eq!(alive, want_alive);

    // Bytes on the wire follow the changed bytes: every delta frame is exactly
    // its changed bytes plus 8 per run plus a 32-byte header (the exact
    // k-cells-in, k-bytes-out check is venom-net/tests/web_bridge.rs).
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let st = view.stats();
    assert!(st.delta_frames > 0);
    assert_eq!(st.delta_bytes, st.changed_bytes + 8 * st.runs + 32 * st.delta_frames, "{st:?}");
    let full = (view.view_len() + 40) as u64;
    assert!(st.delta_bytes / st.delta_frames < full, "never the whole view per update: {st:?}");
    eprintln!(
        "chromium showed v{version} ({want_alive} live cells, exact); {} deltas, {} B/delta on average for {} changed B; full view {full} B",
        st.delta_frames,
        st.delta_bytes / st.delta_frames,
        st.changed_bytes / st.delta_frames
    );
    drop(cdp);
    drop(browser);
    view.close().await;
    assert!(Instant::now() < deadline + Duration::from_secs(5), "bounded in time");
}
