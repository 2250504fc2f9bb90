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
    /// A file that is not a venom segment sits at the segment's path, so
    /// the segment cannot be created. Nothing removes it automatically;
    /// inspect it and remove it with `venom rm NAME` (or
    /// [`inspect::remove`](crate::inspect::remove)) if nothing uses it.
    #[error("{path} is not a venom segment ({reason}); remove it with `venom rm {name}` if nothing else uses it")]
    StrayFile {
        /// The segment name.
        name: String,
        /// The path of the file in the way.
        path: String,
        /// Why it is not a venom segment.
        reason: String,
    },
    /// [`inspect::remove`](crate::inspect::remove) refused to remove a
    /// segment whose creator or owner is alive.
    #[error("segment {name:?} is in use by live process {pid}; not removed")]
    InUse {
        /// The segment name.
        name: String,
        /// The live owner (or creator).
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
    /// The daemon (or queue consumer) process is dead. Reconnect once a new
    /// one is running.
    #[error("the daemon (pid {pid}) is gone")]
    DaemonGone {
        /// The dead daemon's pid.
        pid: u32,
    },
    /// A queue lane has no room; retry later or wait with a timeout.
    #[error("the queue is full")]
    Full,
    /// Every client slot (queue lane) is owned by a live process.
    #[error("all {max} client slots are in use")]
    TooManyClients {
        /// The channel's `max_clients` (the queue's lane count).
        max: usize,
    },
    /// A command or reply exceeds the configured maximum message size.
    #[error("message of {len} bytes exceeds the maximum of {max}")]
    MessageTooLarge {
        /// The message length.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// The daemon's reply to request `id` exceeded the maximum message size;
    /// the reply was not sent.
    #[error("reply to request {id} is {len} bytes, over the maximum of {max}")]
    ReplyTooLarge {
        /// The request id.
        id: u64,
        /// The reply length.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// The daemon dropped request `id` without answering it.
    #[error("the daemon dropped request {id} without answering")]
    NoReply {
        /// The request id.
        id: u64,
    },
    /// Another live process is the queue's consumer.
    #[error("the queue already has a live consumer (pid {pid})")]
    ConsumerBusy {
        /// The live consumer's pid.
        pid: u32,
    },
    /// The operation needs no pipelined requests in flight.
    #[error("{count} pipelined requests are still outstanding")]
    RequestsOutstanding {
        /// Requests sent with `send_command` and not yet received.
        count: usize,
    },
    /// The serve loop was stopped through its `StopHandle`.
    #[error("stopped")]
    Stopped,
    /// The segment's file was truncated (shrunk) by another process while
    /// this process had it mapped. The mapping was replaced with zero pages
    /// so the access did not crash the process; the data is gone for this
    /// handle. Drop it and open the segment again once it is recreated.
    /// (The kernel raises the same `SIGBUS` when `/dev/shm` is full as a
    /// page is first touched; that is reported the same way.)
    #[error("segment {name:?} was truncated under this mapping; its contents are lost")]
    Truncated {
        /// The segment name.
        name: String,
    },
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
