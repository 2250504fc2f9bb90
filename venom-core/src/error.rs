//! The crate's one error type.

use std::time::Duration;

/// Everything that can go wrong in `venom-core`.
///
/// Every failure on bad input (a corrupt segment, a bad name, an oversized
/// message) is reported here; nothing in this crate panics on such input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The segment name is empty, too long or contains a forbidden character.
    #[error("invalid segment name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A live process already owns a segment with this name. Its contents
    /// were not touched.
    #[error("segment {name:?} already exists and its creator (pid {pid}) is alive")]
    AlreadyExists {
        /// The segment name.
        name: String,
        /// The pid of the live creator.
        pid: u32,
    },
    /// No segment with this name exists.
    #[error("segment {0:?} not found")]
    NotFound(String),
    /// The segment exists but its header is not a valid venom header.
    #[error("segment {name:?} is corrupt: {reason}")]
    Corrupt {
        /// The segment name (or `"<bytes>"` when validating raw bytes).
        name: String,
        /// What check failed.
        reason: String,
    },
    /// The segment is of a different kind than the caller expected.
    #[error("segment {name:?} has kind {found}, expected {expected}")]
    WrongKind {
        /// The segment name.
        name: String,
        /// The kind the caller asked for.
        expected: u32,
        /// The kind stored in the header.
        found: u32,
    },
    /// The segment was written by an incompatible layout version.
    #[error("segment {name:?} has layout version {found}, this build reads {expected}")]
    VersionMismatch {
        /// The segment name.
        name: String,
        /// Our layout version.
        expected: u32,
        /// The stored layout version.
        found: u32,
    },
    /// The creator did not finish initialising the segment in time.
    #[error("segment {0:?} is still initialising after the timeout")]
    InitTimeout(String),
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// An offset/length pair falls outside the region.
    #[error("range {offset}+{len} is outside the region of {size} bytes")]
    OutOfBounds {
        /// Requested offset.
        offset: usize,
        /// Requested length.
        len: usize,
        /// Region size.
        size: usize,
    },
    /// The caller's buffer cannot hold the data.
    #[error("buffer of {got} bytes is too small, {needed} needed")]
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes offered.
        got: usize,
    },
    /// The region's writer died in the middle of a write; the data may be
    /// torn. A new writer can take the region over.
    #[error("the writer (pid {pid}) died in the middle of a write")]
    WriterDead {
        /// The dead writer's pid.
        pid: u32,
    },
    /// The region was taken over after its writer died mid-write and the new
    /// writer has not yet rewritten the whole region.
    #[error("region contents are torn by a crashed writer and not yet rewritten")]
    Torn,
    /// Another live process is the writer of this region.
    #[error("region already has a live writer (pid {pid})")]
    WriterBusy {
        /// The live writer's pid.
        pid: u32,
    },
    /// A wait or a bounded retry loop ran out of time.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// An operating-system call failed.
    #[error("{op} failed: {source}")]
    Os {
        /// The operation that failed.
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn corrupt(name: &str, reason: impl Into<String>) -> Self {
        Error::Corrupt { name: name.to_owned(), reason: reason.into() }
    }
}
