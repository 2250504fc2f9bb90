// venom live view: keeps a copy of the region's arrays from a snapshot plus
// delta frames (see venom-net/src/web/frame.rs) and draws each named array.
'use strict';

const HEADER = 32;
const SERIES = 300; // samples kept per line-chart series
const MAX_LINES = 16; // 1-D arrays up to this length are charted over time, longer ones by index
const COLORS = ['#61afef', '#e5c07b', '#98c379', '#e06c75', '#c678dd', '#56b6c2', '#d19a66', '#abb2bf'];
const SIZES = { u8: 1, i8: 1, u16: 2, i16: 2, u32: 4, i32: 4, f32: 4, u64: 8, i64: 8, f64: 8 };
const TYPED = { u8: Uint8Array, i8: Int8Array, u16: Uint16Array, i16: Int16Array, u32: Uint32Array,
  i32: Int32Array, f32: Float32Array, f64: Float64Array, u64: BigUint64Array, i64: BigInt64Array };

// An "inferno"-like palette, 256 entries packed as little-endian RGBA words.
const PALETTE = (() => {
  const stops = [[0, 11, 11, 26], [0.25, 87, 16, 110], [0.5, 188, 55, 84], [0.75, 249, 142, 9], [1, 252, 255, 164]];
  const out = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    const t = i / 255;
    let k = 0;
    while (k < stops.length - 2 && t > stops[k + 1][0]) k++;
    const [t0, r0, g0, b0] = stops[k], [t1, r1, g1, b1] = stops[k + 1];
    const f = (t - t0) / (t1 - t0);
    const c = (a, b) => Math.round(a + (b - a) * f);
    out[i] = (255 << 24) | (c(b0, b1) << 16) | (c(g0, g1) << 8) | c(r0, r1);
  }
  return out;
})();

const state = {
  view: null, version: 0, displayed: 0, frames: 0, bytes: 0, lagMs: NaN,
  arrays: [], paused: false, drawPending: false, arrivals: [],
};

const $ = (id) => document.getElementById(id);

function fmtBytes(n) {
  const u = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + ' ' + u[i];
}

function fmtNum(v) {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(3);
  return Number.isInteger(v) ? String(v) : v.toFixed(a >= 100 ? 1 : 3);
}

// The elements of array `a` as numbers (a fresh typed view on the current copy).
function values(a) {
  const T = TYPED[a.dtype];
  // Typed views need aligned offsets (catalog builders align to 64); copy otherwise.
  const v = a.offset % SIZES[a.dtype] === 0 ? new T(state.view.buffer, a.offset, a.count)
    : new T(state.view.slice(a.offset, a.offset + a.count * SIZES[a.dtype]).buffer);
  return (a.dtype === 'u64' || a.dtype === 'i64') ? Float64Array.from(v, Number) : v;
}

function setup(hello) {
  document.title = hello.title;
  $('title').textContent = hello.title;
  state.view = new Uint8Array(hello.view_len);
  const main = $('arrays');
  main.textContent = '';
  // Heat maps first, then charts, each in catalog order.
  const shown = hello.arrays.filter((a) => SIZES[a.dtype]);
  shown.sort((a, b) => (b.shape.length >= 2) - (a.shape.length >= 2));
  state.arrays = shown.map((a) => {
    const count = a.shape.reduce((x, y) => x * y, 1);
    const sec = document.createElement('section');
    sec.dataset.name = a.name;
    const h = document.createElement('h2');
    h.append(a.name + ' ');
    const dims = document.createElement('span');
    dims.textContent = a.dtype + '[' + a.shape.join('x') + ']';
    h.append(dims);
    const range = document.createElement('span');
    h.append(' ', range);
    sec.append(h);
    const canvas = document.createElement('canvas');
    canvas.id = 'array-' + a.name;
    sec.append(canvas);
    const legend = document.createElement('div');
    legend.className = 'legend';
    sec.append(legend);
    main.append(sec);
    const entry = { ...a, count, canvas, legend, range };
    if (a.shape.length >= 2) {
      entry.kind = 'heat';
      entry.cols = a.shape[a.shape.length - 1];
      entry.rows = count / entry.cols;
      // Integer scale so every cell is a whole square of pixels.
      entry.scale = Math.max(1, Math.min(8, Math.floor(512 / Math.max(entry.rows, entry.cols))));
      canvas.width = entry.cols * entry.scale;
      canvas.height = entry.rows * entry.scale;
      entry.image = new ImageData(canvas.width, canvas.height);
      entry.pixels = new Uint32Array(entry.image.data.buffer);
    } else {
      entry.kind = count <= MAX_LINES ? 'series' : 'profile';
      canvas.width = 520;
      canvas.height = 170;
      entry.history = Array.from({ length: entry.kind === 'series' ? count : 0 }, () => []);
    }
    return entry;
  });
}

function applyFrame(buf) {
  const dv = new DataView(buf);
  if (buf.byteLength < HEADER || !state.view) return;
  const runs = dv.getUint32(4, true);
  const version = Number(dv.getBigUint64(8, true));
  const stamp = dv.getFloat64(24, true);
  let at = HEADER;
  const bytes = new Uint8Array(buf);
  for (let i = 0; i < runs; i++) {
    const off = dv.getUint32(at, true), len = dv.getUint32(at + 4, true);
    at += 8;
    if (off + len > state.view.length || at + len > bytes.length) { setStatus('bad frame', false); return; }
    state.view.set(bytes.subarray(at, at + len), off);
    at += len;
  }
  state.version = version;
  state.frames++;
  state.bytes += buf.byteLength;
  state.lagMs = Date.now() - stamp;
  const now = performance.now();
  state.arrivals.push(now);
  while (state.arrivals.length && state.arrivals[0] < now - 2000) state.arrivals.shift();
  document.body.dataset.frames = state.frames;
  // Sample the 1-D series at every version (even when drawing is skipped).
  for (const a of state.arrays) {
    if (a.kind !== 'series') continue;
    const v = values(a);
    for (let i = 0; i < a.count; i++) {
      a.history[i].push(v[i]);
      if (a.history[i].length > SERIES) a.history[i].shift();
    }
  }
  if (!state.drawPending) {
    state.drawPending = true;
    requestAnimationFrame(draw);
  }
}

