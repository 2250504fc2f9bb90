//! # venom-net
//!
//! Replication of a venom shared-memory region to remote mirrors over QUIC.
//!
//! * [`frame`]: versioned, length-capped frames with a strict decoder.
//! * [`digest`]: incremental Merkle digests over 16 KiB chunks (`check_hash`).
//! * [`subscription`]: whole region, byte ranges and n-D slices, compiled to runs.
//! * [`publisher`] / [`mirror`]: the sans-IO state machines (quinn-proto style).
//! * [`region`]: the region traits, implemented for venom-core regions and for
//!   the in-memory [`MemRegion`] used by the deterministic tests.
//! * [`tls`]: TLS 1.3 (ring) configs: self-signed + pinning, or mutual TLS with a CA.
//! * [`net`]: the tokio/quinn I/O shell ([`net::Publisher`], [`net::Mirror`]).
//! * [`catalog`] / [`typed`] / [`named`]: named arrays (a catalog in the
//!   region's first 4 KiB), typed bytemuck views, mirrors that subscribe by name.
//! * [`mesh`]: peers that each own a part of a shared array and mirror every
//!   other part directly from its owner (no relaying).
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
//!   ([`digest`]), updated only for chunks a write dirtied, between updates
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
//! | reconnect delay | 20 ms doubling to 2 s, jittered 50–100 %; reset only by a connection that lived ≥ 2 s | `net::Mirror` |
//! | digest hashing per idle slice / inline per digest frame | 1 MiB / 4 MiB (the rest in later idle slices) | `net::Mirror`, [`MirrorSession::poll_verify`] |
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
//! ## Limits (honest list)
//! * Memory per mirror session on the publisher: a shadow copy of the
//!   subscribed bytes plus a snapshot buffer of up to the region size;
//!   `PublisherConfig::max_mirrors` (64) caps the sessions.
//! * A reconnect always costs a full snapshot of the subscription (no
//!   partial resume from a backlog).
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
//! use venom_net::frame::Frame;
//! use venom_net::*;
//! let region = MemRegion::new(4096, 1024); // the published region (test double)
//! let mut local = MemRegion::new(4096, 1024); // the mirror's local region
//! let mut publisher = PublisherSession::new(1, 0, 0, PublisherConfig::default());
//! let mut mirror = MirrorSession::new(MirrorConfig::default(), Subscription::whole());
//! mirror.connect(); // queues the hello
//! region.write_at(100, b"hello");
//! for _ in 0..3 {
//!     let now = Now::system(); // time is always passed in explicitly
//!     let mut wire = Vec::new();
//!     while mirror.poll_transmit(&mut wire) {}
//!     let mut at = 0;
//!     while at < wire.len() {
//!         let (frame, n) = Frame::decode(&wire[at..])?;
//!         publisher.handle_frame(&frame, &region, n)?;
//!         at += n;
//!     }
//!     let mut wire = Vec::new();
//!     while publisher.poll_transmit(&region, now, &mut wire)? {}
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

pub mod catalog;
mod diff;
pub mod digest;
mod error;
pub mod frame;
pub mod mesh;
pub mod mirror;
pub mod named;
pub mod net;
pub mod publisher;
pub mod region;
mod seq_region;
pub mod stats;
pub mod subscription;
pub mod tls;
pub mod typed;
mod wire;

pub use error::{Error, Result};
pub use mirror::{Applied, MirrorConfig, MirrorSession};
pub use publisher::{PublisherConfig, PublisherSession};
pub use region::{ChunkSpan, MemRegion, RegionSink, RegionSource, Snapshot};
pub use stats::{MirrorFailure, MirrorStats, PublisherStats};
pub use subscription::{CompiledSubscription, Dtype, Part, Run, Subscription};

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The time, passed explicitly into the state machines.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// Monotonic clock (timeouts, in-flight ages).
    pub mono: Instant,
    /// Wall clock in ns since the Unix epoch (stamped into updates for lag).
    pub wall_ns: u64,
}

impl Now {
    /// Reads both system clocks.
    pub fn system() -> Self {
        let wall_ns = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
        Now { mono: Instant::now(), wall_ns }
    }
}
