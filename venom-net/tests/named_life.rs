//! Game of Life with a region subscription: the mirror subscribes only to a
//! sub-grid (and the generation counter) by name, and at every generation it
//! observes, its sub-grid equals the server's at that same generation.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use venom_core::{RegionConfig, SeqReader, SeqWriter, testkit};
use venom_net::io::Publisher;
use venom_net::named::NamedMirror;
use venom_net::proto::catalog::{Catalog, Pick};
use venom_net::tls::{ClientTls, Identity, ServerTls};
use venom_net::typed::{Array, write_step};
use venom_net::{Dtype, MirrorConfig, PublisherConfig};

const N: usize = 256;
const GENERATIONS: u64 = 150;
const ROWS: std::ops::Range<u64> = 64..96;
const COLS: std::ops::Range<u64> = 100..164;

fn seed() -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..N * N)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 3 == 0) as u8
        })
        .collect()
}

/// One generation on a torus.
fn step(g: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; N * N];
    for r in 0..N {
        for c in 0..N {
            let mut n = 0;
            for (dr, dc) in [(N - 1, N - 1), (N - 1, 0), (N - 1, 1), (0, N - 1), (0, 1), (1, N - 1), (1, 0), (1, 1)] {
                n += g[((r + dr) % N) * N + (c + dc) % N];
            }
            out[r * N + c] = (n == 3 || (n == 2 && g[r * N + c] == 1)) as u8;
        }
    }
    out
}

fn sub_grid(g: &[u8]) -> Vec<u8> {
    ROWS.flat_map(|r| g[r as usize * N + COLS.start as usize..r as usize * N + COLS.end as usize].to_vec()).collect()
}

#[test]
fn life_mirror_equals_server_sub_grid_at_the_same_generation() {
    let cat = Catalog::builder()
        .array("generation", Dtype::U64, &[1])
        .array("grid", Dtype::U8, &[N as u64, N as u64])
        .build()
        .unwrap();
    let name = testkit::unique_name("life");
    let mut w = SeqWriter::create(&name, RegionConfig::new(cat.region_size() as usize)).unwrap();
    cat.write_to(&mut w).unwrap();
    let (gen_a, grid_a) =
        (Array::<u64>::from_catalog(&cat, "generation").unwrap(), Array::<u8>::from_catalog(&cat, "grid").unwrap());
    let world = seed();
    write_step(&mut w, |s| s.write_all(&grid_a, &world)).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let id = Identity::self_signed(&["localhost"]).unwrap();
    let src = Arc::new(SeqReader::open(&name).unwrap());
    let p = rt
        .block_on(Publisher::bind(
            "127.0.0.1:0".parse().unwrap(),
            src,
            ServerTls::new(&id).unwrap(),
            PublisherConfig::default(),
        ))
        .unwrap();
    let local = testkit::unique_name("life-mirror");
    let picks = [Pick::all("generation"), Pick::slice("grid", &[ROWS, COLS])];
    let tls = ClientTls::pinned(id.cert().clone()).unwrap();
    let m = rt
        .block_on(NamedMirror::connect(
            p.local_addr().unwrap(),
            "localhost",
            tls,
            &picks,
            &local,
            MirrorConfig::default(),
            Duration::from_secs(10),
        ))
        .unwrap();
    // The server: one atomic step per generation (counter and grid together).
    let done = Arc::new(AtomicBool::new(false));
    let server = {
        let (done, mut world) = (done.clone(), world.clone());
        std::thread::spawn(move || {
            for generation in 1..=GENERATIONS {
                world = step(&world);
                write_step(&mut w, |s| {
                    s.write_all(&grid_a, &world)?;
                    s.set(&gen_a, &[0], generation)
                })
                .unwrap();
                std::thread::sleep(Duration::from_millis(2));
            }
            done.store(true, Ordering::Release); // pairs with the Acquire load below; orders nothing else
            w
        })
    };
    // The mirror side: one consistent read of the local region per check.
    let lc = m.catalog().clone();
    let (g_off, s_off) = (lc.get("generation").unwrap().offset as usize, lc.get("grid").unwrap().offset as usize);
    let sub_len = sub_grid(&world).len();
    let mut buf = vec![0u8; lc.region_size() as usize];
    let mut expected = vec![sub_grid(&world)]; // expected[g] = server's sub-grid at generation g
    let mut current = world;
    let mut checked = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let finished = done.load(Ordering::Acquire);
        m.region().read_at(0, &mut buf).unwrap();
        let generation = u64::from_le_bytes(buf[g_off..g_off + 8].try_into().unwrap());
        while expected.len() as u64 <= generation {
            current = step(&current);
            expected.push(sub_grid(&current));
        }
        assert_eq!(
            &buf[s_off..s_off + sub_len],
            &expected[generation as usize][..],
            "sub-grid differs at generation {generation}"
        );
        checked.insert(generation);
        if finished && generation == GENERATIONS {
            break;
        }
        assert!(Instant::now() < deadline, "mirror stuck at generation {generation}");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(checked.len() >= 3, "too few generations observed: {checked:?}");
    let w = server.join().unwrap();
    // The mirror received only the sub-grid, not the world.
    let received = m.mirror().stats().bytes_received;
    assert!(received < GENERATIONS * (N * N) as u64 / 4, "received {received} bytes");
    rt.block_on(async {
        m.close().await;
        p.close().await;
    });
    w.unlink().unwrap();
}
