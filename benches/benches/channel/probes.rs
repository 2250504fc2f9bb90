//! Step breakdown of the venom rows from venom-core's TSC probes
//! (`cargo bench -p venom-benches --features probes --bench channel` with
//! `VENOM_BENCH_PROBES=1`). The daemon process writes its probe log to a
//! file when it stops; the client joins it with its own log by request id and
//! prints the median of every step, in nanoseconds.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use venom_core::channel::probes::{self, POINTS, Record};

/// Whether the breakdown was asked for (and the probes are compiled in).
pub fn wanted() -> bool {
    let on = std::env::var("VENOM_BENCH_PROBES").is_ok();
    if on && !probes::ENABLED {
        eprintln!("VENOM_BENCH_PROBES=1 needs `--features probes` (venom-core's probes are compiled out)");
    }
    on && probes::ENABLED
}

/// Where the daemon of channel `name` leaves its log.
pub fn log_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{name}.probes"))
}

/// Daemon side: writes this thread's probe log to [`log_path`].
pub fn dump(name: &str) {
    let mut bytes = Vec::new();
    for r in probes::take() {
        bytes.extend_from_slice(&r.id.to_le_bytes());
        for t in r.tsc {
            bytes.extend_from_slice(&t.to_le_bytes());
        }
    }
    if let Err(e) = std::fs::write(log_path(name), bytes) {
        eprintln!("probe log {name}: {e}");
    }
}

fn load(name: &str) -> Vec<Record> {
    let path = log_path(name);
    let bytes = std::fs::read(&path).unwrap_or_default();
    let _ = std::fs::remove_file(&path);
    let word = |c: &[u8]| u64::from_le_bytes(c.try_into().expect("8 bytes"));
    bytes
        .chunks_exact(8 * (POINTS + 1))
        .map(|c| {
            let mut r = Record { id: word(&c[..8]), tsc: [0; POINTS] };
            for (i, t) in r.tsc.iter_mut().enumerate() {
                *t = word(&c[8 * (i + 1)..8 * (i + 2)]);
            }
            r
        })
        .collect()
}

/// TSC ticks per nanosecond, against the monotonic clock over 50 ms.
fn ticks_per_ns() -> f64 {
    let (t0, c0) = (Instant::now(), probes::now());
    std::thread::sleep(Duration::from_millis(50));
    let (c1, ns) = (probes::now(), t0.elapsed().as_nanos() as f64);
    (c1 - c0) as f64 / ns
}

/// Client side, after the row's channel (and so its daemon) is gone: joins
/// the two logs and prints every step's median (and p90) in ns.
pub fn report(label: &str, name: &str) {
    use venom_core::channel::probes::*;
    let client = probes::take();
    let daemon = load(name);
    let by_id: std::collections::HashMap<u64, usize> = daemon.iter().enumerate().map(|(i, r)| (r.id, i)).collect();
    let per_ns = ticks_per_ns();
    // (step, side, from, to) with `to` taken from the next record when the
    // point is stamped there.
    enum At {
        C(Point),
        D(Point),
        NextC(Point),
        NextD(Point),
    }
    let steps: [(&str, At, At); 19] = [
        ("client: request() entry -> request stamp stored", At::C(Point::CStart), At::C(Point::Stamped)),
        ("client: request stamp stored -> send() returns (notify drain)", At::C(Point::Stamped), At::C(Point::CPushed)),
        ("client: request publish (request() entry -> send() returns)", At::C(Point::CStart), At::C(Point::CPushed)),
        ("request flight (client stamp store -> daemon sees it)", At::C(Point::Stamped), At::D(Point::DSeen)),
        ("request flight (client send() returns -> daemon sees it)", At::C(Point::CPushed), At::D(Point::DSeen)),
        ("daemon: successful scan (scan start -> stamp seen)", At::D(Point::DPoll), At::D(Point::DSeen)),
        ("daemon: pop (header, payload copy, head release)", At::D(Point::DSeen), At::D(Point::DPopped)),
        ("daemon: generation check, stats, wait return", At::D(Point::DPopped), At::D(Point::DAccepted)),
        ("daemon: handler (incl. reply buffer take/clear)", At::D(Point::DAccepted), At::D(Point::DHandled)),
        ("daemon: reply write + publish", At::D(Point::DHandled), At::D(Point::Stamped)),
        ("daemon: seen -> reply published (sum)", At::D(Point::DSeen), At::D(Point::Stamped)),
        ("reply flight (daemon stamp store -> client sees it)", At::D(Point::Stamped), At::C(Point::CSeen)),
        ("client: reply read (peek, copy, release, checks)", At::C(Point::CSeen), At::C(Point::CTaken)),
        ("client: return + caller loop until next request()", At::C(Point::CEnd), At::NextC(Point::CStart)),
        ("round trip (request() entry to next entry)", At::C(Point::CStart), At::NextC(Point::CStart)),
        ("daemon: futex notify after publish", At::D(Point::DPublished), At::D(Point::DNotified)),
        ("daemon: after notify until the serve loop's end", At::D(Point::DNotified), At::D(Point::DDone)),
        ("daemon: loop back to the next wait", At::D(Point::DDone), At::NextD(Point::DWait)),
        ("daemon: wait entry -> next request seen", At::NextD(Point::DWait), At::NextD(Point::DSeen)),
    ];
    let mut out = format!(
        "probes {label}: {} client / {} daemon records, {:.3} TSC ticks/ns; median (p10, p90) ns\n",
        client.len(),
        daemon.len(),
        per_ns
    );
    for (what, from, to) in steps {
        let mut v: Vec<f64> = Vec::new();
        for (k, c) in client.iter().enumerate() {
            let Some(&di) = by_id.get(&c.id) else { continue };
            let d = &daemon[di];
            let next_c = client.get(k + 1);
            let next_d = daemon.get(di + 1);
            let stamp = |at: &At| -> Option<u64> {
                let t = match *at {
                    At::C(p) => c.tsc[p as usize],
                    At::D(p) => d.tsc[p as usize],
                    At::NextC(p) => next_c?.tsc[p as usize],
                    At::NextD(p) => next_d?.tsc[p as usize],
                };
                (t != 0).then_some(t)
            };
            if let (Some(a), Some(b)) = (stamp(&from), stamp(&to)) {
                v.push((b as f64 - a as f64) / per_ns);
            }
        }
        if v.is_empty() {
            continue;
        }
        v.sort_by(f64::total_cmp);
        let q = |p: f64| v[((v.len() as f64 * p) as usize).min(v.len() - 1)];
        out.push_str(&format!("  {what:<70} {:>7.1} ({:>6.1}, {:>7.1})\n", q(0.5), q(0.1), q(0.9)));
    }
    eprint!("{out}");
}
