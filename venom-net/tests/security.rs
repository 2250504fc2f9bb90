//! Hostile peers and certificate checks, over real quinn endpoints.

mod common;
use common::*;
use std::time::Duration;
use venom_net::io::{PROTOCOL_ERROR, bind_endpoint};
use venom_net::proto::frame::{Frame, Hello, Welcome, encode_single_update};
use venom_net::tls::{CertificateAuthority, ClientTls, Identity, ServerTls};
use venom_net::*;

/// Whether `conn` was closed with PROTOCOL_ERROR within 5 s.
async fn closed_with_protocol_error(conn: &quinn::Connection) -> bool {
    match tokio::time::timeout(Duration::from_secs(5), conn.closed()).await {
        Ok(quinn::ConnectionError::ApplicationClosed(c)) if c.error_code == quinn::VarInt::from_u32(PROTOCOL_ERROR) => {
            true
        }
        other => {
            eprintln!("closed otherwise: {other:?}");
            false
        }
    }
}

/// Whether the publisher closed `conn` within 5 s for a protocol error (its
/// `total`-th). The mirror sees PROTOCOL_ERROR, or a stateless reset when
/// the CONNECTION_CLOSE datagram was lost (loopback drops datagrams when a
/// socket buffer is full under load); the publisher counts the reason
/// before it closes, so the count says why either way.
async fn disconnected_for_protocol_error(conn: &quinn::Connection, p: &Publisher, total: u64) -> bool {
    let closed = tokio::time::timeout(Duration::from_secs(5), conn.closed()).await;
    let code_ok = match &closed {
        Ok(quinn::ConnectionError::ApplicationClosed(c)) => c.error_code == quinn::VarInt::from_u32(PROTOCOL_ERROR),
        Ok(quinn::ConnectionError::Reset) => true,
        _ => false,
    };
    let counted = p.admission().protocol_errors;
    if !code_ok || counted != total {
        eprintln!("closed: {closed:?}, protocol errors counted {counted} (expected {total})");
    }
    code_ok && counted == total
}

fn hello(sub: Subscription) -> Vec<u8> {
    let mut v = Vec::new();
    Frame::Hello(Hello { mirror_id: 9, region_id: 0, check_hash: false, subscription: sub, resume: None })
        .encode(&mut v);
    v
}

/// A mirror that sends garbage is disconnected with PROTOCOL_ERROR; the
/// publisher keeps serving well-behaved mirrors.
#[test]
fn hostile_mirror_is_disconnected() {
    runtime().block_on(async {
        let dev = Dev::new();
        let region = MemRegion::new(64 << 10, 4096);
        let p = publish(&region, dev.server(), PublisherConfig::default()).await;
        let addr = p.local_addr().unwrap();
        let mut ep = bind_endpoint(loopback(), None).unwrap();
        ep.set_default_client_config(dev.client().quinn_config());
        let mut oversized = b"VN\x01\x03".to_vec();
        oversized.extend_from_slice(&u32::MAX.to_le_bytes());
        let mut wrong_direction = hello(Subscription::whole());
        Frame::Welcome(Welcome { epoch: 1, owner_id: 0, region_id: 0, chunk_size: 1, region_size: 1 })
            .encode(&mut wrong_direction);
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("bad magic", b"XX\x01\x01\0\0\0\0".to_vec()),
            ("bad version", b"VN\x09\x01\0\0\0\0".to_vec()),
            ("oversized", oversized),
            ("out-of-range subscription", hello(Subscription::range(60 << 10, 8 << 10, 0))),
            ("truncated hello body", b"VN\x01\x01\x02\0\0\0ab".to_vec()),
            ("frame in the wrong direction", wrong_direction),
        ];
        for (n, (what, bytes)) in cases.into_iter().enumerate() {
            let conn = ep.connect(addr, "localhost").unwrap().await.unwrap();
            let (mut send, _recv) = conn.open_bi().await.unwrap();
            send.write_all(&bytes).await.unwrap();
            assert!(disconnected_for_protocol_error(&conn, &p, n as u64 + 1).await, "{what}");
        }
        // Still serving.
        let local = MemRegion::new(64 << 10, 4096);
        region.write_at(100, b"still alive");
        let _m = mirror(addr, Subscription::whole(), dev.client(), &local, true);
        converge(&region, &Subscription::whole(), &local, Duration::from_secs(10)).await;
        p.close().await;
    });
}

/// A mirror that never reads, so that the publisher's snapshot write waits
/// on flow control, and then sends a frame in the wrong direction is
/// still disconnected at once for its protocol error (not after the 10 s
/// liveness timeout): the session handles the mirror's frames while a write
/// waits.
#[test]
fn a_mirror_that_stops_reading_is_disconnected_for_a_bad_frame() {
    runtime().block_on(async {
        let dev = Dev::new();
        // 16 MiB: the snapshot is far larger than the mirror's receive window.
        let region = MemRegion::new(16 << 20, 64 << 10);
        let p = publish(&region, dev.server(), PublisherConfig::default()).await;
        let mut ep = bind_endpoint(loopback(), None).unwrap();
        ep.set_default_client_config(dev.client().quinn_config());
        let conn = ep.connect(p.local_addr().unwrap(), "localhost").unwrap().await.unwrap();
        let (mut send, _recv) = conn.open_bi().await.unwrap();
        send.write_all(&hello(Subscription::whole())).await.unwrap();
        // Until the session has cut its first snapshot frames: it is then
        // writing 16 MiB into a window of a few frames, which we never read.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !p.stats().iter().any(|s| s.bytes_sent > 0) {
            assert!(tokio::time::Instant::now() < deadline, "the publisher never started the snapshot");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut welcome = Vec::new();
        Frame::Welcome(Welcome { epoch: 1, owner_id: 0, region_id: 0, chunk_size: 1, region_size: 1 })
            .encode(&mut welcome);
        send.write_all(&welcome).await.unwrap();
        assert!(disconnected_for_protocol_error(&conn, &p, 1).await, "while the publisher waited on the window");
        p.close().await;
    });
}