function drawHeat(a) {
  const v = values(a);
  let lo = Infinity, hi = -Infinity;
  for (let i = 0; i < v.length; i++) { const x = v[i]; if (x < lo) lo = x; if (x > hi) hi = x; }
  a.range.textContent = 'min ' + fmtNum(lo) + ' max ' + fmtNum(hi);
  const span = hi - lo;
  const { rows, cols, scale, pixels } = a;
  const width = cols * scale;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const x = v[r * cols + c];
      // A constant array is drawn dark when it is <= 0, bright otherwise.
      const t = span > 0 ? (x - lo) / span : (x > 0 ? 1 : 0);
      const color = PALETTE[Number.isFinite(t) ? Math.round(t * 255) : 0];
      const base = r * scale * width + c * scale;
      for (let dy = 0; dy < scale; dy++) pixels.fill(color, base + dy * width, base + dy * width + scale);
    }
  }
  a.canvas.getContext('2d').putImageData(a.image, 0, 0);
}

function drawLines(a, series, latest) {
  const ctx = a.canvas.getContext('2d');
  const W = a.canvas.width, H = a.canvas.height, pad = 4;
  ctx.fillStyle = '#0d1014';
  ctx.fillRect(0, 0, W, H);
  let lo = Infinity, hi = -Infinity;
  for (const s of series) for (const x of s) { if (x < lo) lo = x; if (x > hi) hi = x; }
  if (!(hi > lo)) { hi = lo + 1; lo -= 1; }
  a.range.textContent = 'min ' + fmtNum(lo) + ' max ' + fmtNum(hi);
  series.forEach((s, k) => {
    ctx.strokeStyle = COLORS[k % COLORS.length];
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    // Series fill the width as samples arrive, then scroll (the newest on the right).
    const n = Math.max(2, s.length);
    s.forEach((x, i) => {
      const px = pad + (W - 2 * pad) * i / (n - 1);
      const py = H - pad - (H - 2 * pad) * (x - lo) / (hi - lo);
      i ? ctx.lineTo(px, py) : ctx.moveTo(px, py);
    });
    ctx.stroke();
  });
  a.legend.textContent = '';
  latest.slice(0, MAX_LINES).forEach((x, k) => {
    const item = document.createElement('span');
    const sw = document.createElement('i');
    sw.style.background = COLORS[k % COLORS.length];
    item.append(sw, (latest.length > 1 ? '[' + k + '] ' : '') + fmtNum(x));
    a.legend.append(item);
  });
}

function draw() {
  state.drawPending = false;
  if (state.paused || !state.view) return;
  for (const a of state.arrays) {
    if (a.kind === 'heat') drawHeat(a);
    else if (a.kind === 'series') drawLines(a, a.history, a.history.map((h) => h[h.length - 1]));
    else { const v = Array.from(values(a)); drawLines(a, [v], []); }
  }
  state.displayed = state.version;
  document.body.dataset.version = state.displayed;
  $('version').textContent = state.displayed;
}

function setStatus(text, ok) {
  const s = $('status');
  s.textContent = text;
  s.className = ok ? 'ok' : 'bad';
}

setInterval(() => {
  const now = performance.now();
  const recent = state.arrivals.filter((t) => t >= now - 1000).length;
  $('rate').textContent = recent;
  $('lag').textContent = Number.isFinite(state.lagMs) ? Math.max(0, state.lagMs).toFixed(0) + ' ms' : '-';
  $('bytes').textContent = fmtBytes(state.bytes);
}, 250);

function connect() {
  const token = new URLSearchParams(location.search).get('token');
  const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws' +
    (token ? '?token=' + encodeURIComponent(token) : '');
  const ws = new WebSocket(url);
  ws.binaryType = 'arraybuffer';
  ws.onopen = () => setStatus('live', true);
  ws.onmessage = (e) => {
    if (typeof e.data === 'string') setup(JSON.parse(e.data));
    else applyFrame(e.data);
  };
  ws.onclose = () => { setStatus('disconnected, retrying', false); setTimeout(connect, 1000); };
}

$('pause').onclick = () => {
  state.paused = !state.paused;
  $('pause').textContent = state.paused ? 'resume' : 'pause';
  if (!state.paused) draw();
};

// Hooks for tests and the console: freeze the canvas and tell what it shows.
window.venom = {
  frames: () => state.frames,
  version: () => state.version,
  pause() {
    state.paused = true;
    $('pause').textContent = 'resume';
    const grids = {};
    for (const a of state.arrays) {
      if (a.kind !== 'heat') continue;
      const r = a.canvas.getBoundingClientRect();
      grids[a.name] = { x: r.left + window.scrollX, y: r.top + window.scrollY, width: r.width, height: r.height,
        rows: a.rows, cols: a.cols, scale: a.scale };
    }
    return { version: state.displayed, frames: state.frames, grids };
  },
  resume() { state.paused = false; $('pause').textContent = 'pause'; draw(); },
};

connect();
