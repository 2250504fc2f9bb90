//! Drives the built `venom` binary against segments made by real processes:
//! live owners (children kept alive), dead owners (children SIGKILLed),
//! stray files and corrupt headers. Every name is unique to this test
//! process and removed at the end.

use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;
use venom_collections::{KvCache, KvConfig, ObjectSegment};
use venom_core::channel::{ChannelConfig, DaemonChannel, ShellChannel};
use venom_core::testkit::{self, ChildProc, spawn_child, unique_name};
use venom_core::{RegionConfig, Segment, SegmentKind, SeqWriter};

fn venom(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_venom")).args(args).output().expect("run venom")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> Value {
    assert!(o.status.success(), "venom failed: {}", stderr(o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("bad json ({e}): {}", stdout(o)))
}

fn shm_path(name: &str) -> String {
    format!("/dev/shm/venom.{name}")
}

fn marker(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("venom-cli-test-{name}.ready"))
}

/// Removes the names on drop, whatever the test outcome.
struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = std::fs::remove_file(shm_path(n));
            let _ = std::fs::remove_file(marker(n));
        }
    }
}

/// Child: creates a segment of the kind in `VENOM_TEST_ARG` ("kind:name"),
/// puts some activity in it, writes the marker file and waits to be killed.
#[test]
fn child_owner() {
    let Some(arg) = testkit::child_arg("owner") else { return };
    let (kind, name) = arg.split_once(':').unwrap();
    let mut keep: Vec<Box<dyn std::any::Any>> = Vec::new();
    match kind {
        "region" => {
            let mut w = SeqWriter::create(name, RegionConfig::new(4096).chunk_size(1024)).unwrap();
            w.write(b"hello").unwrap();
            w.write(b"hello again").unwrap();
            keep.push(Box::new(w));
        }
        "channel" => {
            let mut d =
                DaemonChannel::create(name, ChannelConfig { max_clients: 4, data_size: 4096, ..Default::default() })
                    .unwrap();
            d.write_data(b"state").unwrap();
            let mut shell = ShellChannel::connect(name).unwrap();
            // Queued and never served: shows as a queue depth of 2.
            shell.send_command(b"one").unwrap();
            shell.send_command(b"two").unwrap();
            keep.push(Box::new(d));
            keep.push(Box::new(shell));
        }
        "collections" => {
            let seg = ObjectSegment::create(name, 1 << 20).unwrap();
            let q = seg.queue::<u64>("tasks", 100).unwrap();
            q.push(7, Duration::from_millis(100)).unwrap();
            seg.hash_map::<u64, f64>("prices", 64).unwrap();
            keep.push(Box::new(seg));
        }
        "queue" => {
            let q =
                venom_core::CmdQueue::create(name, venom_core::QueueConfig { lanes: 2, ..Default::default() }).unwrap();
            let consumer = q.consumer().unwrap();
            let mut producer = q.producer().unwrap();
            producer.try_push(b"job").unwrap();
            keep.push(Box::new(consumer));
            keep.push(Box::new(producer));
            keep.push(Box::new(q));
        }
        "kv" => {
            let kv = KvCache::create(name, KvConfig { max_entries: 64, data_bytes: 64 << 10, ..Default::default() })
                .unwrap();
            kv.put(b"hot", b"1").unwrap();
            kv.put(b"cold", b"2").unwrap();
            for _ in 0..5 {
                kv.get(b"hot").unwrap();
            }
            kv.get(b"missing").unwrap();
            keep.push(Box::new(kv));
        }
        "initialising" => {
            // Never publishes: the creator sits in its initialiser.
            let _ = Segment::builder(name, SegmentKind::RAW).body_len(64).create_with(|_| {
                std::fs::write(marker(name), b"").unwrap();
                std::thread::sleep(Duration::from_secs(120));
                Ok(())
            });
        }
        other => panic!("unknown kind {other}"),
    }
    std::fs::write(marker(name), b"").unwrap();
    std::thread::sleep(Duration::from_secs(120));
    drop(keep);
}

/// Spawns an owner child for `kind` and waits for its marker.
fn owner(kind: &str, name: &str) -> ChildProc {
    let child = spawn_child("child_owner", "owner", &format!("{kind}:{name}")).unwrap();
    assert!(testkit::wait_for(Duration::from_secs(30), || marker(name).exists()), "{kind} owner did not start");
    child
}

/// A segment whose header carries the venom magic but fails its checksum.
fn corrupt_segment(name: &str) {
    let seg = Segment::builder(name, SegmentKind::RAW).body_len(256).create().unwrap();
    std::mem::forget(seg);
    let mut f = std::fs::OpenOptions::new().write(true).open(shm_path(name)).unwrap();
    f.seek(SeekFrom::Start(48)).unwrap();
    f.write_all(&99u64.to_le_bytes()).unwrap();
}

