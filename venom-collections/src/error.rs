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
    /// A key is longer than the cache's `max_key_len`.
    #[error("key of {len} bytes exceeds max_key_len {max}")]
    KeyTooLarge {
        /// Length of the rejected key.
        len: usize,
        /// The cache's limit.
        max: usize,
    },
    /// A value is longer than the cache's `max_value_len`.
    #[error("value of {len} bytes exceeds max_value_len {max}")]
    ValueTooLarge {
        /// Length of the rejected value.
        len: usize,
        /// The cache's limit.
        max: usize,
    },
    /// The cache has no room for the entry and its eviction policy is
    /// `Reject` (or nothing else is evictable).
    #[error("cache is full")]
    CacheFull,
    /// The caller's buffer is smaller than the value.
    #[error("buffer of {got} bytes is too small for a {needed}-byte value")]
    BufferTooSmall {
        /// Length of the value.
        needed: usize,
        /// Length of the buffer.
        got: usize,
    },
    /// The object segment has no room left for a new object.
    #[error("object segment is out of space: {requested} bytes requested, {available} available")]
    OutOfSpace {
        /// Bytes the new object needs.
        requested: u64,
        /// Bytes left in the segment.
        available: u64,
    },
    /// Every entry of the object directory is taken.
    #[error("object directory is full ({0} entries)")]
    DirectoryFull(usize),
    /// No object with this name exists in the segment.
    #[error("no object named {0:?}")]
    ObjectNotFound(String),
    /// The object name is empty, too long or not valid UTF-8.
    #[error("invalid object name {name:?}: {reason}")]
    InvalidObjectName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// The named object exists with a different structure kind.
    #[error("object {name:?} is a {found}, not a {expected}")]
    KindMismatch {
        /// The object name.
        name: String,
        /// The kind the caller asked for.
        expected: &'static str,
        /// The kind stored in the directory.
        found: &'static str,
    },
    /// The named object exists but its stored layout differs from the one
    /// requested (element size, alignment, type fingerprint or capacity).
    #[error("object {name:?} has {field} {found}, expected {expected}")]
    LayoutMismatch {
        /// The object name.
        name: String,
        /// The field that differs.
        field: &'static str,
        /// The requested value.
        expected: u64,
        /// The stored value.
        found: u64,
    },
    /// An index is outside a fixed-size structure.
    #[error("index {index} is out of bounds for length {len}")]
    IndexOutOfBounds {
        /// The index asked for.
        index: u64,
        /// The structure's length.
        len: u64,
    },
    /// A fixed-capacity structure has no free slot.
    #[error("structure is full (capacity {0})")]
    Full(u64),
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