/// A publisher that sends an out-of-range update is disconnected and never
/// writes into the mirror's region.
#[test]
fn hostile_publisher_cannot_write_outside_the_subscription() {
    runtime().block_on(async {
        let dev = Dev::new();
        let server = bind_endpoint(loopback(), Some(&dev.server())).unwrap();
        let addr = server.local_addr().unwrap();
        let local = MemRegion::new(4096, 1024);
        let m = mirror(addr, Subscription::range(0, 100, 0), dev.client(), &local, false);
        let conn = server.accept().await.unwrap().await.unwrap();
        let (mut send, mut recv) = conn.accept_bi().await.unwrap();
        let mut head = [0u8; 8];
        recv.read_exact(&mut head).await.unwrap(); // the hello header; body not needed
        let mut out = Vec::new();
        Frame::Welcome(Welcome { epoch: 5, owner_id: 0, region_id: 0, chunk_size: 64, region_size: 4096 })
            .encode(&mut out);
        out.extend(encode_single_update(5, 2, 0, true, &[(90, &[0xEE; 200])]));
        send.write_all(&out).await.unwrap();
        assert!(closed_with_protocol_error(&conn).await);
        assert_eq!(local.to_vec(), vec![0u8; 4096], "nothing written");
        assert!(m.applied().is_none());
        m.close().await;
    });
}

async fn never_applies(m: &io::Mirror) -> bool {
    tokio::time::sleep(Duration::from_millis(700)).await;
    m.applied().is_none() && m.stats().updates_applied == 0
}

/// A mirror pinning another certificate refuses the publisher.
#[test]
fn wrong_pinned_certificate_is_refused() {
    runtime().block_on(async {
        let dev = Dev::new();
        let region = MemRegion::new(4096, 1024);
        let p = publish(&region, dev.server(), PublisherConfig::default()).await;
        let other = Identity::self_signed(&["localhost"]).unwrap();
        let local = MemRegion::new(4096, 1024);
        let m = mirror(
            p.local_addr().unwrap(),
            Subscription::whole(),
            ClientTls::pinned(other.cert().clone()).unwrap(),
            &local,
            false,
        );
        assert!(never_applies(&m).await);
        assert!(m.last_error().is_some_and(|e| e.to_lowercase().contains("certificate")), "{:?}", m.last_error());
        p.close().await;
    });
}

/// Mutual TLS: a CA-issued mirror connects; one without a certificate or
/// with a certificate from another CA is refused.
#[test]
fn mutual_tls_requires_a_ca_issued_client_certificate() {
    runtime().block_on(async {
        let ca = CertificateAuthority::new("venom test CA").unwrap();
        let rogue_ca = CertificateAuthority::new("rogue CA").unwrap();
        let server_id = ca.issue(&["localhost"]).unwrap();
        let tls = ServerTls::mutual(&server_id, &[ca.cert().clone()]).unwrap();
        let region = MemRegion::new(4096, 1024);
        region.write_at(0, b"mtls");
        let policy = std::sync::Arc::new(venom_net::proto::policy::Policy::default().allow_name("mirror-1"));
        let p = publish(&region, tls, PublisherConfig { policy, ..Default::default() }).await;
        let addr = p.local_addr().unwrap();
        let roots = [ca.cert().clone()];

        let good_local = MemRegion::new(4096, 1024);
        let good = ClientTls::mutual(&roots, &ca.issue(&["mirror-1"]).unwrap()).unwrap();
        let _g = mirror(addr, Subscription::whole(), good, &good_local, false);
        converge(&region, &Subscription::whole(), &good_local, Duration::from_secs(10)).await;

        let anon = mirror(
            addr,
            Subscription::whole(),
            ClientTls::with_roots(&roots).unwrap(),
            &MemRegion::new(4096, 1024),
            false,
        );
        let rogue_tls = ClientTls::mutual(&roots, &rogue_ca.issue(&["mirror-2"]).unwrap()).unwrap();
        let rogue = mirror(addr, Subscription::whole(), rogue_tls, &MemRegion::new(4096, 1024), false);
        // A publisher certificate from another CA is refused by the mirror too.
        let evil_p = publish(
            &region,
            ServerTls::new(&rogue_ca.issue(&["localhost"]).unwrap()).unwrap(),
            PublisherConfig::default(),
        )
        .await;
        let fooled = mirror(
            evil_p.local_addr().unwrap(),
            Subscription::whole(),
            ClientTls::with_roots(&roots).unwrap(),
            &MemRegion::new(4096, 1024),
            false,
        );
        assert!(never_applies(&anon).await);
        assert!(never_applies(&rogue).await);
        assert!(never_applies(&fooled).await);
        p.close().await;
        evil_p.close().await;
    });
}