#[test]
fn ls_reports_live_dead_stray_and_corrupt() {
    let [live, dead, stray, corrupt] =
        ["live", "dead", "stray", "corrupt"].map(|p| unique_name(&format!("cli-ls-{p}")));
    let _clean = Cleanup(vec![live.clone(), dead.clone(), stray.clone(), corrupt.clone()]);
    let live_child = owner("region", &live);
    let mut dead_child = owner("region", &dead);
    dead_child.kill9();
    std::fs::write(shm_path(&stray), b"definitely not a venom segment, just some bytes".repeat(10)).unwrap();
    corrupt_segment(&corrupt);

    let all = json(&venom(&["ls", "--json"]));
    let find = |n: &str| all.as_array().unwrap().iter().find(|r| r["name"] == n).cloned().unwrap_or(Value::Null);
    let l = find(&live);
    assert_eq!(l["state"], "live");
    assert_eq!(l["kind"], "region");
    assert_eq!(l["creator_pid"], live_child.pid());
    assert_eq!(l["creator_alive"], true);
    assert_eq!(l["mode"], "0600");
    assert_eq!(l["generation"], 0);
    assert!(l["size"].as_u64().unwrap() > 4096);
    let d = find(&dead);
    assert_eq!(d["state"], "dead");
    assert_eq!(d["stale"], true);
    assert_eq!(d["creator_alive"], false);
    let s = find(&stray);
    assert_eq!(s["state"], "stray");
    assert_eq!(s["kind"], Value::Null);
    assert!(s["reason"].as_str().unwrap().contains("no venom magic"), "{s}");
    let c = find(&corrupt);
    assert_eq!(c["state"], "corrupt");
    assert!(c["reason"].as_str().unwrap().contains("checksum"), "{c}");

    // The table, restricted to our names, in name order.
    let out = venom(&["ls", &live, &dead, &stray, &corrupt]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("NAME") && lines[0].contains("STATE"), "{text}");
    let line_of = |n: &str| lines.iter().find(|l| l.starts_with(n)).copied().unwrap_or_default();
    assert!(line_of(&live).contains(" live ") && line_of(&live).contains(&live_child.pid().to_string()), "{text}");
    assert!(line_of(&dead).contains(" dead "), "{text}");
    assert!(line_of(&stray).contains(" stray "), "{text}");
    assert!(line_of(&corrupt).contains(" corrupt "), "{text}");

    // Filters.
    let dead_only = json(&venom(&["ls", "--json", "--state", "dead", &live, &dead, &stray]));
    let names: Vec<&str> = dead_only.as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, [dead.as_str()]);
    let regions = json(&venom(&["ls", "--json", "--kind", "region", &live, &stray]));
    assert_eq!(regions.as_array().unwrap().len(), 1);
    assert_eq!(venom(&["ls", "--state", "sleepy"]).status.code(), Some(2));

    // A missing name among others: the rest is listed, exit 1.
    let missing = unique_name("cli-ls-missing");
    let out = venom(&["ls", &live, &missing]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains(&live));
    assert!(stderr(&out).contains(&format!("venom: segment '{missing}' not found")), "{}", stderr(&out));
    drop(live_child);
}

