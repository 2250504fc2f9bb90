//! Per-session counters.

use std::time::Duration;

/// Publisher-side statistics of one mirror session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublisherStats {
    /// The mirror's id from its hello.
    pub mirror_id: u64,
    /// Frame bytes handed to the transport (headers included).
    pub bytes_sent: u64,
    /// Region bytes carried in update payloads.
    pub payload_bytes: u64,
    /// Frame bytes received from the mirror.
    pub bytes_received: u64,
    /// Updates (snapshots and deltas) completed.
    pub updates_sent: u64,
    /// Full snapshots among them.
    pub snapshots_sent: u64,
    /// Resyncs (requested by the mirror or forced by an ack timeout).
    pub resyncs: u64,
    /// Chunk repairs requested by the mirror (after a digest mismatch).
    pub repairs: u64,
    /// Connections resumed from the backlog (no snapshot).
    pub resumed: u64,
    /// Times the mirror was behind the oldest backlog delta (a snapshot instead).
    pub backlog_misses: u64,
    /// Seq (region version) of the last update sent.
    pub sent_seq: u64,
    /// Last seq the mirror acknowledged.
    pub acked_seq: u64,
    /// Bytes of updates sent but not yet acknowledged.
    pub in_flight_bytes: u64,
    /// Region writes the mirror is behind: `(region version - acked seq) / 2`.
    pub lag_seq: u64,
    /// Age of the oldest unacknowledged update (zero when none).
    pub lag_time: Duration,
}

/// Mirror-side statistics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MirrorStats {
    /// Frame bytes received.
    pub bytes_received: u64,
    /// Region bytes received in update payloads.
    pub payload_bytes: u64,
    /// Frame bytes sent (acks, resync requests, hello).
    pub bytes_sent: u64,
    /// Updates applied.
    pub updates_applied: u64,
    /// Full snapshots among them.
    pub snapshots_applied: u64,
    /// Resync requests sent.
    pub resyncs_requested: u64,
    /// Chunk repair requests sent (the first answer to a digest mismatch).
    pub repairs_requested: u64,
    /// Hash checks that matched.
    pub hash_matches: u64,
    /// Hash checks that failed (each triggers a resync).
    pub hash_mismatches: u64,
    /// Frames ignored as stale or duplicate.
    pub stale_frames: u64,
    /// Connections made (the I/O shell counts them).
    pub connections: u64,
    /// Epoch of the last applied update.
    pub epoch: u64,
    /// Seq of the last applied update.
    pub seq: u64,
    /// Publisher capture time to local apply, for the last update (wall
    /// clocks of two hosts: only meaningful if they are synchronised).
    pub lag_time: Duration,
    /// Automatic resync requests held back by the exponential backoff.
    pub resyncs_deferred: u64,
    /// Consecutive faults (digest mismatches, connections ended by a
    /// publisher protocol violation); reset by a verified digest (or, without
    /// `check_hash`, by a connection that stayed healthy).
    pub faults: u32,
    /// Set once the mirror gave up on this publisher (terminal).
    pub failure: Option<MirrorFailure>,
}

/// Why a mirror gave up: too many consecutive faults
/// (`MirrorConfig::max_faults`). Terminal: the mirror neither resyncs nor
/// reconnects any more, and waits on it return [`crate::error::Error::MirrorFailed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MirrorFailure {
    /// This many consecutive digest mismatches (the bytes never verified).
    DigestMismatches(u32),
    /// This many consecutive connections ended by a publisher protocol violation.
    ProtocolViolations(u32),
}

impl std::fmt::Display for MirrorFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MirrorFailure::DigestMismatches(n) => write!(f, "{n} consecutive digest mismatches"),
            MirrorFailure::ProtocolViolations(n) => write!(f, "{n} consecutive publisher protocol violations"),
        }
    }
}
