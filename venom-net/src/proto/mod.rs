//! The sans-IO protocol core (quinn-proto style): frames, subscriptions,
//! diffs, digests, admission and policy decisions, and the publisher and
//! mirror state machines.
//!
//! Nothing here touches a socket, a task or a clock: bytes go in through
//! `handle_frame`, bytes come out of `poll_transmit`, and the time is passed
//! in as a [`Now`]. That is what lets `tests/` drive both sides
//! deterministically (loss, reordering, hostile frames) without a network.
//! The I/O shell that feeds these state machines from quinn is
//! [`crate::io`]; this module never imports from it.
//!
//! | module | what lives there |
//! |---|---|
//! | [`frame`] | the wire format: 8-byte header, typed frames, strict length-capped decoder |
//! | [`subscription`] | whole region, byte ranges, n-D slices, compiled to runs |
//! | [`catalog`] | named arrays: the catalog in a region's first 4 KiB |
//! | [`region`] | the traits the state machines read from / write to, and [`MemRegion`](region::MemRegion) |
//! | [`encoder`] / [`backlog`] | one shared shadow + diff per region version; the bounded ring of encoded deltas keyed by `(epoch, seq)` |
//! | [`publisher`] / [`mirror`] | the two session state machines (a publisher session cuts shared deltas to its subscription) |
//! | [`relay`] | a mirror sink that republishes what it applies (cascading fan-out) |
//! | [`digest`] | incremental Merkle digests over 16 KiB chunks (`check_hash`) |
//! | [`admission`] / [`policy`] | the bounded connection life cycle; who may read which bytes |
//! | [`stats`] | counters both sides expose |
//! | [`transmit`] | encoded frames as byte chunks (payload slices shared, not copied) |

pub mod admission;
pub mod backlog;
pub mod catalog;
pub(crate) mod cut;
pub(crate) mod diff;
pub mod digest;
pub mod encoder;
pub mod frame;
pub(crate) mod jitter;
pub mod mirror;
pub mod policy;
pub mod publisher;
pub mod region;
pub mod relay;
pub mod stats;
pub mod subscription;
pub mod transmit;
mod wire;
mod wire_code;

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