#[test]
fn stat_shows_each_kind() {
    let names = ["region", "channel", "collections", "kv"].map(|k| unique_name(&format!("cli-stat-{k}")));
    let _clean = Cleanup(names.to_vec());
    let _children: Vec<ChildProc> =
        ["region", "channel", "collections", "kv"].iter().zip(&names).map(|(k, n)| owner(k, n)).collect();

    let r = json(&venom(&["stat", "--json", &names[0]]));
    assert_eq!(r["segment"]["kind"], "region");
    assert_eq!(r["region"]["writes"], 2);
    assert_eq!(r["region"]["chunks"], 4);
    assert_eq!(r["region"]["last_write_len"], 11);
    assert_eq!(r["region"]["writer_alive"], true);
    assert_eq!(r["region"]["torn"], false);

    let c = json(&venom(&["stat", "--json", &names[1]]));
    let ch = &c["channel"];
    assert_eq!(ch["daemon_alive"], true);
    assert_eq!(ch["max_clients"], 4);
    assert_eq!(ch["clients_in_use"], 1);
    assert_eq!(ch["queued_commands"], 2);
    assert_eq!(ch["clients"][0]["pid"], c["segment"]["creator_pid"]);
    assert_eq!(ch["clients"][0]["alive"], true);

    let o = json(&venom(&["stat", "--json", &names[2]]));
    let objects = o["collections"]["objects"].as_array().unwrap();
    let names_kinds: Vec<(String, String)> = objects
        .iter()
        .map(|x| (x["name"].as_str().unwrap().to_owned(), x["kind"].as_str().unwrap().to_owned()))
        .collect();
    assert!(names_kinds.contains(&("tasks".into(), "queue".into())), "{names_kinds:?}");
    assert!(names_kinds.contains(&("prices".into(), "hashmap".into())), "{names_kinds:?}");
    let tasks = objects.iter().find(|x| x["name"] == "tasks").unwrap();
    assert_eq!(tasks["items"], 1);
    assert_eq!(tasks["capacity"], 128, "{tasks}");

    let k = json(&venom(&["stat", "--json", "--top", "1", &names[3]]));
    assert_eq!(k["kv"]["len"], 2);
    assert_eq!(k["kv"]["hits"], 5);
    assert_eq!(k["kv"]["misses"], 1);
    assert_eq!(k["kv"]["top_keys"].as_array().unwrap().len(), 1);
    assert_eq!(k["kv"]["top_keys"][0]["key"], "hot");

    let q = unique_name("cli-stat-queue");
    let _clean_q = Cleanup(vec![q.clone()]);
    let _qchild = owner("queue", &q);
    let j = json(&venom(&["stat", "--json", &q]));
    assert_eq!(j["segment"]["kind"], "raw");
    assert_eq!(j["queue"]["lanes"], 2);
    assert_eq!(j["queue"]["consumer_alive"], true);
    assert_eq!(j["queue"]["producers"][0]["queued"], 1);
    assert_eq!(j["queue"]["producers"][0]["alive"], true);

    // Inspection is invisible: the channel still has exactly one client
    // and the KV counters did not move.
    let again = json(&venom(&["stat", "--json", &names[3]]));
    assert_eq!(again["kv"]["hits"], 5);
    assert_eq!(again["kv"]["misses"], 1);
    assert_eq!(json(&venom(&["stat", "--json", &names[1]]))["channel"]["clients_in_use"], 1);

    // Human output mentions the kind-specific fields.
    let text = stdout(&venom(&["stat", &names[3]]));
    assert!(text.contains("hit_rate") && text.contains("hot"), "{text}");
}

#[test]
fn rm_refuses_live_and_removes_dead_stray_and_corrupt() {
    let [live, dead, stray, corrupt] =
        ["live", "dead", "stray", "corrupt"].map(|p| unique_name(&format!("cli-rm-{p}")));
    let _clean = Cleanup(vec![live.clone(), dead.clone(), stray.clone(), corrupt.clone()]);
    let live_child = owner("kv", &live);
    let mut dead_child = owner("region", &dead);
    dead_child.kill9();
    std::fs::write(shm_path(&stray), [0xAB; 64]).unwrap();
    corrupt_segment(&corrupt);

    let out = venom(&["rm", &live]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains(&format!("in use by live process {}", live_child.pid())) && err.contains("--force"), "{err}");
    assert!(Segment::exists(&live), "a live segment was removed");

    let out = venom(&["rm", "--json", &dead, &stray, &corrupt]);
    let report = json(&out);
    let was: Vec<&str> = report["removed"].as_array().unwrap().iter().map(|r| r["was"].as_str().unwrap()).collect();
    assert_eq!(was, ["dead", "stray", "corrupt"]);
    for n in [&dead, &stray, &corrupt] {
        assert!(!Segment::exists(n), "{n} still there");
    }

    let out = venom(&["rm", "--force", &live]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("live, forced"));
    assert!(!Segment::exists(&live));

    let out = venom(&["rm", &live]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out).trim(), format!("venom: segment '{live}' not found"));
}

#[test]
fn a_segment_being_initialised_is_shown_without_waiting() {
    let name = unique_name("cli-init");
    let _clean = Cleanup(vec![name.clone()]);
    let child = owner("initialising", &name);
    // The segment never becomes READY, so anything that waited for it
    // (as Segment::open does) would fail with InitTimeout instead.
    let l = json(&venom(&["ls", "--json", &name]));
    assert_eq!(l[0]["state"], "init");
    assert_eq!(l[0]["status"], "initialising");
    assert_eq!(l[0]["creator_pid"], child.pid());
    let s = json(&venom(&["stat", "--json", &name]));
    assert_eq!(s["segment"]["state"], "init");
    assert_eq!(s.as_object().unwrap().len(), 1, "no kind section before READY: {s}");
    assert_eq!(venom(&["rm", &name]).status.code(), Some(1), "a live creator's segment is refused");
}

