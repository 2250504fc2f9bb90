//! The tokio/quinn I/O shell around the sans-IO state machines of
//! [`crate::proto`]: it owns the sockets, the tasks and the clock reads, and
//! binds the state machines to venom-core's `SeqRegion` (`seq_region`).
//!
//! One QUIC connection per mirror, one bidirectional stream per connection:
//! the mirror opens it and sends its hello; the publisher answers with a
//! welcome and then update/hash frames; the mirror sends acks and resync
//! requests back. A QUIC stream is reliable and ordered, so a loss shows up
//! as a connection error, after which the mirror reconnects with backoff and
//! receives a fresh snapshot.
//!
//! Any frame that fails validation closes the connection with
//! [`PROTOCOL_ERROR`] and is logged with `tracing::warn!`.

mod endpoint;
mod framing;
mod mirror;
mod publisher;
mod seq_region;

pub use endpoint::bind_endpoint;
pub use mirror::{Mirror, UpdateStream};
pub use publisher::Publisher;

/// Application close code for a peer that broke the protocol.
pub const PROTOCOL_ERROR: u32 = 1;
/// Application close code for an orderly shutdown.
pub const CLOSED: u32 = 0;
