//! # venom-net
//!
//! Replication of a venom shared-memory region to remote mirrors over QUIC.
//!
//! ## Layers (quinn / quinn-proto style)
//! * [`proto`]: the **sans-IO protocol core**. Frames, subscriptions, the
//!   catalog of named arrays, diffs, Merkle digests, admission and policy
//!   decisions, and the publisher/mirror state machines. It never touches a
//!   socket or a task, takes the time as a [`Now`], and imports nothing from
//!   the layers below in this list. A frame field, a subscription rule or a
//!   session rule belongs here.
//! * [`io`]: the **tokio/quinn shell** ([`io::Publisher`], [`io::Mirror`]):
//!   endpoints, stream framing, tasks, and the binding of the state machines
//!   to venom-core's `SeqRegion`. A socket option, a task or a reconnect
//!   loop belongs here.
//! * [`tls`]: TLS 1.3 (ring) configs: self-signed + pinning (optionally with
//!   pinned client certificates), or mutual TLS with a CA, and the QUIC
//!   transport limits. A TLS option belongs here.
//! * On top: [`typed`] / [`named`] (typed bytemuck views, mirrors that
//!   subscribe to named arrays), [`mesh`] (peers that each own a part of a
//!   shared array and mirror every other part directly from its owner) and
//!   [`web`] (feature `web`: a live view of a region's named arrays in the
//!   browser).
//!
//! ## Guarantees
//! * Every update is read from the region in ONE consistent seqlock window
//!   and tagged `(epoch, seq)`, where `seq` is the region version the bytes
//!   are consistent at; a mirror at `(e, s)` holds exactly the publisher's
//!   subscribed bytes at version `s` of incarnation `e`.
//! * Each update is applied to the mirror's region in one `write_with`
//!   window: local readers never see half an update.
//! * Nothing is silently dropped: a mirror either applies a delta on top of
//!   the seq it was computed against, or asks for (and gets) a snapshot.
//! * With `check_hash`, a mirror that counts a verified digest for
//!   `(epoch, seq)` (`MirrorStats::hash_matches`) held exactly the
//!   publisher's subscribed bytes at `seq` when it checked: both sides keep
//!   a Merkle root over 16 KiB chunks of exactly the subscribed bytes
//!   ([`digest`](proto::digest)), updated only for chunks a write dirtied, between updates
//!   (never while one is cut into frames or before it is visible). A
//!   mismatch resends just the suspect chunks first, then falls back to a
//!   snapshot.
//!
//! ## Hostile or broken publishers (mirror side)
//!
//! | bound | default | where |
//! |---|---|---|
//! | automatic resyncs (gap, broken update, digest mismatch) in a streak are spaced by | 50 ms doubling to 5 s, jittered 50–100 % | `MirrorConfig::resync_backoff_min/max` |
//! | consecutive faults (digest mismatches, connections ended by a protocol violation) before the mirror gives up for good ([`MirrorFailure`], `Error::MirrorFailed` from waits) | 8 | `MirrorConfig::max_faults` |
//! | reconnect delay | 20 ms doubling to 2 s, jittered 50–100 %; reset only by a connection that lived ≥ 2 s | `io::Mirror` |
//! | digest hashing per idle slice / inline per digest frame | 1 MiB / 4 MiB (the rest in later idle slices) | `io::Mirror`, [`MirrorSession::poll_verify`] |
//! | clean chunks re-read per digest check (scrub) | 4 (64 KiB) | `MirrorConfig::scrub_chunks` |
//!
//! CPU bound: a publisher that answers every resync with a snapshot and a
//! wrong digest gets at most `max_faults` snapshots applied and hashed,
//! spaced by the backoff (≥ 25 ms, 50 ms, 100 ms, ...), after which the
//! mirror stops; one that disconnects or breaks the protocol after each
//! snapshot gets at most one connection per reconnect delay, and
//! `max_faults` of them. `tests/hostile_publisher.rs` measures the mirror
//! thread's CPU time (getrusage) over such attacks on a 1 MiB subscription
//! and requires < 50 % of one core; it measures ~10 % in a debug build.
//! Not bounded by this: a publisher streaming well-formed, *unrequested*
//! snapshots at line rate (each costs a copy + rehash of the subscription;
//! the rate is bounded only by the QUIC flow-control windows).
//!
//! ## Exposing a publisher: bounds
//! Every resource a remote peer can make the publisher hold has a cap,
//! checked before the resource is allocated (see [`admission`](proto::admission) for the
//! life cycle). Each refusal closes the QUIC connection with its own
//! application code, which the mirror surfaces as
//! [`Error::Refused`] / [`io::Mirror::last_refusal`]; the publisher counts
//! them by reason in [`io::Publisher::admission`].
//!
//! | bound | default | set by | on excess |
//! |---|---|---|---|
//! | connections in the TLS handshake | 16 | [`AdmissionLimits::max_handshaking`](proto::admission::AdmissionLimits) | `Incoming::refuse` before quinn allocates the connection (mirror: `Refused(Busy)`) |
//! | unvalidated source addresses | QUIC Retry once half the handshake slots are taken | [`admission::Admission::wants_retry`](proto::admission::Admission::wants_retry) | spoofed sources never answer, so they cannot hold handshake slots |
//! | attempts queued in quinn for the accept loop | 4 × handshaking cap = 64 | quinn `ServerConfig::max_incoming` | refused by quinn |
//! | bytes buffered per queued attempt / all | 64 KiB / 4 MiB | quinn `incoming_buffer_size(_total)` | dropped (retransmitted) |
//! | handshake duration | 5 s | `handshake_timeout` (and the 5 s idle timeout) | dropped |
//! | connections past the handshake without a complete hello | 16 | `max_awaiting_hello` | the oldest one waiting longer than `hello_grace` (250 ms) is closed to make room (code 5); else the new one is closed, code 2 `Busy` |
//! | time to a complete hello (from handshake end) | 3 s | `hello_timeout` | closed, code 5 `HelloTimeout` (its reader task ends with it) |
//! | connections per certificate identity (awaiting hello + live) | 4 | `per_identity` | closed, code 3 `IdentityLimit` |
//! | connections per source IP of anonymous peers (awaiting hello + live) | 16 | `per_address` | closed, code 3 `IdentityLimit` |
//! | identities the policy does not list | refused | [`PublisherConfig::policy`] | closed before the hello, code 4 `Unauthorized` |
//! | subscriptions outside the identity's grants | refused | [`PublisherConfig::policy`] | closed before anything is allocated for the session, code 4 |
//! | live sessions | 64 | [`PublisherConfig::max_mirrors`] | closed, code 2 `Busy` |
//! | oldest unacknowledged update / a send making no progress | 10 s | `liveness_timeout` | closed, code 6 `Silent` |
//! | streams per connection | 1 bidirectional (opened by the mirror), 0 unidirectional, no datagrams | [`tls`] transport config | the peer cannot open more (QUIC stream limits) |
//! | publisher receive window (stream and connection) | 2 control frames (32 KiB) | [`tls::PUBLISHER_RECEIVE_WINDOW`] | QUIC flow control |
//! | frame the publisher reads / frames read ahead | control frames only (16 KiB body) / 8 | I/O shell | closed, code 1 `PROTOCOL_ERROR` |
//! | publisher send window (bytes buffered per connection) | 4 update frames (~4 MiB) | [`tls::ServerTls::with_send_window`] | the session's task waits (then `liveness_timeout`) |
//! | bytes / updates in flight per session | 8 MiB / 4 | `max_in_flight` / `max_in_flight_updates` | conflation |
//! | mirror receive window | 4 update frames (~4 MiB) | [`tls::ClientTls::with_receive_window`] | QUIC flow control |
//! | idle timeout / keep-alive | 5 s / 0.5 s | [`tls`] transport config | connection closed |
//!
//! With the defaults a publisher holds at most 16 + 16 + 64 = 96 connections
//! in all states together. Memory it can be made to hold is at most about
//! 200 KiB per pending connection (window, read-ahead, QUIC state) and,
//! per live session, its in-flight bytes and send window (see the memory
//! model below: no per-session shadow or snapshot buffer). Measured
//! (`tests/admission_rss.rs`: defaults except `per_address`, lifted to model
//! a distributed attack; 256 KiB region; debug build on a loaded 2-core
//! machine): under 96 hostile connections (48 silent sessions, 24 stalled
//! hellos, 24 stream floods) the whole test process (publisher and
//! attackers) grew 27–38 MiB, about 1 MiB per silent live session, against
//! an asserted bound of 64 MiB above baseline, while a mirror kept
//! converging (blake3-equal) and a new mirror connected.
//!
//! Close codes: 0 orderly close, 1 protocol error, 2..=6 the
//! [`admission::Refusal`](proto::admission::Refusal)s above. Refusals are logged at warn level at most
//! once a second per kind (with the count since), so a flood is not a log flood.
//!
//! **Without client authentication** ([`tls::ServerTls::new`]) every peer is
//! anonymous: anyone who can reach the port may read what the policy grants
//! anonymous peers (by default the whole region), and only the per-address
//! limit tells them apart. An anonymous flood cannot exhaust memory, and
//! stalled hellos are evicted after `hello_grace` when newcomers need room,
//! but a distributed flood fast enough to fill every cap can still delay
//! new mirrors. Authenticate mirrors ([`tls::ServerTls::mutual`] or
//! [`tls::ServerTls::pinned_clients`]) to get per-identity limits and grants.
//!
//! ## Fan-out: encode once, replication backlog, relays
//! One [`RegionEncoder`] per published region keeps ONE copy-on-write
//! shadow of the region and diffs each region version ONCE; the encoded
//! delta goes to a bounded [`backlog`](proto::backlog) keyed by
//! `(epoch, seq)`. Each mirror's [`PublisherSession`] only cuts the shared
//! deltas to its subscription (whole-region mirrors at the head get the
//! shared frames as they are; a mirror that is behind gets the merge of the
//! deltas since its seq; one that fell out of the backlog a snapshot from a
//! frozen shadow view). A reconnecting mirror offers its `(epoch, seq)` in
//! its hello and, within the backlog window, receives only what it missed.
//! A mirror started with [`MirrorConfig::relay`] republishes its copy
//! through [`io::Publisher::bind_relay`] with the origin's epochs and seqs.
//!
//! **Memory model** (publisher process, `S` = region size, `B` =
//! [`PublisherConfig::backlog_bytes`]):
//!
//! ```text
//! memory ≈ S (shared shadow) + B (backlog) + Σ_mirrors ( in-flight ≤ max_in_flight + one update
//!                                                      + send window
//!                                                      + chunks pinned by its current update or
//!                                                        digest view that the writer rewrote since )
//! ```
//!
//! With `check_hash`, whole-region mirrors share the encoder's one digest
//! tree (~`S / 256`); a mirror with another subscription keeps its own
//! tree over its subscribed bytes (~`sub / 256`).
//!
//! The pinned term is zero for mirrors at the head (nothing to pin while
//! idle) and at most the chunks rewritten while a snapshot or a digest of
//! that mirror is in progress. The previous per-mirror design cost
//! `mirrors × S` of shadows (64 mirrors of 64 MiB: 4 GiB).
//!
//! ## Limits (honest list)
//! * Memory per mirror session on the publisher: see the bounds and the
//!   memory model above.
//! * Resume needs the same publisher epoch (a restarted origin is a new
//!   epoch: one snapshot) and a position the backlog still reaches back to.
//! * A relay's local region and shadow are two copies (2 × its size).
//! * Deltas are computed per dirty chunk: a 1-byte write re-reads and
//!   re-diffs its whole chunk (64 KiB by default) on the publisher.
//! * `MirrorStats::lag_time` compares two hosts' wall clocks; the
//!   publisher-side `PublisherStats::lag_time` uses one monotonic clock.
//! * One region per connection (`region_id` 0). Named arrays and the mesh
//!   are built on top (a catalog inside the region; one connection per
//!   part owner), not in the frame format.
//! * TLS 1.3 with the ring provider only; there is no plaintext mode.
//!
//! The state machines can be driven without any I/O, e.g. in a test:
//!
//! ```
//! use venom_net::proto::frame::Frame;
//! use venom_net::*;
//! let region = MemRegion::new(4096, 1024); // the published region (test double)
//! let mut local = MemRegion::new(4096, 1024); // the mirror's local region
//! let cfg = PublisherConfig::default();
//! // ONE encoder per region (shadow, diff, backlog), any number of sessions.
//! let mut encoder = RegionEncoder::from_region(1, &region, cfg.encoder(0))?;
//! let mut publisher = PublisherSession::new(1, 0, 0, cfg);
//! let mut mirror = MirrorSession::new(MirrorConfig::default(), Subscription::whole());
//! mirror.connect(); // queues the hello
//! region.write_at(100, b"hello");
//! for _ in 0..3 {
//!     let now = Now::system(); // time is always passed in explicitly
//!     encoder.step(&region, now.wall_ns)?; // the I/O shell runs this on its encoder thread
//!     let mut wire = Vec::new();
//!     while mirror.poll_transmit(&mut wire) {}
//!     let mut at = 0;
//!     while at < wire.len() {
//!         let (frame, n) = Frame::decode(&wire[at..])?;
//!         publisher.handle_frame(&frame, &encoder, n)?;
//!         at += n;
//!     }
//!     let mut wire = Vec::new();
//!     while publisher.poll_transmit(&encoder, now, &mut wire)? {}
//!     let mut at = 0;
//!     while at < wire.len() {
//!         let (frame, n) = Frame::decode(&wire[at..])?;
//!         mirror.handle_frame(&frame, &mut local, n, now)?;
//!         at += n;
//!     }
//! }
//! assert_eq!(&local.to_vec()[100..105], b"hello");
//! assert_eq!(mirror.applied().unwrap().seq, region.version());
//! # Ok::<(), venom_net::Error>(())
//! ```

#![warn(missing_docs)]

mod error;
pub mod io;
pub mod mesh;
pub mod named;
pub mod proto;
pub mod tls;
pub mod typed;
#[cfg(feature = "web")]
pub mod web;

pub use error::{Error, Result};
pub use io::{Mirror, Publisher, UpdateStream};
pub use proto::Now;
pub use proto::encoder::{EncoderConfig, RegionEncoder};
pub use proto::mirror::{Applied, MirrorConfig, MirrorSession};
pub use proto::publisher::{PublisherConfig, PublisherSession};
pub use proto::region::{ChunkSpan, MemRegion, RegionSink, RegionSource, Snapshot};
pub use proto::stats::{MirrorFailure, MirrorStats, PublisherStats};
pub use proto::subscription::{CompiledSubscription, Dtype, Part, Run, Subscription};
