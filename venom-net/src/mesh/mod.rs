//! A mesh of peers that each own a part of a shared array.
//!
//! ## Design: no relaying
//! Every peer runs one [`Publisher`](crate::io::Publisher) that serves
//! **only its own part** (the publisher's source is the region holding that
//! part, so there is nothing else it could relay), and one
//! [`Mirror`](crate::io::Mirror) per other owner, connected **directly**
//! to that owner. Each part therefore has exactly one path to every peer,
//! and its updates arrive in the owner's `(epoch, seq)` order on one ordered
//! QUIC stream: a stale value can never overwrite a newer one (memblast's
//! "last arrival wins" relay cannot happen, because nobody forwards).
//!
//! ## Storage: one region per part
//! A peer `me` of mesh `m` keeps part `k` (owned by peer `o`) packed in the
//! venom-core `SeqRegion` named `m.me.o`. The own part has one local writer
//! (behind a mutex, see [`MeshPeer::write`]); each other part has one
//! writer, the mirror of its owner. So there is exactly one `SeqWriter` per
//! region and no lock is shared between local writes and mirror applies.
//! [`MeshPeer::read_whole`] assembles the whole array from the parts; each
//! part is read consistently, but the whole array is not a cross-part
//! snapshot (parts have independent writers; that is inherent to a mesh).
//!
//! ## Ownership
//! Peers use mutual TLS with a mesh CA, and a peer's certificate names its
//! id (DNS SAN). A link to the owner of part `k` connects with server name
//! = that owner's id, so only the holder of the owner's certificate can feed
//! part `k`: any other peer answering at that address fails the handshake.
//! The mirror's subscription is the whole published region into a sink of
//! exactly the part's size, so a publisher announcing a bigger region, or
//! sending any run outside the part, is a protocol error: the connection is
//! closed and logged (`tracing::warn!`). Locally, [`MeshPeer::write`]
//! refuses any part but the peer's own ([`Error::NotOwner`](crate::Error::NotOwner)).
//!
//! ## Reading is bound to identity too
//! Each peer's publisher runs with a [`Policy`](crate::proto::policy::Policy)
//! that lists exactly the other owners of the layout (by their certificate
//! name): any other CA-signed certificate is closed right after the
//! handshake, before it may send a hello, so it can neither read the part
//! nor hold a session slot. Each listed peer may hold at most
//! [`MESH_LINKS_PER_PEER`] connections (one live, one reconnecting), and the
//! session cap is that times the number of readers, so the listed peers'
//! slots can never be taken by anyone else.
//!
//! ## Key material
//! Each peer reads its key from its own private directory (see
//! [`MeshTls::save`] / [`MeshTls::load`]): no peer can read another's key.
//!
//! ## Restarts
//! A restarted owner publishes with a new epoch; its mirrors reconnect with
//! backoff (at most 2 s) and take a snapshot. A restarted non-owner gets a
//! snapshot of every part on connect. Peers may start in any order.

mod keys;
mod layout;
mod peer;

pub use layout::{MeshLayout, PartSpec};
pub use peer::{MESH_LINKS_PER_PEER, MeshConfig, MeshPeer, MeshTls};