#[test]
fn rm_stale_sweeps_only_dead_segments() {
    let prefix = format!("cli-sweep-{}-", std::process::id());
    let [dead, stray] = ["dead", "stray"].map(|p| format!("{prefix}{p}"));
    let _clean = Cleanup(vec![dead.clone(), stray.clone()]);
    let mut dead_child = owner("region", &dead);
    dead_child.kill9();
    std::fs::write(shm_path(&stray), [0xCD; 200]).unwrap();
    let report = json(&venom(&["rm", "--stale", "--prefix", &prefix, "--json"]));
    let removed: Vec<&str> =
        report["removed"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(removed, [dead.as_str()]);
    assert!(std::path::Path::new(&shm_path(&stray)).exists(), "stray files are only removed by name");
}

#[test]
fn stray_file_blocks_create_with_a_pointer_to_venom_rm() {
    let name = unique_name("cli-stray-create");
    let _clean = Cleanup(vec![name.clone()]);
    std::fs::write(shm_path(&name), [0x42; 4096]).unwrap();
    let err = SeqWriter::create(&name, RegionConfig::new(64)).unwrap_err();
    assert!(err.to_string().contains(&format!("venom rm {name}")), "{err}");
    assert!(venom(&["rm", &name]).status.success());
    SeqWriter::create(&name, RegionConfig::new(64)).unwrap().unlink().unwrap();
}

#[test]
fn dump_formats() {
    let name = unique_name("cli-dump");
    let _clean = Cleanup(vec![name.clone()]);
    let seg = Segment::builder(&name, SegmentKind::RAW).body_len(64).create().unwrap();
    let mut body = Vec::new();
    body.extend_from_slice(&1.5f64.to_le_bytes());
    body.extend_from_slice(&(-2i64).to_le_bytes());
    body.extend_from_slice(&7u32.to_le_bytes());
    // SAFETY: the body is valid for 64 bytes and no other process writes it.
    unsafe { venom_core::atomic_copy::store(seg.body_ptr(), &body) };

    let hex = stdout(&venom(&["dump", &name, "--len", "16"]));
    assert!(hex.starts_with("00000000  56 45 4e 4f 4d 53 45 47") && hex.contains("|VENOMSEG"), "{hex}");
    let f = json(&venom(&["dump", "--json", &name, "--body", "--len", "8", "--format", "f64"]));
    assert_eq!(f["values"], serde_json::json!([1.5]));
    assert_eq!(f["offset"], 128);
    let i = json(&venom(&["dump", "--json", &name, "--offset", "136", "--len", "8", "--format", "i64"]));
    assert_eq!(i["values"], serde_json::json!([-2]));
    let u = json(&venom(&["dump", "--json", &name, "--body", "--offset", "16", "--len", "4", "--format", "u32"]));
    assert_eq!(u["values"], serde_json::json!([7]));
    let h = json(&venom(&["dump", "--json", &name, "--len", "4"]));
    assert_eq!(h["values"], "56454e4f");
    let text = stdout(&venom(&["dump", &name, "--body", "--len", "8", "-F", "u8"]));
    assert!(text.starts_with("00000080  0  0  0  0  0  0  248  63"), "{text}");
    // Past the end: a typed error, exit 1.
    let out = venom(&["dump", &name, "--offset", "1000000"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("outside"), "{}", stderr(&out));
    seg.unlink().unwrap();
}

#[test]
fn watch_samples_and_terminates() {
    let name = unique_name("cli-watch");
    let _clean = Cleanup(vec![name.clone()]);
    let _child = owner("kv", &name);
    let out = venom(&["watch", "--json", "--count", "2", "--interval", "0.05", &name]);
    let lines: Vec<Value> = stdout(&out).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["kind"], "kv");
    assert_eq!(lines[0]["rates"], Value::Null);
    assert_eq!(lines[1]["rates"]["reads_per_sec"], 0.0);
    let text = stdout(&venom(&["watch", "-c", "1", &name]));
    assert!(text.contains("hit rate 83.3%"), "{text}");
}

#[test]
fn exit_codes_for_missing_names_and_bad_usage() {
    let missing = unique_name("cli-missing");
    for args in
        [vec!["stat", &missing], vec!["dump", &missing], vec!["watch", "-c", "1", &missing], vec!["rm", &missing]]
    {
        let out = venom(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(stderr(&out).trim(), format!("venom: segment '{missing}' not found"), "{args:?}");
        assert!(out.stdout.is_empty() || args[0] == "rm", "{args:?}");
    }
    for args in [
        vec![],
        vec!["frobnicate"],
        vec!["rm"],
        vec!["dump", "x", "--format", "u7"],
        vec!["watch", "x", "--interval", "0"],
        vec!["ls", "--bogus"],
    ] {
        let out = venom(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
    let out = venom(&["stat", "../etc/passwd"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("invalid segment name"), "{}", stderr(&out));
    assert!(venom(&["--version"]).status.success());
}
