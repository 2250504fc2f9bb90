//! The crate's one error type.
//!
//! Shared by the named-object collections and the key-value cache. Add
//! variants with small, targeted edits; keep every variant documented.

use std::time::Duration;

/// Everything that can go wrong in `venom-collections`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error from the segment layer (names, headers, permissions...).
    #[error(transparent)]
    Core(#[from] venom_core::Error),
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The operation did not complete within its timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// Shared state failed validation (a corrupt or foreign segment).
    #[error("corrupt shared state: {0}")]
    Corrupt(String),
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
