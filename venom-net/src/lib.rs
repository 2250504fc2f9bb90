//! # venom-net
//!
//! Replication of venom shared-memory regions to remote mirrors over QUIC.

#![warn(missing_docs)]
